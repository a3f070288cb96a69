package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/store"
)

// stagingStore names the staging store in blob references and artifacts'
// regions: no Azure region is called so.
const stagingStore = "goldsmith-staging"

// localStagingStore is the data-directory-relative root of the staging
// store when it is local: under staging/, so goldsmith's signed download
// URLs reach its VHDs (stagingDir never makes a name starting with a dot).
const localStagingStore = "staging/.blobs"

// stores are the regions' stores and the staging store, as blob
// references name them.
type stores struct {
	regions *blob.Regions
	staging blob.Store
}

func (s stores) Names() []string { return append(s.regions.Names(), stagingStore) }

func (s stores) Store(name string) (blob.Store, bool) {
	if name == stagingStore {
		return s.staging, true
	}
	return s.regions.Store(name)
}

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

// releaseDeleted releases the artifacts of deleted documents: the disks
// of images and gallery versions, the VHDs of runOutputs and the staged
// files of templates.
func (s *Service) releaseDeleted(ctx context.Context, tx *store.Tx, docs []store.Doc) error {
	for _, d := range docs {
		switch {
		case strings.EqualFold(d.Type, TypeImage), strings.EqualFold(d.Type, TypeGalleryImageVersion), strings.EqualFold(d.Type, TypeRunOutput):
			var r Resource
			if err := json.Unmarshal(d.Body, &r); err != nil {
				return fmt.Errorf("decode %s: %w", d.ID, err)
			}
			if err := s.releaseArtifact(ctx, tx, r.Artifact); err != nil {
				return err
			}
		case strings.EqualFold(d.Type, TypeImageTemplate):
			var t ImageTemplate
			if err := json.Unmarshal(d.Body, &t); err != nil {
				return fmt.Errorf("decode %s: %w", d.ID, err)
			}
			if err := s.releaseStaged(ctx, tx, t.ID, t.StagedFiles); err != nil {
				return err
			}
		}
	}
	return nil
}
