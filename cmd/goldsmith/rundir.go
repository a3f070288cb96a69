package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// runDirPrefix names the private directories of `goldsmith build` runs in
// the data directory.
const runDirPrefix = "run-"

// runDirLock is the file in a run directory whose flock its build holds
// while it runs; the kernel drops it when the process dies, however it dies.
const runDirLock = "lock"

// lockless is how old a run directory without a lock file (made by an older
// goldsmith, or one being made this instant) must be to count as abandoned.
const lockless = 24 * time.Hour

// newRunDir makes a build's private directory in dataDir and holds its lock
// until release, which also removes the directory. Before that it removes
// what builds killed before their cleanup (kill -9, a power cut) left
// behind: their build disks are gigabytes each.
func newRunDir(dataDir string, log *slog.Logger) (dir string, release func(), err error) {
	sweepRunDirs(dataDir, log)
	dir, err = os.MkdirTemp(dataDir, runDirPrefix)
	if err != nil {
		return "", nil, err
	}
	// Locked under another name, then renamed: a sweep never sees the lock
	// file unlocked while this build lives.
	tmp := filepath.Join(dir, runDirLock+".new")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			err = os.Rename(tmp, filepath.Join(dir, runDirLock))
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("lock the run directory %s: %w", dir, err)
	}
	return dir, func() {
		os.RemoveAll(dir)
		f.Close()
	}, nil
}

// sweepRunDirs removes the run directories in dataDir that no live build
// holds.
func sweepRunDirs(dataDir string, log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(dataDir, runDirPrefix+"*"))
	for _, d := range dirs {
		if !abandoned(d) {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			log.Warn("could not remove the directory of a build that did not finish", "dir", d, "err", err)
			continue
		}
		log.Info("removed the directory of a build that did not finish", "dir", d)
	}
}

func abandoned(dir string) bool {
	f, err := os.Open(filepath.Join(dir, runDirLock))
	if err != nil {
		st, serr := os.Stat(dir)
		return os.IsNotExist(err) && serr == nil && st.IsDir() && time.Since(st.ModTime()) > lockless
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false // a live build holds it
	}
	return true
}
