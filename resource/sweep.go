package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/goldsmith-dev/goldsmith/store"
)

// Sweep removes what a killed server can leave behind outside the
// database: artifact files no image or gallery version refers to (a crash
// between placing a disk and committing its resource), and run scratch
// directories of runs that are no longer active (with any process still
// running in them). Call it at start, before the queue runs.
func (s *Service) Sweep(ctx context.Context) error {
	keep := map[string]bool{}
	active := map[string]bool{}
	err := s.st.View(ctx, func(tx *store.Tx) error {
		for _, typ := range []string{TypeImage, TypeGalleryImageVersion} {
			docs, err := tx.List(ctx, store.Query{Type: typ})
			if err != nil {
				return err
			}
			for _, p := range artifactFiles(docs) {
				keep[p] = true
			}
		}
		runs, err := tx.List(ctx, store.Query{Type: TypeRun})
		if err != nil {
			return err
		}
		for _, d := range runs {
			var r Run
			if json.Unmarshal(d.Body, &r) == nil && r.Active() {
				active[r.WorkDir] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	entries, err := os.ReadDir(s.abs("artifacts"))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("sweep artifacts: %w", err)
	}
	for _, e := range entries {
		rel := path.Join("artifacts", e.Name())
		if !keep[rel] {
			s.log.Warn("removing an artifact no resource refers to", "path", rel)
			s.removeFiles(rel)
		}
	}
	work, err := os.ReadDir(s.abs("work"))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("sweep work: %w", err)
	}
	for _, e := range work {
		rel := path.Join("work", e.Name())
		if active[rel] || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		s.log.Warn("removing the scratch directory of an ended run", "path", rel)
		stopProcesses(filepath.Join(s.dataDir, "work", e.Name()))
		s.removeFiles(rel)
	}
	return nil
}
