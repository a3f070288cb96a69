package resource

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/download"
	"github.com/goldsmith-dev/goldsmith/template"
)

// TestStageFilesCaps stages templates against a file server on 127.0.0.1
// and checks each kind's cap, its provisioningError code, and that a
// refused download leaves no partial file.
func TestStageFilesCaps(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small.sh":
			io.WriteString(w, "echo hi\n")
		case "/disc.iso":
			w.(http.Flusher).Flush() // no Content-Length: the cap is hit mid-stream
			w.Write(make([]byte, 4096))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	const gid = "/subscriptions/s/resourceGroups/IT_rg_t"
	tests := []struct {
		name    string
		maxISO  int64
		props   template.Properties
		code    string
		errHas  string
		nStaged int
	}{
		{name: "ISO over the configured cap", maxISO: 1000,
			props: template.Properties{Source: template.Source{Type: template.SourceISO, SourceURI: srv.URL + "/disc.iso"}},
			code:  template.CodeBadISOSource, errHas: "more than the 1000 byte limit for an ISO source"},
		{name: "ISO under the default cap",
			props:   template.Properties{Source: template.Source{Type: template.SourceISO, SourceURI: srv.URL + "/disc.iso"}},
			nStaged: 1},
		{name: "script fetched once for two customizers",
			props: template.Properties{Customize: []template.Customizer{
				{Type: template.CustomizeShell, ScriptURI: srv.URL + "/small.sh"},
				{Type: template.CustomizeFile, SourceURI: srv.URL + "/small.sh", Destination: "/tmp/x"},
			}},
			nStaged: 1},
		{name: "a second reference with another checksum",
			props: template.Properties{Customize: []template.Customizer{
				{Type: template.CustomizeShell, ScriptURI: srv.URL + "/small.sh"},
				{Type: template.CustomizeShell, Name: "again", ScriptURI: srv.URL + "/small.sh", SHA256Checksum: strings.Repeat("0", 64)},
			}},
			code: template.CodeNoCustomizerScript, errHas: "(customize[1] (again)) does not match: expected " + strings.Repeat("0", 64), nStaged: 1},
		{name: "validator script not found",
			props: template.Properties{Validate: &template.Validate{InVMValidations: []template.Customizer{
				{Type: template.CustomizeShell, ScriptURI: srv.URL + "/gone.sh"}}}},
			code: template.CodeNoValidatorScript, errHas: "/gone.sh: HTTP 404"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{dataDir: t.TempDir(), http: srv.Client(), limits: download.Limits{ISO: tc.maxISO}}
			dir := t.TempDir()
			staged, local, err := s.downloadFiles(context.Background(), ImageTemplate{ExactStagingResourceGroup: gid, Template: &template.Template{Properties: tc.props}}, dir)
			if tc.code == "" {
				if err != nil || len(staged) != tc.nStaged || len(local) != tc.nStaged {
					t.Fatalf("staged %+v, %v", staged, err)
				}
				for i, f := range staged {
					if fi, err := os.Stat(local[i]); err != nil || fi.Size() != f.Size {
						t.Errorf("%s: %v", local[i], err)
					}
				}
				return
			}
			var pe *ProvisioningError
			if !errors.As(err, &pe) || pe.Code != tc.code || !strings.Contains(pe.Message, tc.errHas) {
				t.Fatalf("err %v, want %s mentioning %q", err, tc.code, tc.errHas)
			}
			// Only what earlier references downloaded is there (stageFiles
			// removes it): no partial or temporary file.
			left, _ := os.ReadDir(dir)
			if len(left) != tc.nStaged {
				t.Errorf("%d files in the staging directory, want %d", len(left), tc.nStaged)
			}
		})
	}
}
