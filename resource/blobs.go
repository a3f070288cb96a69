package resource

// Blob references: which resource uses which blob in which region's store.
// A blob is removed from a region's store once nothing refers to it there.
// References are documents of type TypeBlobRef, changed in the same
// transaction as the resources holding them; the file is removed after the
// commit, under the store's per-blob lock, and only if the reference
// document is still gone (a distribution that took the blob meanwhile keeps
// it).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/goldsmith-dev/goldsmith/queue"
	"github.com/goldsmith-dev/goldsmith/store"
)

// TypeBlobRef is goldsmith's record of the references to one blob in one
// region.
const TypeBlobRef = "Goldsmith/blobs"

// blobRef is the references to one blob in one region.
type blobRef struct {
	ID      string   `json:"id"`
	Region  string   `json:"region"`
	SHA256  string   `json:"sha256"`
	Holders []string `json:"holders"`
}

func blobRefID(region, sum string) string {
	return "/goldsmith/blobs/" + strings.ToLower(region) + "/" + strings.ToLower(sum)
}

// acquireBlob records that holder uses the blob sum in region.
func acquireBlob(ctx context.Context, tx *store.Tx, region, sum, holder string) error {
	id := blobRefID(region, sum)
	var ref blobRef
	if _, err := tx.GetJSON(ctx, id, &ref); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		ref = blobRef{ID: id, Region: strings.ToLower(region), SHA256: strings.ToLower(sum)}
	}
	if slices.Contains(ref.Holders, holder) {
		return nil
	}
	ref.Holders = append(ref.Holders, holder)
	return tx.PutJSON(ctx, id, TypeBlobRef, ref)
}

// releaseArtifact drops the artifact's references in every region and, once
// tx commits, removes the blobs nothing refers to any more.
func (s *Service) releaseArtifact(ctx context.Context, tx *store.Tx, art *Artifact) error {
	if art == nil || art.SHA256 == "" {
		return nil
	}
	for _, region := range art.Regions {
		if err := s.releaseBlob(ctx, tx, region, art.SHA256, art.Holder); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) releaseBlob(ctx context.Context, tx *store.Tx, region, sum, holder string) error {
	id := blobRefID(region, sum)
	var ref blobRef
	if _, err := tx.GetJSON(ctx, id, &ref); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	ref.Holders = slices.DeleteFunc(ref.Holders, func(h string) bool { return h == holder })
	if len(ref.Holders) > 0 {
		return tx.PutJSON(ctx, id, TypeBlobRef, ref)
	}
	if err := tx.Delete(ctx, id); err != nil {
		return err
	}
	tx.AfterCommit(func() { s.collectBlob(context.WithoutCancel(ctx), region, sum) })
	return nil
}

// collectBlob removes a blob from a region's store if no reference to it
// exists (checked under the blob's lock, so a distribution taking it now
// either sees the file or places it again).
func (s *Service) collectBlob(ctx context.Context, region, sum string) {
	st, ok := s.regions.Store(region)
	if !ok {
		return
	}
	unlock := st.Lock(sum)
	defer unlock()
	err := s.st.View(ctx, func(tx *store.Tx) error {
		_, err := tx.Get(ctx, blobRefID(region, sum))
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		if err != nil {
			s.log.Warn("check blob references", "region", region, "sha256", sum, "err", err)
		}
		return
	}
	if err := st.Remove(sum); err != nil {
		s.log.Warn("remove blob", "region", region, "sha256", sum, "err", err)
		return
	}
	s.log.Info("removed a blob nothing refers to", "region", region, "sha256", sum)
}

// deleteTree deletes a resource and everything under it, releasing the
// disks of the images and gallery versions among them.
func (s *Service) deleteTree(ctx context.Context, tx *store.Tx, id string) ([]store.Doc, error) {
	docs, err := tx.DeleteTree(ctx, id)
	if err != nil {
		return nil, err
	}
	return docs, s.releaseDeleted(ctx, tx, docs)
}

// succeedJob ends a job's operation as Succeeded and the job as done, in
// the caller's transaction.
func (s *Service) succeedJob(ctx context.Context, tx *store.Tx, job queue.Job, operation string) error {
	if err := endOperation(ctx, tx, operation, OpSucceeded, nil); err != nil {
		return err
	}
	_, err := s.q.Finish(ctx, tx, job, queue.Done, "")
	return err
}

// releaseDeleted releases the artifacts of deleted documents.
func (s *Service) releaseDeleted(ctx context.Context, tx *store.Tx, docs []store.Doc) error {
	for _, d := range docs {
		if !strings.EqualFold(d.Type, TypeImage) && !strings.EqualFold(d.Type, TypeGalleryImageVersion) {
			continue
		}
		var r Resource
		if err := json.Unmarshal(d.Body, &r); err != nil {
			return fmt.Errorf("decode %s: %w", d.ID, err)
		}
		if err := s.releaseArtifact(ctx, tx, r.Artifact); err != nil {
			return err
		}
	}
	return nil
}
