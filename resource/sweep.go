package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/store"
)

// Sweep puts right what a killed server can leave behind. Call it at start,
// after the queue's recovery (so no run is in progress) and before the
// queue runs:
//
//   - gallery image versions still Creating (their replication died with
//     the server) are removed, with their blob references;
//   - blob references whose holder no longer holds them are dropped;
//   - blobs no reference names, and copies in progress, are removed from
//     every region's store;
//   - scratch directories of runs no longer active (with any process
//     still running in them), and kept outputs no run refers to, go.
func (s *Service) Sweep(ctx context.Context) error {
	active := map[string]bool{}
	keep := map[string]bool{}
	refs := map[string]map[string]bool{} // region → sums
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		versions, _, err := list[Resource](ctx, tx, TypeGalleryImageVersion, "", Page{})
		if err != nil {
			return err
		}
		for _, v := range versions {
			if v.Properties["provisioningState"] != StateCreating {
				continue
			}
			s.log.Warn("removing a gallery image version whose replication was interrupted", "version", v.ID)
			if _, err := tx.DeleteTree(ctx, v.ID); err != nil {
				return err
			}
		}
		holders := map[string]bool{}
		for _, typ := range []string{TypeImage, TypeGalleryImageVersion} {
			res, _, err := list[Resource](ctx, tx, typ, "", Page{})
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.Artifact != nil {
					holders[r.Artifact.Holder] = true
				}
			}
		}
		brs, _, err := list[blobRef](ctx, tx, TypeBlobRef, "", Page{})
		if err != nil {
			return err
		}
		for _, br := range brs {
			var live []string
			for _, h := range br.Holders {
				if holders[h] {
					live = append(live, h)
				}
			}
			switch {
			case len(live) == 0:
				if err := tx.Delete(ctx, br.ID); err != nil {
					return err
				}
				continue
			case len(live) < len(br.Holders):
				br.Holders = live
				if err := tx.PutJSON(ctx, br.ID, TypeBlobRef, br); err != nil {
					return err
				}
			}
			if refs[br.Region] == nil {
				refs[br.Region] = map[string]bool{}
			}
			refs[br.Region][br.SHA256] = true
		}
		runs, err := tx.List(ctx, store.Query{Type: TypeRun})
		if err != nil {
			return err
		}
		for _, d := range runs {
			var r Run
			if json.Unmarshal(d.Body, &r) != nil {
				continue
			}
			if r.Active() {
				active[r.WorkDir] = true
			}
			if r.KeptDir != "" {
				keep[r.KeptDir] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	for _, region := range s.regions.Names() {
		st, _ := s.regions.Store(region)
		if err := st.CleanTmp(); err != nil {
			return fmt.Errorf("sweep region %s: %w", region, err)
		}
		sums, err := st.List()
		if err != nil {
			return fmt.Errorf("sweep region %s: %w", region, err)
		}
		for _, sum := range sums {
			if !refs[region][sum] {
				s.log.Warn("removing a blob nothing refers to", "region", region, "sha256", sum)
				if err := st.Remove(sum); err != nil {
					return err
				}
			}
		}
	}
	if err := s.sweepDir("kept", keep); err != nil {
		return err
	}
	return s.sweepDir("work", active)
}

// sweepDir removes the entries of a data-directory subdirectory not in keep.
func (s *Service) sweepDir(dir string, keep map[string]bool) error {
	entries, err := os.ReadDir(s.abs(dir))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("sweep %s: %w", dir, err)
	}
	for _, e := range entries {
		rel := path.Join(dir, e.Name())
		if keep[rel] || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		s.log.Warn("removing what no run refers to", "path", rel)
		if dir == "work" {
			machine.KillRecorded(filepath.Join(s.dataDir, dir, e.Name()))
		}
		s.removeFiles(rel)
	}
	return nil
}
