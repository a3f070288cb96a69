package resource

// Publication: what a finished build's outputs become, one distribute
// target at a time (package runner publishes a run's targets at once, each
// in its own goroutine, and records the run's end):
//
//   - managedImage: a Microsoft.Compute/images resource at imageId, its disk
//     a blob in the image location's store;
//   - sharedImage: a gallery image version (numbered as AIB numbers it),
//     replicated into every target region's store in parallel, each copy's
//     sha256 verified; while it replicates the version reads
//     provisioningState Creating with per-region replicationStatus;
//   - VHD: a fixed VHD, a blob in the staging store (shared by every node),
//     downloaded through an expiring link (see ArtifactLink).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/distribute"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

// BlobScheme prefixes a data-directory-relative path in a stored
// artifactUri (VHDs published before the staging store); the API turns it
// into a signed download URL.
const BlobScheme = "goldsmith-blob:"

// StagedScheme prefixes a VHD's stored artifactUri: the VHD's sha256 in
// the staging store, then "/" and a file name. The API turns it into an
// expiring link (see ArtifactLink).
const StagedScheme = "goldsmith-staged:"

// Publication is one build output on its way to one distribute target.
type Publication struct {
	Target template.Distributor
	Output build.Output
	// Source is the output's file, shared by the targets publishing it.
	Source *distribute.Source
	// the image's, from the build's result
	OSType, HyperVGeneration string
	// Logf writes a line to the run's log; nil writes nothing.
	Logf func(format string, args ...any)
}

func (p Publication) logf(format string, args ...any) {
	if p.Logf != nil {
		p.Logf(format, args...)
	}
}

// Published is where a publication went: the resource it made
// (artifactId) or the file to download (artifactUri).
type Published struct {
	ArtifactID  string
	ArtifactURI string
	// Artifact is the blob a VHD's runOutput holds in the staging store.
	Artifact *Artifact
}

// Publish publishes one build output of run r of template t to its
// distribute target.
func (s *Service) Publish(ctx context.Context, t ImageTemplate, r Run, p Publication) (Published, error) {
	var pub Published
	var err error
	switch p.Target.Type {
	case template.DistributeVHD:
		err = s.publishVHD(ctx, t, r, p, &pub)
	case template.DistributeManagedImage:
		err = s.publishManagedImage(ctx, t, r, p, &pub)
	case template.DistributeSharedImage:
		err = s.publishGalleryVersion(ctx, t, r, p, &pub)
	default:
		err = fmt.Errorf("unknown distribute type %q", p.Target.Type)
	}
	return pub, err
}

func (s *Service) publishVHD(ctx context.Context, t ImageTemplate, r Run, p Publication, pub *Published) error {
	if !strings.EqualFold(p.Output.Format, "vhd") {
		return fmt.Errorf("the build wrote a %s disk for a VHD target, not a fixed VHD", p.Output.Format)
	}
	if _, err := disk.CheckFixedVHD(p.Output.Path); err != nil {
		return err
	}
	holder := t.ID + "/runOutputs/" + p.Target.RunOutputName + "#" + r.RunID
	art := &Artifact{Format: "vhd", SHA256: strings.ToLower(p.Output.SHA256), Size: p.Output.Size, Regions: []string{stagingStore}, Holder: holder}
	// The reference first, then the blob (as for images): a release of the
	// same bytes meanwhile cannot remove them once placed.
	if err := s.st.Update(ctx, func(tx *store.Tx) error { return s.refs.Acquire(ctx, tx, stagingStore, art.SHA256, holder) }); err != nil {
		return err
	}
	res := distribute.Replicate(ctx, p.Source, []distribute.Replica{{Region: stagingStore, Store: s.staging}}, nil)
	if res[0].Err != nil {
		if err := s.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error { return s.releaseArtifact(ctx, tx, art) }); err != nil {
			return errors.Join(res[0].Err, err)
		}
		return res[0].Err
	}
	pub.ArtifactURI = StagedScheme + art.SHA256 + "/" + SafeName(p.Target.RunOutputName) + "_" + r.RunID + ".vhd"
	pub.Artifact = art
	return nil
}

// Link is how to download an artifactUri: a URL to hand out as it is
// (an object store's presigned GET), or a data-directory-relative path
// (Rel) for goldsmith's own signed download URL.
type Link struct {
	URL string
	Rel string
}

