package resource

// Distribution: what a finished build's outputs become. Every target is
// published at once (each in its own goroutine):
//
//   - managedImage: a Microsoft.Compute/images resource at imageId, its disk
//     a blob in the image location's store;
//   - sharedImage: a gallery image version (numbered as AIB numbers it),
//     replicated into every target region's store in parallel, each copy's
//     sha256 verified; while it replicates the version reads
//     provisioningState Creating with per-region replicationStatus;
//   - VHD: a fixed VHD in the staging group, downloaded through a signed URL.
//
// Each target gets a runOutput. When some targets fail, the run is
// PartiallySucceeded (Failed when all do) with a message naming each failed
// target and why, and the build outputs the failed targets need are kept so
// RetryDistribution can publish them without building again.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/distribute"
	"github.com/goldsmith-dev/goldsmith/queue"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

// BlobScheme prefixes a data-directory-relative path in a stored
// artifactUri; the API turns it into a signed download URL.
const BlobScheme = "goldsmith-blob:"

// target is one distribute target on its way to publication.
type target struct {
	dist template.Distributor
	out  build.Output
	// the image's, from the build's result
	osType, hyperVGeneration string
	src                      *distribute.Source
	err                      error
	// results
	artifactID, artifactURI string
	kept                    bool // succeeded in an earlier attempt
}

// distribute publishes a finished build's outputs and ends the run; the
// targets whose output is in unusable (by lower-case runOutputName) fail
// with its error. With retry, only the targets whose runOutput has not
// succeeded are published.
func (s *Service) distribute(ctx context.Context, job queue.Job, runID string, res RunResult, unusable map[string]error, log io.Writer, retry bool) error {
	var t ImageTemplate
	var r Run
	prev := map[string]Resource{}
	err := s.st.View(ctx, func(tx *store.Tx) error {
		if _, err := tx.GetJSON(ctx, runID, &r); err != nil {
			return err
		}
		if _, err := tx.GetJSON(ctx, r.TemplateID, &t); err != nil {
			return err
		}
		if !retry {
			return nil
		}
		outs, _, err := list[Resource](ctx, tx, TypeRunOutput, t.ID, Page{})
		for _, o := range outs {
			prev[strings.ToLower(o.Name)] = o
		}
		return err
	})
	if err != nil {
		return err
	}
	byName := map[string]build.Output{}
	for _, o := range res.Outputs {
		byName[strings.ToLower(o.RunOutputName)] = o
	}
	sources := map[string]*distribute.Source{}
	var targets []*target
	var wg sync.WaitGroup
	for _, d := range t.Template.Properties.Distribute {
		tg := &target{dist: d, osType: res.OSType, hyperVGeneration: res.HyperVGeneration}
		targets = append(targets, tg)
		if p, ok := prev[strings.ToLower(d.RunOutputName)]; ok && p.Properties["provisioningState"] == StateSucceeded {
			tg.kept = true
			tg.artifactID, _ = p.Properties["artifactId"].(string)
			tg.artifactURI, _ = p.Properties["artifactUri"].(string)
			continue
		}
		o, ok := byName[strings.ToLower(d.RunOutputName)]
		switch {
		case !ok:
			tg.err = fmt.Errorf("the build produced no output for %s", d.RunOutputName)
			continue
		case unusable[strings.ToLower(d.RunOutputName)] != nil:
			tg.err = unusable[strings.ToLower(d.RunOutputName)]
			continue
		}
		tg.out = o
		key := strings.ToLower(o.SHA256) + "/" + o.Format
		if sources[key] == nil {
			sources[key] = distribute.NewSource(o.Path, o.SHA256, or(o.Format, "raw"), o.Size)
			// The Executor hashed the file it wrote (Output.SHA256); kept
			// outputs of a retry may be copies nobody hashed.
			sources[key].Trusted = !retry
		}
		tg.src = sources[key]
		logf(log, "goldsmith: distributing %s (%s) from %s", d.RunOutputName, d.Type, o.Path)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			tg.err = s.publish(ctx, t, r, tg, log)
			if tg.err == nil {
				logf(log, "goldsmith: distributed %s to %s%s in %s", d.RunOutputName, tg.artifactID, tg.artifactURI, time.Since(start).Round(time.Millisecond))
			}
		}()
	}
	wg.Wait()
	kept, keptDir, err := s.keepOutputs(ctx, r, targets)
	if err != nil {
		logf(log, "goldsmith: could not keep the outputs of the failed targets for a retry: %v", err)
	}
	err = s.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		var cur Run
		if _, err := tx.GetJSON(ctx, r.ID, &cur); err != nil || !cur.Active() || cur.State == RunCanceling {
			if err == nil && cur.State == RunCanceling {
				return s.finishRunTx(ctx, tx, job, r.ID, RunCanceled, "The run was canceled during Distributing.", nil)
			}
			return err
		}
		var failed []string
		for _, tg := range targets {
			if tg.kept {
				continue
			}
			state := StateSucceeded
			if tg.err != nil {
				state = StateFailed
				failed = append(failed, fmt.Sprintf("%s (%s): %v", tg.dist.RunOutputName, tg.dist.Type, tg.err))
				logf(log, "goldsmith: distributing %s failed: %v", tg.dist.RunOutputName, tg.err)
			}
			ro := Resource{ID: t.ID + "/runOutputs/" + tg.dist.RunOutputName, Name: tg.dist.RunOutputName, Type: TypeRunOutput,
				Properties: map[string]any{"provisioningState": state}, SystemData: newSystemData(tx.Now())}
			if tg.artifactID != "" {
				ro.Properties["artifactId"] = tg.artifactID
			}
			if tg.artifactURI != "" {
				ro.Properties["artifactUri"] = tg.artifactURI
			}
			if err := tx.PutJSON(ctx, ro.ID, TypeRunOutput, ro); err != nil {
				return err
			}
		}
		cur.Kept, cur.KeptDir = kept, keptDir
		if err := tx.PutJSON(ctx, cur.ID, TypeRun, cur); err != nil {
			return err
		}
		if len(kept) == 0 && r.KeptDir != "" && r.KeptDir != keptDir {
			old := r.KeptDir
			tx.AfterCommit(func() { s.removeFiles(old) })
		}
		state, msg := RunSucceeded, ""
		var opErr *OperationError
		switch {
		case len(failed) == len(targets):
			state = RunFailed
			msg = fmt.Sprintf("Failed in distributing %d images out of total %d: %s", len(failed), len(targets), strings.Join(failed, "; "))
			opErr = &OperationError{Code: "InternalOperationError", Message: msg}
		case len(failed) > 0:
			state = RunPartiallySucceeded
			msg = fmt.Sprintf("Failed in distributing %d images out of total %d: %s", len(failed), len(targets), strings.Join(failed, "; "))
		}
		if len(kept) > 0 {
			msg += " The build outputs are kept: retry the distribution without building again (POST /goldsmith/v1" + t.ID + "/runs/" + r.RunID + "/distribute)."
		}
		if err := s.finishRunTx(ctx, tx, job, r.ID, state, msg, opErr); err != nil {
			return err
		}
		s.fireTriggers(ctx, tx, t, targets)
		return nil
	})
	if err != nil && keptDir != "" && keptDir != r.KeptDir {
		s.removeFiles(keptDir)
	}
	return err
}

