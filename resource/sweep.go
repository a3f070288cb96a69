package resource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goldsmith-dev/goldsmith/store"
)

// Sweep puts right what a killed server can leave of the resources. Call it
// at start, after the queue's recovery (so no run of this node is in
// progress; other nodes' runs may be, and keep what they hold) and before
// the queue runs:
//
//   - gallery image versions still Creating whose run is not in progress
//     (their replication died with the server) are removed;
//   - blob references whose holder no longer holds them are dropped, and
//     blobs no reference names, and copies in progress, are removed from
//     every region's store and the staging store (package blobref);
//   - local copies of stored disks no image or version has, and
//     interrupted downloads of submissions, are removed.
//
// The runs' scratch space is package runner's to sweep.
func (s *Service) Sweep(ctx context.Context) error {
	holders, disks, active := map[string]bool{}, map[string]bool{}, map[string]bool{}
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		runs, err := s.Runs(ctx, tx)
		if err != nil {
			return err
		}
		for _, r := range runs {
			if r.Active() {
				active[r.RunID] = true
			}
		}
		versions, _, err := list[Resource](ctx, tx, TypeGalleryImageVersion, "", Page{})
		if err != nil {
			return err
		}
		for _, v := range versions {
			if v.Properties["provisioningState"] != StateCreating {
				continue
			}
			if v.Artifact != nil && v.Artifact.Run != "" && active[v.Artifact.Run] {
				continue // another node's run replicates it now
			}
			s.log.Warn("removing a gallery image version whose replication was interrupted", "version", v.ID)
			if _, err := tx.DeleteTree(ctx, v.ID); err != nil {
				return err
			}
		}
		for _, typ := range []string{TypeImage, TypeGalleryImageVersion, TypeRunOutput} {
			res, _, err := list[Resource](ctx, tx, typ, "", Page{})
			if err != nil {
				return err
			}
			for _, r := range res {
				if r.Artifact != nil {
					holders[r.Artifact.Holder] = true
					if typ != TypeRunOutput {
						disks[r.Artifact.SHA256] = true
					}
				}
			}
		}
		// A template holds its staged files; one being submitted (perhaps
		// by another node) holds those it is staging.
		templates, _, err := list[ImageTemplate](ctx, tx, TypeImageTemplate, "", Page{})
		if err != nil {
			return err
		}
		for _, t := range templates {
			if len(t.StagedFiles) > 0 || t.ProvisioningState == StateCreating {
				holders[t.ID] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	// A run in progress (on another node sharing the database) holds what
	// it is publishing before the resource that will hold it exists: its
	// holders end in "#" and its runId.
	live := func(h string) bool {
		i := strings.LastIndex(h, "#")
		return holders[h] || (i >= 0 && active[h[i+1:]])
	}
	if err := s.refs.Sweep(ctx, live); err != nil {
		return err
	}
	// Downloads of this node's submissions a crash interrupted (they are
	// retried from the start).
	if err := removeEntries(s.abs("downloads")); err != nil {
		return fmt.Errorf("sweep downloads: %w", err)
	}
	return s.sweepCache(disks)
}

func removeEntries(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// sweepCache removes the local copies of stored disks no image or gallery
// version has any more, and copies a crash interrupted.
func (s *Service) sweepCache(disks map[string]bool) error {
	if err := s.cache.CleanTmp(); err != nil {
		return fmt.Errorf("sweep the stored disks' cache: %w", err)
	}
	sums, err := s.cache.List()
	if err != nil {
		return fmt.Errorf("sweep the stored disks' cache: %w", err)
	}
	for _, sum := range sums {
		if !disks[sum] {
			if err := s.cache.Remove(sum); err != nil {
				return fmt.Errorf("sweep the stored disks' cache: %w", err)
			}
		}
	}
	return nil
}