// ArtifactLink turns a stored artifactUri into an expiring link, valid
// for ttl. A VHD in a bucket gets the object store's presigned GET: the
// GiBs go from the object store to the client, not through a goldsmith
// node, and any node can hand it out; a VHD in a local staging store gets
// goldsmith's signed proxy URL (Rel), as nothing else can reach it.
func (s *Service) ArtifactLink(ctx context.Context, uri string, ttl time.Duration) (Link, error) {
	if rel, ok := strings.CutPrefix(uri, BlobScheme); ok {
		rel, _, _ = strings.Cut(rel, "#")
		return Link{Rel: rel}, nil
	}
	rest, ok := strings.CutPrefix(uri, StagedScheme)
	if !ok {
		return Link{URL: uri}, nil
	}
	sum, _, _ := strings.Cut(rest, "/")
	switch st := s.staging.(type) {
	case *blob.S3:
		u, err := st.PresignGet(ctx, sum, ttl)
		if err != nil {
			return Link{}, err
		}
		return Link{URL: u.String()}, nil
	case *blob.Dir:
		rel := s.rel(st.Path(sum))
		if !strings.HasPrefix(rel, "staging/") {
			return Link{}, fmt.Errorf("the local staging store %s is not under the data directory's staging/: goldsmith cannot serve its VHDs", st.Root())
		}
		return Link{Rel: rel}, nil
	}
	return Link{}, fmt.Errorf("the staging store is of an unknown kind")
}

func diskSizeGB(size int64) int {
	const gib = 1 << 30
	return int((size + gib - 1) / gib)
}

// artifactOf describes a target's disk once stored in regions.
func (s *Service) artifactOf(p Publication, holder string, regions []string) *Artifact {
	vsize, err := distribute.VirtualSize(p.Output.Path, p.Output.Format)
	if err != nil {
		s.log.Warn("read the virtual size of an output", "path", p.Output.Path, "err", err)
	}
	return &Artifact{Format: or(p.Output.Format, "raw"), SHA256: strings.ToLower(p.Output.SHA256), Size: p.Output.Size, VirtualSize: vsize,
		OSType: or(p.OSType, "Linux"), Regions: regions, Holder: holder}
}

func (s *Service) publishManagedImage(ctx context.Context, t ImageTemplate, r Run, p Publication, pub *Published) error {
	iid, err := resourceid.ParseAs(p.Target.ImageID, resourceid.ManagedImage)
	if err != nil {
		return err
	}
	loc := NormalizeLocation(or(p.Target.Location, t.Location))
	st, ok := s.regions.Store(loc)
	if !ok {
		return s.regions.Check(loc)
	}
	holder := iid.String() + "#" + r.RunID
	sum := strings.ToLower(p.Output.SHA256)
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		if _, err := requireGroup(ctx, tx, iid); err != nil {
			return fmt.Errorf("the resource group '%s' of imageId %s does not exist: create it before running the template", iid.ResourceGroup, p.Target.ImageID)
		}
		return s.refs.Acquire(ctx, tx, loc, sum, holder)
	})
	if err != nil {
		return err
	}
	res := distribute.Replicate(ctx, p.Source, []distribute.Replica{{Region: loc, Store: st}}, nil)
	art := s.artifactOf(p, holder, []string{loc})
	return s.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		if res[0].Err != nil {
			if err := s.releaseArtifact(ctx, tx, art); err != nil {
				return err
			}
			return res[0].Err
		}
		if _, err := requireGroup(ctx, tx, iid); err != nil {
			if rerr := s.releaseArtifact(ctx, tx, art); rerr != nil {
				return rerr
			}
			return fmt.Errorf("the resource group '%s' of imageId %s was deleted during distribution", iid.ResourceGroup, p.Target.ImageID)
		}
		var old Resource
		if _, err := tx.GetJSON(ctx, iid.String(), &old); err == nil {
			iid, _ = resourceid.Parse(old.ID) // keep the casing it was created with
			if old.Artifact != nil && old.Artifact.Holder != holder {
				if err := s.releaseArtifact(ctx, tx, old.Artifact); err != nil {
					return err
				}
			}
		}
		img := Resource{ID: iid.String(), Name: iid.Name(), Type: TypeImage, Location: loc, Tags: p.Target.ArtifactTags,
			Properties: map[string]any{
				"storageProfile": map[string]any{
					"osDisk": map[string]any{"osType": or(p.OSType, "Linux"), "osState": "Generalized",
						"diskSizeGB": diskSizeGB(max(art.VirtualSize, art.Size)), "caching": "ReadWrite", "storageAccountType": "Standard_LRS"},
					"dataDisks":     []any{},
					"zoneResilient": false,
				},
				"hyperVGeneration":  or(p.HyperVGeneration, "V1"),
				"provisioningState": StateSucceeded,
			},
			SystemData: newSystemData(tx.Now()), Artifact: art}
		if err := tx.PutJSON(ctx, img.ID, TypeImage, img); err != nil {
			return err
		}
		pub.ArtifactID = img.ID
		return nil
	})
}

