package resource

// Distribution: what a successful run's outputs become. This is the simple
// version (issue 5 replaces it): a ManagedImage target becomes a
// Microsoft.Compute/images resource, a SharedImage target a gallery image
// version in an existing definition, a VHD target a file in the staging
// group; each disk is kept in the data directory, verified by sha256, and
// every target gets a runOutput. Replication to regions is recorded, not
// performed.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/queue"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

// BlobScheme prefixes a data-directory-relative path in a stored
// artifactUri; the API turns it into a download URL.
const BlobScheme = "goldsmith-blob:"

// target is one distribute target on its way to publication.
type target struct {
	dist template.Distributor
	out  Output
	art  *Artifact
	err  error
	// results
	artifactID, artifactURI string
}

// distribute publishes a finished build's outputs and ends the run.
func (s *Service) distribute(ctx context.Context, job queue.Job, runID string, outputs []Output, log io.Writer) error {
	var t ImageTemplate
	var r Run
	err := s.st.View(ctx, func(tx *store.Tx) error {
		if _, err := tx.GetJSON(ctx, runID, &r); err != nil {
			return err
		}
		_, err := tx.GetJSON(ctx, r.TemplateID, &t)
		return err
	})
	if err != nil {
		return err
	}
	byName := map[string]Output{}
	for _, o := range outputs {
		byName[strings.ToLower(o.RunOutputName)] = o
	}
	var targets []*target
	var placed []string
	cleanup := func() { s.removeFiles(placed...) }
	for _, d := range t.Template.Properties.Distribute {
		tg := &target{dist: d}
		targets = append(targets, tg)
		o, ok := byName[strings.ToLower(d.RunOutputName)]
		switch {
		case !ok:
			tg.err = fmt.Errorf("the build produced no output for %s", d.RunOutputName)
			continue
		case o.Err != nil:
			tg.err = o.Err
			continue
		}
		tg.out = o
		format := o.Format
		if format == "" {
			format = "raw"
		}
		rel := path.Join("artifacts", newGUID()+"."+format)
		if d.Type == template.DistributeVHD {
			rel = path.Join(s.stagingDir(t.ExactStagingResourceGroup), "vhds", safeName(d.RunOutputName)+"_"+r.RunID+"."+format)
		}
		logf(log, "goldsmith: distributing %s (%s) from %s", d.RunOutputName, d.Type, o.Path)
		tg.art, tg.err = s.placeArtifact(ctx, o, rel)
		if tg.art != nil {
			placed = append(placed, tg.art.Path)
		}
		if ctx.Err() != nil {
			cleanup()
			return ctx.Err()
		}
	}
	var replaced []string
	err = s.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		replaced = replaced[:0]
		var cur Run
		if _, err := tx.GetJSON(ctx, r.ID, &cur); err != nil || !cur.Active() || cur.State == RunCanceling {
			if err == nil && cur.State == RunCanceling {
				return s.finishRunTx(ctx, tx, job, r.ID, RunCanceled, "The run was canceled during Distributing.", nil)
			}
			return err
		}
		for _, tg := range targets {
			if tg.err != nil {
				continue
			}
			old, err := s.publish(ctx, tx, t, r, tg)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					return err
				}
				tg.err = errors.New(e.Message)
				continue
			}
			replaced = append(replaced, old...)
		}
		var failed []string
		for _, tg := range targets {
			state := StateSucceeded
			if tg.err != nil {
				state = StateFailed
				failed = append(failed, fmt.Sprintf("%s: %v", tg.dist.RunOutputName, tg.err))
				logf(log, "goldsmith: distributing %s failed: %v", tg.dist.RunOutputName, tg.err)
			} else {
				logf(log, "goldsmith: distributed %s to %s%s", tg.dist.RunOutputName, tg.artifactID, tg.artifactURI)
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
		if err := s.finishRunTx(ctx, tx, job, r.ID, state, msg, opErr); err != nil {
			return err
		}
		s.fireTriggers(ctx, tx, t, targets)
		return nil
	})
	if err != nil {
		cleanup()
		return err
	}
	var unused []string
	for _, tg := range targets {
		if tg.err != nil && tg.art != nil {
			unused = append(unused, tg.art.Path)
		}
	}
	s.removeFiles(append(unused, replaced...)...)
	return nil
}

