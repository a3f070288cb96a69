package main

import (
	"os"
	"path/filepath"
)

// defaultDataDir is where goldsmith keeps its catalog, caches and state:
// $GOLDSMITH_DATA_DIR, else $XDG_DATA_HOME/goldsmith, else ~/.local/share/goldsmith.
func defaultDataDir() string {
	if d := os.Getenv("GOLDSMITH_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "goldsmith")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "goldsmith")
	}
	return filepath.Join(os.TempDir(), "goldsmith")
}