// galleryTarget splits a sharedImage galleryImageId into the definition
// and an explicit version, if one is named.
func galleryTarget(d template.Distributor) (resourceid.ID, string, error) {
	gid, err := resourceid.Parse(d.GalleryImageID)
	if err != nil {
		return gid, "", fmt.Errorf("galleryImageId %s: %w", d.GalleryImageID, err)
	}
	explicit := ""
	if len(gid.Types) == 3 && strings.EqualFold(gid.Types[2], "versions") {
		explicit = gid.Names[2]
		gid.Types, gid.Names = gid.Types[:2], gid.Names[:2]
	}
	if !strings.EqualFold(gid.Type(), TypeGalleryImage) {
		return gid, "", fmt.Errorf("galleryImageId %s is not a gallery image definition id", d.GalleryImageID)
	}
	return gid, explicit, nil
}

func (s *Service) publishGalleryVersion(ctx context.Context, t ImageTemplate, r Run, p Publication, pub *Published) error {
	d := p.Target
	gid, explicit, err := galleryTarget(d)
	if err != nil {
		return err
	}
	var v Resource
	var regions []distribute.TargetRegion
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		var def, gallery Resource
		if _, err := tx.GetJSON(ctx, gid.String(), &def); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				gal := gid
				gal.Types, gal.Names = gid.Types[:1], gid.Names[:1]
				if _, gerr := tx.Get(ctx, gal.String()); errors.Is(gerr, store.ErrNotFound) {
					return fmt.Errorf("the gallery '%s' does not exist: create the gallery and the image definition '%s' before running the template", gal.Name(), gid.Name())
				}
				return fmt.Errorf("the gallery image definition '%s' does not exist in gallery '%s': create it before running the template", gid.Name(), gid.Names[0])
			}
			return err
		}
		gal := gid
		gal.Types, gal.Names = gid.Types[:1], gid.Names[:1]
		if _, err := tx.GetJSON(ctx, gal.String(), &gallery); err != nil {
			return fmt.Errorf("the gallery of %s: %w", def.ID, err)
		}
		if want, _ := def.Properties["osType"].(string); want != "" && p.OSType != "" && !strings.EqualFold(want, p.OSType) {
			return fmt.Errorf("the image is %s but the gallery image definition '%s' is for %s", p.OSType, def.Name, want)
		}
		if want, _ := def.Properties["hyperVGeneration"].(string); want != "" && !strings.EqualFold(want, or(p.HyperVGeneration, "V1")) {
			return fmt.Errorf("the image is Hyper-V generation %s but the gallery image definition '%s' is %s", or(p.HyperVGeneration, "V1"), def.Name, want)
		}
		var err error
		if regions, err = distribute.GalleryRegions(d, gallery.Location); err != nil {
			return err
		}
		var unknown []string
		for _, rg := range regions {
			if !s.regions.Has(rg.Name) {
				unknown = append(unknown, rg.Name)
			}
		}
		if len(unknown) > 0 {
			return fmt.Errorf("cannot replicate to %s: not regions this goldsmith site serves (configured: %s)",
				strings.Join(unknown, ", "), strings.Join(s.regions.Names(), ", "))
		}
		existing, err := tx.List(ctx, store.Query{Type: TypeGalleryImageVersion, Scope: def.ID})
		if err != nil {
			return err
		}
		var names []string
		for _, e := range existing {
			names = append(names, e.ID[strings.LastIndex(e.ID, "/")+1:])
		}
		version, err := distribute.VersionName(distribute.VersionRequest{Explicit: explicit, Versioning: d.Versioning,
			APIVersion: t.APIVersion, SourceVersion: sourceVersion(t.Template.Properties.Source), Existing: names, Now: tx.Now()})
		if err != nil {
			return err
		}
		id := def.ID + "/versions/" + version
		var names2 []string
		var targetRegions, summary []any
		for _, rg := range regions {
			names2 = append(names2, rg.Name)
			targetRegions = append(targetRegions, map[string]any{"name": rg.Name, "regionalReplicaCount": rg.ReplicaCount, "storageAccountType": rg.StorageAccountType})
			summary = append(summary, map[string]any{"region": rg.Name, "state": "Queued", "progress": 0})
		}
		v = Resource{ID: id, Name: version, Type: TypeGalleryImageVersion, Location: gallery.Location, Tags: d.ArtifactTags,
			Properties: map[string]any{
				"publishingProfile": map[string]any{
					"targetRegions":      targetRegions,
					"replicaCount":       1,
					"excludeFromLatest":  d.ExcludeFromLatest,
					"publishedDate":      tx.Now().UTC().Format(time.RFC3339),
					"storageAccountType": or(d.StorageAccountType, "Standard_LRS"),
					"replicationMode":    or(d.ReplicationMode, "Full"),
				},
				"storageProfile": map[string]any{
					"osDiskImage": map[string]any{"sizeInGB": diskSizeGB(p.Output.Size), "hostCaching": "ReadWrite"},
					"source":      map[string]any{},
				},
				"safetyProfile":     map[string]any{"allowDeletionOfReplicatedLocations": true},
				"provisioningState": StateCreating,
				"replicationStatus": map[string]any{"aggregatedState": "InProgress", "summary": summary},
			},
			SystemData: newSystemData(tx.Now()), Artifact: s.artifactOf(p, id, names2)}
		v.Artifact.Run = r.RunID
		if err := tx.CreateJSON(ctx, v.ID, TypeGalleryImageVersion, v); err != nil {
			if errors.Is(err, store.ErrExists) {
				return fmt.Errorf("the gallery image version %s already exists", v.ID)
			}
			return err
		}
		for _, rg := range regions {
			if err := s.refs.Acquire(ctx, tx, rg.Name, v.Artifact.SHA256, v.Artifact.Holder); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.logf("goldsmith: gallery image version %s: replicating to %d regions", v.ID, len(regions))
	replicas := make([]distribute.Replica, len(regions))
	for i, rg := range regions {
		st, _ := s.regions.Store(rg.Name)
		replicas[i] = distribute.Replica{Region: rg.Name, Store: st}
	}
	var mu sync.Mutex // one status update at a time, in order
	res := distribute.Replicate(ctx, p.Source, replicas, func(region, state string, rerr error) {
		mu.Lock()
		defer mu.Unlock()
		if err := s.setReplicationState(context.WithoutCancel(ctx), v.ID, region, state, rerr); err != nil {
			s.log.Warn("record replication status", "version", v.ID, "region", region, "err", err)
		}
	})
	var failed []string
	for _, rr := range res {
		if rr.Err != nil {
			failed = append(failed, rr.Err.Error())
			continue
		}
		how := "reused"
		switch {
		case rr.Placed.Copied:
			how = "copied and verified"
		case rr.Placed.Linked:
			how = "linked"
		}
		p.logf("goldsmith: %s: region %s %s (sha256 %s) in %s", v.Name, rr.Region, how, v.Artifact.SHA256, rr.Duration.Round(time.Millisecond))
	}
	return s.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		var cur Resource
		if _, err := tx.GetJSON(ctx, v.ID, &cur); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("the gallery image version %s was deleted while it replicated", v.ID)
			}
			return err
		}
		if len(failed) > 0 {
			if _, err := s.deleteTree(ctx, tx, cur.ID); err != nil {
				return err
			}
			return fmt.Errorf("replication of %s failed: %s", v.Name, strings.Join(failed, "; "))
		}
		cur.Properties["provisioningState"] = StateSucceeded
		if rs, ok := cur.Properties["replicationStatus"].(map[string]any); ok {
			rs["aggregatedState"] = "Completed"
		}
		cur.SystemData.touch(tx.Now())
		if err := tx.PutJSON(ctx, cur.ID, TypeGalleryImageVersion, cur); err != nil {
			return err
		}
		pub.ArtifactID = cur.ID
		return nil
	})
}

