package template

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load, seeded with the spec's examples
// and the example templates. It must never panic, a template without errors
// must have a source and a distribute target, and every reported problem
// must carry a code and a message.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"testdata/spec/*.json", "testdata/valid/*.json", "../cmd/goldsmith/testdata/*.json"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(`{"apiVersion":"2024-02-01","properties":{"source":{"type":"[parameters('x')]"}}}`))
	f.Add([]byte(`{"$schema":"deploymentTemplate.json","resources":[{"type":"Microsoft.VirtualMachineImages/imageTemplates","apiVersion":"[concat('2020-','02-14')]"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		found, err := Load(data, LoadOptions{Options: Options{APIVersion: "2022-07-01"}})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		for _, fd := range found {
			if fd.Err == nil {
				if fd.Template == nil || fd.Template.Properties.Source.Type == "" || len(fd.Template.Properties.Distribute) == 0 {
					t.Fatalf("valid template without source or distribute: %+v", fd.Template)
				}
				continue
			}
			inv, ok := fd.Err.(*InvalidError)
			if !ok || len(inv.Problems) == 0 {
				t.Fatalf("error is not a non-empty *InvalidError: %v", fd.Err)
			}
			for _, p := range inv.Problems {
				if p.Code == "" || p.Message == "" {
					t.Fatalf("problem without code or message: %+v", p)
				}
			}
		}
	})
}
