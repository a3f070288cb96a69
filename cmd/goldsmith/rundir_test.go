package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRunDirSweep: a build's directory stays while its build lives and goes
// with release; what a killed build left (its lock free) goes at the next
// build's start, as does a lockless directory a day old; a lockless young
// one (a build starting this instant) stays.
func TestRunDirSweep(t *testing.T) {
	data := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mk := func(name string, lock bool, age time.Duration) string {
		d := filepath.Join(data, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "build-disk-1.qcow2"), []byte("disk"), 0o600); err != nil {
			t.Fatal(err)
		}
		if lock {
			if err := os.WriteFile(filepath.Join(d, runDirLock), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
		return d
	}
	killed := mk("run-killed", true, time.Minute)
	live := mk("run-live", true, time.Hour)
	f, err := os.Open(filepath.Join(live, runDirLock))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	oldLockless := mk("run-old", false, 25*time.Hour)
	young := mk("run-young", false, time.Second)
	other := mk("catalog", true, 48*time.Hour) // not a run directory

	dir, release, err := newRunDir(data, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir  string
		want bool
	}{{killed, false}, {live, true}, {oldLockless, false}, {young, true}, {other, true}, {dir, true}} {
		if _, err := os.Stat(tc.dir); (err == nil) != tc.want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(tc.dir), err == nil, tc.want)
		}
	}
	// Another build starting now leaves this one alone.
	sweepRunDirs(data, log)
	if _, err := os.Stat(filepath.Join(dir, runDirLock)); err != nil {
		t.Errorf("a live build's directory was swept: %v", err)
	}
	release()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("release left %s: %v", dir, err)
	}
}