// placeArtifact puts an output's file at rel (a hard link when it can, a
// copy otherwise) and checks its sha256.
func (s *Service) placeArtifact(ctx context.Context, o Output, rel string) (*Artifact, error) {
	dst := s.abs(rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return nil, fmt.Errorf("create artifact directory: %w", err)
	}
	if err := os.Link(o.Path, dst); err != nil {
		if err := copyFile(ctx, o.Path, dst); err != nil {
			_ = os.Remove(dst)
			return nil, fmt.Errorf("copy the artifact: %w", err)
		}
	}
	art := &Artifact{Path: rel, Format: o.Format}
	sum, size, err := hashFile(ctx, dst)
	if err != nil {
		_ = os.Remove(dst)
		return nil, fmt.Errorf("hash the artifact: %w", err)
	}
	if o.SHA256 != "" && !strings.EqualFold(o.SHA256, sum) {
		_ = os.Remove(dst)
		return nil, fmt.Errorf("the artifact %s does not match its checksum: expected %s, actual %s", o.Path, o.SHA256, sum)
	}
	art.SHA256, art.Size = sum, size
	if art.Format == "" {
		art.Format = "raw"
	}
	return art, nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func copyFile(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, ctxReader{ctx, in})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func hashFile(ctx context.Context, p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// publish creates the resource a target distributes to, in tx, and returns
// the artifact files of resources it replaced. A target that cannot be
// published returns an *Error.
func (s *Service) publish(ctx context.Context, tx *store.Tx, t ImageTemplate, r Run, tg *target) ([]string, error) {
	d := tg.dist
	switch d.Type {
	case template.DistributeVHD:
		tg.artifactURI = BlobScheme + tg.art.Path
		if d.URI != "" {
			tg.artifactURI += "#requested=" + d.URI
		}
		return nil, nil
	case template.DistributeManagedImage:
		return s.publishManagedImage(ctx, tx, t, tg)
	case template.DistributeSharedImage:
		return nil, s.publishGalleryVersion(ctx, tx, t, r, tg)
	}
	return nil, badRequest(template.CodeBadDistributeType, "unknown distribute type %q", d.Type)
}

func diskSizeGB(size int64) int {
	const gib = 1 << 30
	return int((size + gib - 1) / gib)
}

func (s *Service) publishManagedImage(ctx context.Context, tx *store.Tx, t ImageTemplate, tg *target) ([]string, error) {
	iid, err := resourceid.ParseAs(tg.dist.ImageID, resourceid.ManagedImage)
	if err != nil {
		return nil, badRequest(template.CodeBadDistributeType, "%v", err)
	}
	if _, err := requireGroup(ctx, tx, iid); err != nil {
		return nil, badRequest("ResourceGroupNotFound", "the resource group %s of imageId %s does not exist", iid.ResourceGroup, tg.dist.ImageID)
	}
	var replaced []string
	var old Resource
	if _, err := tx.GetJSON(ctx, iid.String(), &old); err == nil {
		iid, _ = resourceid.Parse(old.ID) // keep the casing it was created with
		if old.Artifact != nil {
			replaced = append(replaced, old.Artifact.Path)
		}
	}
	osType := or(tg.out.OSType, "Linux")
	hv := or(tg.out.HyperVGeneration, "V1")
	loc := NormalizeLocation(or(tg.dist.Location, t.Location))
	img := Resource{ID: iid.String(), Name: iid.Name(), Type: TypeImage, Location: loc, Tags: tg.dist.ArtifactTags,
		Properties: map[string]any{
			"storageProfile": map[string]any{
				"osDisk": map[string]any{"osType": osType, "osState": "Generalized", "diskSizeGB": diskSizeGB(tg.art.Size),
					"caching": "ReadWrite", "storageAccountType": "Standard_LRS"},
				"dataDisks":     []any{},
				"zoneResilient": false,
			},
			"hyperVGeneration":  hv,
			"provisioningState": StateSucceeded,
		},
		SystemData: newSystemData(tx.Now()), Artifact: tg.art}
	if err := tx.PutJSON(ctx, img.ID, TypeImage, img); err != nil {
		return nil, err
	}
	tg.artifactID = img.ID
	return replaced, nil
}

func (s *Service) publishGalleryVersion(ctx context.Context, tx *store.Tx, t ImageTemplate, r Run, tg *target) error {
	d := tg.dist
	gid, err := resourceid.Parse(d.GalleryImageID)
	if err != nil {
		return badRequest(template.CodeBadSharedImageDistribute, "galleryImageId %s: %v", d.GalleryImageID, err)
	}
	explicit := ""
	if len(gid.Types) == 3 && strings.EqualFold(gid.Types[2], "versions") {
		explicit = gid.Names[2]
		gid.Types, gid.Names = gid.Types[:2], gid.Names[:2]
	}
	if !strings.EqualFold(gid.Type(), TypeGalleryImage) {
		return badRequest(template.CodeBadSharedImageDistribute, "galleryImageId %s is not a gallery image definition id", d.GalleryImageID)
	}
	var def Resource
	if _, err := tx.GetJSON(ctx, gid.String(), &def); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return badRequest(template.CodeBadSharedImageDistribute,
				"the gallery image definition %s does not exist: create the gallery and the image definition before running the template", d.GalleryImageID)
		}
		return err
	}
	if want, _ := def.Properties["osType"].(string); want != "" && tg.out.OSType != "" && !strings.EqualFold(want, tg.out.OSType) {
		return badRequest(template.CodeBadSharedImageDistribute, "the image is %s but the gallery image definition %s is for %s", tg.out.OSType, def.Name, want)
	}
	if want, _ := def.Properties["hyperVGeneration"].(string); want != "" && tg.out.HyperVGeneration != "" && !strings.EqualFold(want, tg.out.HyperVGeneration) {
		return badRequest(template.CodeBadSharedImageDistribute, "the image is Hyper-V generation %s but the gallery image definition %s is %s", tg.out.HyperVGeneration, def.Name, want)
	}
	existing, err := tx.List(ctx, store.Query{Type: TypeGalleryImageVersion, Scope: def.ID})
	if err != nil {
		return err
	}
	var names []string
	for _, e := range existing {
		names = append(names, e.ID[strings.LastIndex(e.ID, "/")+1:])
	}
	version, err := versionName(explicit, d.Versioning, t.Template.Properties.Source, names, tx.Now())
	if err != nil {
		return badRequest(template.CodeBadSharedImageDistribute, "%v", err)
	}
	var regions []any
	var summary []any
	add := func(name string, count int, sat string) {
		name = NormalizeLocation(name)
		if count <= 0 {
			count = 1
		}
		if sat == "" {
			sat = "Standard_LRS"
		}
		regions = append(regions, map[string]any{"name": name, "regionalReplicaCount": count, "storageAccountType": sat})
		summary = append(summary, map[string]any{"region": name, "state": "Completed", "progress": 100})
	}
	for _, tr := range d.TargetRegions {
		add(tr.Name, tr.ReplicaCount, tr.StorageAccountType)
	}
	for _, name := range d.ReplicationRegions {
		add(name, 1, d.StorageAccountType)
	}
	if len(regions) == 0 {
		add(def.Location, 1, d.StorageAccountType)
	}
	v := Resource{ID: def.ID + "/versions/" + version, Name: version, Type: TypeGalleryImageVersion, Location: def.Location,
		Tags: d.ArtifactTags,
		Properties: map[string]any{
			"publishingProfile": map[string]any{
				"targetRegions":      regions,
				"replicaCount":       1,
				"excludeFromLatest":  d.ExcludeFromLatest,
				"publishedDate":      tx.Now().UTC().Format(time.RFC3339),
				"storageAccountType": or(d.StorageAccountType, "Standard_LRS"),
				"replicationMode":    or(d.ReplicationMode, "Full"),
			},
			"storageProfile": map[string]any{
				"osDiskImage": map[string]any{"sizeInGB": diskSizeGB(tg.art.Size), "hostCaching": "ReadWrite"},
				"source":      map[string]any{},
			},
			"safetyProfile":     map[string]any{"allowDeletionOfReplicatedLocations": true},
			"provisioningState": StateSucceeded,
			"replicationStatus": map[string]any{"aggregatedState": "Completed", "summary": summary},
		},
		SystemData: newSystemData(tx.Now()), Artifact: tg.art}
	if err := tx.CreateJSON(ctx, v.ID, TypeGalleryImageVersion, v); err != nil {
		if errors.Is(err, store.ErrExists) {
			return badRequest(template.CodeBadSharedImageDistribute, "the gallery image version %s already exists", v.ID)
		}
		return err
	}
	tg.artifactID = v.ID
	_ = r
	return nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// versionName picks a gallery image version name as AIB does: the version
// in galleryImageId; versioning Latest (one patch above the highest
// version, within major when set); versioning Source (the source image's
// version); or by default 0.YYDDD.SSSSS from the time (day of year and
// second of day), made unique.
func versionName(explicit string, v *template.Versioning, src template.Source, existing []string, now time.Time) (string, error) {
	taken := func(name string) bool {
		return slices.ContainsFunc(existing, func(e string) bool { return strings.EqualFold(e, name) })
	}
	if explicit != "" {
		if _, ok := parseVersion(explicit); !ok {
			return "", fmt.Errorf("the gallery image version %q must be MAJOR.MINOR.PATCH with 32-bit integers", explicit)
		}
		return explicit, nil
	}
	if v != nil && strings.EqualFold(v.Scheme, "Source") {
		cand := src.ExactVersion
		switch src.Type {
		case template.SourcePlatformImage:
			cand = or(cand, src.Version)
		case template.SourceSharedImageVersion:
			if cand == "" {
				cand = src.ImageVersionID[strings.LastIndex(src.ImageVersionID, "/")+1:]
			}
		}
		if _, ok := parseVersion(cand); !ok {
			return "", fmt.Errorf("versioning scheme Source needs a source image with a MAJOR.MINOR.PATCH version, not %q", cand)
		}
		if taken(cand) {
			return "", fmt.Errorf("the gallery image version %s (from the source image) already exists", cand)
		}
		return cand, nil
	}
	if v != nil && strings.EqualFold(v.Scheme, "Latest") {
		major := -1
		if v.Major != nil {
			major = *v.Major
		}
		best, found := [3]int64{}, false
		for _, e := range existing {
			p, ok := parseVersion(e)
			if !ok || (major >= 0 && p[0] != int64(major)) {
				continue
			}
			if !found || slices.Compare(p[:], best[:]) > 0 {
				best, found = p, true
			}
		}
		switch {
		case found:
			best[2]++
		case major >= 0:
			best = [3]int64{int64(major), 0, 0}
		default:
			best = [3]int64{1, 0, 0}
		}
		return fmt.Sprintf("%d.%d.%d", best[0], best[1], best[2]), nil
	}
	now = now.UTC()
	minor := (now.Year()%100)*1000 + now.YearDay()
	patch := now.Hour()*3600 + now.Minute()*60 + now.Second()
	for {
		name := fmt.Sprintf("0.%d.%d", minor, patch)
		if !taken(name) {
			return name, nil
		}
		patch++
	}
}

func parseVersion(s string) ([3]int64, bool) {
	var out [3]int64
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

// fireTriggers starts the runs of templates with a SourceImage trigger
// whose source is the "latest" version of a definition that just got a new
// version.
func (s *Service) fireTriggers(ctx context.Context, tx *store.Tx, from ImageTemplate, targets []*target) {
	var defs []string
	for _, tg := range targets {
		if tg.err == nil && tg.dist.Type == template.DistributeSharedImage && tg.artifactID != "" {
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
