package resource

import (
	"context"
	"fmt"

	"github.com/goldsmith-dev/goldsmith/store"
)

// Sweep puts right what a killed server can leave of the resources. Call it
// at start, after the queue's recovery (so no run is in progress) and
// before the queue runs:
//
//   - gallery image versions still Creating (their replication died with
//     the server) are removed;
//   - blob references whose holder no longer holds them are dropped, and
//     blobs no reference names, and copies in progress, are removed from
//     every region's store (package blobref).
//
// The runs' scratch space is package runner's to sweep.
func (s *Service) Sweep(ctx context.Context) error {
	holders := map[string]bool{}
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
		return nil
	})
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	return s.refs.Sweep(ctx, holders)
}