// setReplicationState records one region's replication state on a version.
func (s *Service) setReplicationState(ctx context.Context, id, region, state string, rerr error) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		var v Resource
		if _, err := tx.GetJSON(ctx, id, &v); err != nil {
			return err
		}
		rs, _ := v.Properties["replicationStatus"].(map[string]any)
		summary, _ := rs["summary"].([]any)
		for _, e := range summary {
			m, _ := e.(map[string]any)
			if m == nil || m["region"] != region {
				continue
			}
			m["state"] = state
			switch state {
			case distribute.StateCompleted:
				m["progress"] = 100
			case distribute.StateFailed:
				if rerr != nil {
					m["details"] = rerr.Error()
				}
			}
		}
		if state == distribute.StateFailed {
			rs["aggregatedState"] = "Failed"
		}
		return tx.PutJSON(ctx, id, TypeGalleryImageVersion, v)
	})
}

// sourceVersion is the source image's exact version, for versioning Source.
func sourceVersion(src template.Source) string {
	switch src.Type {
	case template.SourcePlatformImage:
		return or(src.ExactVersion, src.Version)
	case template.SourceSharedImageVersion:
		id := or(src.ExactVersion, src.ImageVersionID)
		return id[strings.LastIndex(id, "/")+1:]
	}
	return ""
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
