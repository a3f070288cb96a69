package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/identity"
	"github.com/goldsmith-dev/goldsmith/store"
)

// TestPrincipalCommands: create, list and delete service principals in a
// server's data directory; the secret printed verifies, and only its hash
// is stored.
func TestPrincipalCommands(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, "principal", "ls", "--data-dir", dir); code != exitFailure || !strings.Contains(stderr, "no goldsmith server data") {
		t.Fatalf("ls without a server's data: exit %d, %s", code, stderr)
	}
	st, err := store.Open(context.Background(), filepath.Join(dir, "goldsmith.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	code, stdout, stderr := runCLI(t, "principal", "create", "ci", "--subscription", "sub-a", "-o", "json", "--data-dir", dir)
	if code != exitOK {
		t.Fatalf("create: exit %d, %s", code, stderr)
	}
	var made struct{ ClientID, Name, Secret string }
	if err := json.Unmarshal([]byte(stdout), &made); err != nil || made.ClientID == "" || len(made.Secret) != 64 {
		t.Fatalf("create printed %q (%v)", stdout, err)
	}
	if _, err := identity.NewDirectory(st).Verify(context.Background(), made.ClientID, made.Secret); err != nil {
		t.Fatalf("the printed secret does not verify: %v", err)
	}
	var raw []byte
	_ = st.View(context.Background(), func(tx *store.Tx) error {
		d, err := tx.Get(context.Background(), "/goldsmith/principals/"+made.ClientID)
		raw = d.Body
		return err
	})
	if len(raw) == 0 || strings.Contains(string(raw), made.Secret) {
		t.Fatalf("stored principal %s: want it stored without its secret", raw)
	}

	code, stdout, _ = runCLI(t, "sp", "ls", "--data-dir", dir)
	if code != exitOK || !strings.Contains(stdout, made.ClientID) || !strings.Contains(stdout, "ci") || !strings.Contains(stdout, "sub-a") || strings.Contains(stdout, made.Secret) {
		t.Fatalf("ls: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := runCLI(t, "principal", "delete", made.ClientID, "--data-dir", dir); code != exitOK {
		t.Fatalf("delete: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "principal", "delete", made.ClientID, "--data-dir", dir); code != exitFailure || !strings.Contains(stderr, "no service principal") {
		t.Fatalf("delete again: exit %d, %s", code, stderr)
	}
	if code, stdout, _ := runCLI(t, "principal", "ls", "-o", "json", "--data-dir", dir); code != exitOK || strings.TrimSpace(stdout) != "[]" {
		t.Fatalf("ls after delete: exit %d, %s", code, stdout)
	}
}
