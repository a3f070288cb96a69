package store

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/goldsmith-dev/goldsmith/internal/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, func(c *pgtest.Cluster) { cluster = c }) }

// eachBackend runs test on a new store of every engine.
func eachBackend(t *testing.T, test func(t *testing.T, s *Store, database string)) {
	for _, b := range cluster.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			database := b.Database(t)
			s, err := Open(context.Background(), database)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			test(t, s, database)
		})
	}
}

const (
	rgA   = "/subscriptions/S1/resourceGroups/RG-A"
	rgA2  = "/subscriptions/S1/resourceGroups/RG-A2"
	tmplT = rgA + "/providers/Microsoft.VirtualMachineImages/imageTemplates/Tmpl"
	typT  = "Microsoft.VirtualMachineImages/imageTemplates"
	typRG = "Microsoft.Resources/resourceGroups"
)

func TestCaseInsensitiveIDsKeepCasing(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		err := s.Update(ctx, func(tx *Tx) error {
			return tx.CreateJSON(ctx, tmplT, typT, map[string]string{"a": "b"})
		})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			id   string
			want error
		}{
			{"same casing", tmplT, nil},
			{"lower casing", "/subscriptions/s1/resourcegroups/rg-a/providers/microsoft.virtualmachineimages/imagetemplates/tmpl", nil},
			{"trailing slash", tmplT + "/", nil},
			{"other name", tmplT + "x", ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := s.View(ctx, func(tx *Tx) error {
					d, err := tx.Get(ctx, tt.id)
					if err == nil && d.ID != tmplT {
						t.Errorf("id = %q, want the casing it was created with %q", d.ID, tmplT)
					}
					return err
				})
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
			})
		}
		err = s.Update(ctx, func(tx *Tx) error {
			return tx.Create(ctx, Doc{ID: "/SUBSCRIPTIONS/s1/resourcegroups/rg-a/providers/microsoft.virtualmachineimages/imagetemplates/TMPL", Type: typT, Body: json.RawMessage(`{}`)})
		})
		if !errors.Is(err, ErrExists) {
			t.Fatalf("create in other casing: err = %v, want ErrExists", err)
		}
	})
}

func TestListScopesAndPaging(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		ids := []string{
			rgA + "/providers/Microsoft.VirtualMachineImages/imageTemplates/a",
			rgA + "/providers/Microsoft.VirtualMachineImages/imageTemplates/b",
			rgA + "/providers/Microsoft.VirtualMachineImages/imageTemplates/c",
			rgA2 + "/providers/Microsoft.VirtualMachineImages/imageTemplates/d",
			"/subscriptions/S2/resourceGroups/x/providers/Microsoft.VirtualMachineImages/imageTemplates/e",
		}
		err := s.Update(ctx, func(tx *Tx) error {
			for _, id := range ids {
				if err := tx.CreateJSON(ctx, id, typT, struct{}{}); err != nil {
					return err
				}
			}
			return tx.CreateJSON(ctx, rgA, typRG, struct{}{})
		})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name  string
			q     Query
			want  int
			pages int
		}{
			{"resource group does not include its namesake prefix", Query{Type: typT, Scope: rgA}, 3, 1},
			{"subscription", Query{Type: typT, Scope: "/subscriptions/s1"}, 4, 1},
			{"everything", Query{Type: typT}, 5, 1},
			{"type is case-insensitive", Query{Type: "microsoft.virtualmachineimages/IMAGETEMPLATES", Scope: "/subscriptions/S1"}, 4, 1},
			{"paged by two", Query{Type: typT, Scope: "/subscriptions/s1", Limit: 2}, 4, 3},
			{"groups", Query{Type: typRG, Scope: "/subscriptions/s1"}, 1, 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, pages := 0, 0
				q := tt.q
				for {
					var docs []Doc
					err := s.View(ctx, func(tx *Tx) (err error) {
						docs, err = tx.List(ctx, q)
						return err
					})
					if err != nil {
						t.Fatal(err)
					}
					pages++
					got += len(docs)
					if q.Limit == 0 || len(docs) < q.Limit {
						break
					}
					q.After = Key(docs[len(docs)-1].ID)
				}
				if got != tt.want || pages != tt.pages {
					t.Errorf("got %d documents in %d pages, want %d in %d", got, pages, tt.want, tt.pages)
				}
			})
		}
	})
}

func TestDeleteTreeAndRollback(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store, _ string) {
		ctx := context.Background()
		run := tmplT + "/runs/1"
		err := s.Update(ctx, func(tx *Tx) error {
			for _, id := range []string{rgA, tmplT, run, rgA2} {
				if err := tx.CreateJSON(ctx, id, "t", struct{}{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// A failed transaction changes nothing.
		boom := errors.New("boom")
		err = s.Update(ctx, func(tx *Tx) error {
			if _, err := tx.DeleteTree(ctx, rgA); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		var n int
		_ = s.View(ctx, func(tx *Tx) (err error) { n, err = tx.Count(ctx, rgA); return err })
		if n != 2 {
			t.Fatalf("after rollback %d documents under the group, want 2", n)
		}
		var gone []Doc
		err = s.Update(ctx, func(tx *Tx) (err error) { gone, err = tx.DeleteTree(ctx, rgA); return err })
		if err != nil {
			t.Fatal(err)
		}
		if len(gone) != 3 {
			t.Fatalf("deleted %d documents, want 3 (group, template, run)", len(gone))
		}
		err = s.View(ctx, func(tx *Tx) error { _, err := tx.Get(ctx, rgA2); return err })
		if err != nil {
			t.Fatalf("the neighbouring group %s was deleted: %v", rgA2, err)
		}
	})
}

func TestConcurrentWritersAndReopen(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store, path string) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Go(func() {
				errs <- s.Update(ctx, func(tx *Tx) error {
					var v struct{ N int }
					if _, err := tx.GetJSON(ctx, rgA, &v); err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
					v.N++
					_ = i
					return tx.PutJSON(ctx, rgA, typRG, v)
				})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var v struct{ N int }
		if err := s.View(ctx, func(tx *Tx) error { _, err := tx.GetJSON(ctx, rgA, &v); return err }); err != nil {
			t.Fatal(err)
		}
		if v.N != 20 {
			t.Fatalf("counter = %d after 20 read-modify-write transactions, want 20", v.N)
		}
	})
}