// keepOutputs keeps (hard links, or copies) the outputs failed targets
// need, so the distribution can be retried after the run's scratch space
// is gone. Outputs kept by an earlier attempt stay where they are.
func (s *Service) keepOutputs(ctx context.Context, r Run, targets []*target) ([]KeptOutput, string, error) {
	dir := path.Join("kept", r.RunID)
	var kept []KeptOutput
	for _, tg := range targets {
		if tg.err == nil || tg.kept || tg.out.Path == "" {
			continue
		}
		o := tg.out
		rel := s.rel(o.Path)
		if !strings.HasPrefix(rel, dir+"/") {
			rel = path.Join(dir, safeName(o.RunOutputName)+"."+or(o.Format, "raw"))
			dst := s.abs(rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return kept, dir, err
			}
			if err := os.Link(o.Path, dst); err != nil {
				if _, statErr := os.Stat(o.Path); statErr != nil {
					continue // nothing to keep
				}
				if err := disk.CopySparse(ctx, dst, o.Path); err != nil {
					return kept, dir, err
				}
			}
		}
		kept = append(kept, KeptOutput{RunOutputName: o.RunOutputName, Path: rel, Format: o.Format, SHA256: o.SHA256, Size: o.Size,
			OSType: tg.osType, HyperVGeneration: tg.hyperVGeneration})
	}
	if len(kept) == 0 {
		return nil, "", nil
	}
	return kept, dir, nil
}

