package store

import (
	"context"
	"testing"
)

// TestRunLogs appends to two runs' logs, reads them back whole and from a
// chunk on, and checks that DeleteTree of the template takes its runs'
// logs and leaves another template's.
func TestRunLogs(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		run1, run2 := tmplT+"/runs/R1", rgA2+"/providers/Microsoft.VirtualMachineImages/imageTemplates/Other/runs/R2"
		appends := []struct {
			run, data string
			size      int64
		}{
			{run1, "line one\n", 9},
			{run2, "other\n", 6},
			{run1, "", 9},
			{run1, "line two\n", 18},
			{run1, "line three\n", 29},
		}
		for _, a := range appends {
			var size int64
			err := s.Update(ctx, func(tx *Tx) (err error) { size, err = tx.AppendLog(ctx, a.run, []byte(a.data)); return err })
			if err != nil {
				t.Fatal(err)
			}
			if size != a.size {
				t.Errorf("append %q to %s: size %d, want %d", a.data, a.run, size, a.size)
			}
		}
		read := func(run string, after int64) (string, int64) {
			var text string
			var last int64
			err := s.View(ctx, func(tx *Tx) error {
				chunks, err := tx.ReadLog(ctx, run, after, 0)
				for _, c := range chunks {
					text += string(c.Data)
					last = c.Seq
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return text, last
		}
		tests := []struct {
			name, run string
			after     int64
			want      string
			last      int64
		}{
			{"whole log", run1, 0, "line one\nline two\nline three\n", 3},
			{"after the first chunk", run1, 1, "line two\nline three\n", 3},
			{"nothing new", run1, 3, "", 0},
			{"any casing", "/SUBSCRIPTIONS/s1/resourcegroups/rg-a/providers/microsoft.virtualmachineimages/imagetemplates/tmpl/runs/r1", 2, "line three\n", 3},
			{"the other run", run2, 0, "other\n", 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got, last := read(tt.run, tt.after); got != tt.want || last != tt.last {
					t.Errorf("ReadLog(%s, %d) = %q (last %d), want %q (last %d)", tt.run, tt.after, got, last, tt.want, tt.last)
				}
			})
		}
		if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.DeleteTree(ctx, tmplT); return err }); err != nil {
			t.Fatal(err)
		}
		if got, _ := read(run1, 0); got != "" {
			t.Errorf("the log of a run of a deleted template: %q", got)
		}
		if got, _ := read(run2, 0); got != "other\n" {
			t.Errorf("another template's run log after the deletion: %q", got)
		}
	})
}
