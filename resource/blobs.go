package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/store"
)

// releaseArtifact drops the artifact's blob references in every region
// (package blobref removes the blobs nothing refers to any more once tx
// commits).
func (s *Service) releaseArtifact(ctx context.Context, tx *store.Tx, art *Artifact) error {
	if art == nil || art.SHA256 == "" {
		return nil
	}
	for _, region := range art.Regions {
		if err := s.refs.Release(ctx, tx, region, art.SHA256, art.Holder); err != nil {
			return err
		}
	}
	return nil
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
func (s *Service) succeedJob(ctx context.Context, tx *store.Tx, job jobs.Job, operation string) error {
	if err := endOperation(ctx, tx, operation, OpSucceeded, nil); err != nil {
		return err
	}
	return s.q.Finish(ctx, tx, job)
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