// publish distributes one target.
func (s *Service) publish(ctx context.Context, t ImageTemplate, r Run, tg *target, log io.Writer) error {
	switch tg.dist.Type {
	case template.DistributeVHD:
		return s.publishVHD(ctx, t, r, tg)
	case template.DistributeManagedImage:
		return s.publishManagedImage(ctx, t, r, tg)
	case template.DistributeSharedImage:
		return s.publishGalleryVersion(ctx, t, r, tg, log)
	}
	return fmt.Errorf("unknown distribute type %q", tg.dist.Type)
}

func (s *Service) publishVHD(ctx context.Context, t ImageTemplate, r Run, tg *target) error {
	if !strings.EqualFold(tg.out.Format, "vhd") {
		return fmt.Errorf("the build wrote a %s disk for a VHD target, not a fixed VHD", tg.out.Format)
	}
	rel := path.Join(s.stagingDir(t.ExactStagingResourceGroup), "vhds", safeName(tg.dist.RunOutputName)+"_"+r.RunID+".vhd")
	if err := distribute.PlaceVHD(ctx, tg.out.Path, tg.out.SHA256, s.abs(rel)); err != nil {
		return err
	}
	tg.artifactURI = BlobScheme + rel
	return nil
}

func diskSizeGB(size int64) int {
	const gib = 1 << 30
	return int((size + gib - 1) / gib)
}

// artifactOf describes a target's disk once stored in regions.
func (s *Service) artifactOf(tg *target, holder string, regions []string) *Artifact {
	vsize, err := distribute.VirtualSize(tg.out.Path, tg.out.Format)
	if err != nil {
		s.log.Warn("read the virtual size of an output", "path", tg.out.Path, "err", err)
	}
	return &Artifact{Format: or(tg.out.Format, "raw"), SHA256: strings.ToLower(tg.out.SHA256), Size: tg.out.Size, VirtualSize: vsize,
		OSType: or(tg.osType, "Linux"), Regions: regions, Holder: holder}
}

func (s *Service) publishManagedImage(ctx context.Context, t ImageTemplate, r Run, tg *target) error {
	iid, err := resourceid.ParseAs(tg.dist.ImageID, resourceid.ManagedImage)
	if err != nil {
		return err
	}
	loc := NormalizeLocation(or(tg.dist.Location, t.Location))
	st, ok := s.regions.Store(loc)
	if !ok {
		return s.regions.Check(loc)
	}
	holder := iid.String() + "#" + r.RunID
	sum := strings.ToLower(tg.out.SHA256)
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		if _, err := requireGroup(ctx, tx, iid); err != nil {
			return fmt.Errorf("the resource group '%s' of imageId %s does not exist: create it before running the template", iid.ResourceGroup, tg.dist.ImageID)
		}
		return acquireBlob(ctx, tx, loc, sum, holder)
	})
	if err != nil {
		return err
	}
	res := distribute.Replicate(ctx, tg.src, []distribute.Replica{{Region: loc, Store: st}}, nil)
	art := s.artifactOf(tg, holder, []string{loc})
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
			return fmt.Errorf("the resource group '%s' of imageId %s was deleted during distribution", iid.ResourceGroup, tg.dist.ImageID)
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
		img := Resource{ID: iid.String(), Name: iid.Name(), Type: TypeImage, Location: loc, Tags: tg.dist.ArtifactTags,
			Properties: map[string]any{
				"storageProfile": map[string]any{
					"osDisk": map[string]any{"osType": or(tg.osType, "Linux"), "osState": "Generalized",
						"diskSizeGB": diskSizeGB(max(art.VirtualSize, art.Size)), "caching": "ReadWrite", "storageAccountType": "Standard_LRS"},
					"dataDisks":     []any{},
					"zoneResilient": false,
				},
				"hyperVGeneration":  or(tg.hyperVGeneration, "V1"),
				"provisioningState": StateSucceeded,
			},
			SystemData: newSystemData(tx.Now()), Artifact: art}
		if err := tx.PutJSON(ctx, img.ID, TypeImage, img); err != nil {
			return err
		}
		tg.artifactID = img.ID
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

func (s *Service) publishGalleryVersion(ctx context.Context, t ImageTemplate, r Run, tg *target, log io.Writer) error {
	d := tg.dist
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
		if want, _ := def.Properties["osType"].(string); want != "" && tg.osType != "" && !strings.EqualFold(want, tg.osType) {
			return fmt.Errorf("the image is %s but the gallery image definition '%s' is for %s", tg.osType, def.Name, want)
		}
		if want, _ := def.Properties["hyperVGeneration"].(string); want != "" && !strings.EqualFold(want, or(tg.hyperVGeneration, "V1")) {
			return fmt.Errorf("the image is Hyper-V generation %s but the gallery image definition '%s' is %s", or(tg.hyperVGeneration, "V1"), def.Name, want)
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
					"osDiskImage": map[string]any{"sizeInGB": diskSizeGB(tg.out.Size), "hostCaching": "ReadWrite"},
					"source":      map[string]any{},
				},
				"safetyProfile":     map[string]any{"allowDeletionOfReplicatedLocations": true},
				"provisioningState": StateCreating,
				"replicationStatus": map[string]any{"aggregatedState": "InProgress", "summary": summary},
			},
			SystemData: newSystemData(tx.Now()), Artifact: s.artifactOf(tg, id, names2)}
		if err := tx.CreateJSON(ctx, v.ID, TypeGalleryImageVersion, v); err != nil {
			if errors.Is(err, store.ErrExists) {
				return fmt.Errorf("the gallery image version %s already exists", v.ID)
			}
			return err
		}
		for _, rg := range regions {
			if err := acquireBlob(ctx, tx, rg.Name, v.Artifact.SHA256, v.Artifact.Holder); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	logf(log, "goldsmith: gallery image version %s: replicating to %d regions", v.ID, len(regions))
	replicas := make([]distribute.Replica, len(regions))
	for i, rg := range regions {
		st, _ := s.regions.Store(rg.Name)
		replicas[i] = distribute.Replica{Region: rg.Name, Store: st}
	}
	var mu sync.Mutex // one status update at a time, in order
	res := distribute.Replicate(ctx, tg.src, replicas, func(region, state string, rerr error) {
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
		logf(log, "goldsmith: %s: region %s %s (sha256 %s) in %s", v.Name, rr.Region, how, v.Artifact.SHA256, rr.Duration.Round(time.Millisecond))
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
		tg.artifactID = cur.ID
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

// fireTriggers starts the runs of templates with a SourceImage trigger
// whose source is the "latest" version of a definition that just got a new
// version.
func (s *Service) fireTriggers(ctx context.Context, tx *store.Tx, from ImageTemplate, targets []*target) {
	var defs []string
	for _, tg := range targets {
		if !tg.kept && tg.err == nil && tg.dist.Type == template.DistributeSharedImage && tg.artifactID != "" {
			defs = append(defs, strings.ToLower(tg.artifactID[:strings.LastIndex(strings.ToLower(tg.artifactID), "/versions/")]))
		}
	}
	if len(defs) == 0 {
		return
	}
	triggers, _, err := list[Resource](ctx, tx, TypeTrigger, "", Page{})
	if err != nil {
		s.log.Warn("list triggers", "err", err)
		return
	}
	for _, trg := range triggers {
		tid, err := resourceid.Parse(trg.ID)
		if err != nil {
			continue
		}
		tmplID := templateOf(tid)
		if strings.EqualFold(tmplID, from.ID) {
			continue // a template never triggers itself
		}
		var t ImageTemplate
		if _, err := tx.GetJSON(ctx, tmplID, &t); err != nil || t.Template == nil {
			continue
		}
		src := strings.ToLower(t.Template.Properties.Source.ImageVersionID)
		if t.Template.Properties.Source.Type != template.SourceSharedImageVersion || !strings.HasSuffix(src, "/versions/latest") {
			continue
		}
		if !slices.Contains(defs, strings.TrimSuffix(src, "/versions/latest")) {
			continue
		}
		if _, err := s.startRunTx(ctx, tx, &t); err != nil {
			s.log.Info("trigger did not start a run", "trigger", trg.ID, "reason", err)
			continue
		}
		if err := tx.PutJSON(ctx, t.ID, TypeImageTemplate, t); err != nil {
			s.log.Warn("trigger", "trigger", trg.ID, "err", err)
		}
		trg.Properties["status"] = map[string]any{"code": "Healthy", "message": "started a run for new source image version", "time": tx.Now().UTC().Format(time.RFC3339)}
		_ = tx.PutJSON(ctx, trg.ID, TypeTrigger, trg)
	}
}
