package resource

// ManagedImage and SharedImageVersion sources: a template builds on a
// managed image or gallery image version goldsmith distributed, read from
// the blob store of the template's region. AIB checks the source when the
// template is submitted (provisioningError BadManagedImageSource or
// BadSharedImageVersionSource) and resolves "latest" when a run starts; so
// does goldsmith.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/distribute"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/source"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

type runLocationKey struct{}

// WithRunLocation tells StoredDisk, called by the build engine during a
// run, which region the run's template is in.
func WithRunLocation(ctx context.Context, loc string) context.Context {
	return context.WithValue(ctx, runLocationKey{}, loc)
}

// sourceCode is the provisioningError code for a bad source of this type.
func sourceCode(src template.Source) string {
	if src.Type == template.SourceManagedImage {
		return template.CodeBadManagedImageSource
	}
	return template.CodeBadSharedImageVersionSrc
}

// lookupSource finds the image or gallery image version a source names
// ("latest": the highest succeeded version not excluded from latest) and
// checks that it has a copy in location (when set).
func (s *Service) lookupSource(ctx context.Context, tx *store.Tx, src template.Source, location string) (Resource, error) {
	var res Resource
	code := sourceCode(src)
	bad := func(format string, args ...any) error { return badRequest(code, format, args...) }
	switch src.Type {
	case template.SourceManagedImage:
		id, err := resourceid.ParseAs(src.ImageID, resourceid.ManagedImage)
		if err != nil {
			return res, bad("imageId %s: %v", src.ImageID, err)
		}
		if _, err := tx.GetJSON(ctx, id.String(), &res); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return res, bad("The source managed image %s does not exist.", src.ImageID)
			}
			return res, err
		}
	case template.SourceSharedImageVersion:
		id := or(src.ExactVersion, src.ImageVersionID)
		vid, err := resourceid.Parse(id)
		if err != nil || len(vid.Types) != 3 || !strings.EqualFold(vid.Type(), TypeGalleryImageVersion) {
			return res, bad("imageVersionId %s is not a gallery image version id (…/galleries/G/images/D/versions/V or …/versions/latest).", id)
		}
		if strings.EqualFold(vid.Name(), "latest") {
			def := vid
			def.Types, def.Names = vid.Types[:2], vid.Names[:2]
			versions, _, err := list[Resource](ctx, tx, TypeGalleryImageVersion, def.String(), Page{})
			if err != nil {
				return res, err
			}
			versions = slices.DeleteFunc(versions, func(v Resource) bool {
				pp, _ := v.Properties["publishingProfile"].(map[string]any)
				excluded, _ := pp["excludeFromLatest"].(bool)
				return excluded || v.Properties["provisioningState"] != StateSucceeded
			})
			if len(versions) == 0 {
				return res, bad("The gallery image definition %s has no version to use as latest (none succeeded, or all are excluded from latest).", def.String())
			}
			res = slices.MaxFunc(versions, func(a, b Resource) int { return distribute.CompareVersions(a.Name, b.Name) })
		} else if _, err := tx.GetJSON(ctx, vid.String(), &res); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return res, bad("The source gallery image version %s does not exist.", id)
			}
			return res, err
		}
	default:
		return res, fmt.Errorf("source type %s is not stored by goldsmith", src.Type)
	}
	if state, _ := res.Properties["provisioningState"].(string); state != StateSucceeded {
		return res, bad("The source %s is not ready: its provisioningState is %s.", res.ID, state)
	}
	if res.Artifact == nil {
		return res, bad("The source %s has no disk.", res.ID)
	}
	if location != "" && !slices.Contains(res.Artifact.Regions, NormalizeLocation(location)) {
		if src.Type == template.SourceManagedImage {
			return res, bad("The source managed image %s is in %s; it must be in the template's region %s.", res.ID, res.Location, location)
		}
		return res, bad("The source gallery image version %s is replicated to %s, not to the template's region %s: replicate it there, or build in one of those regions.",
			res.ID, strings.Join(res.Artifact.Regions, ", "), location)
	}
	return res, nil
}

// checkSource is the submission's check of a ManagedImage or
// SharedImageVersion source. A definition's "latest" may have no version
// yet (a SourceImage trigger waits for the first one); the run checks again.
func (s *Service) checkSource(ctx context.Context, tx *store.Tx, src template.Source, location string) error {
	id := src.ImageVersionID
	if src.Type == template.SourceSharedImageVersion && strings.HasSuffix(strings.ToLower(id), "/versions/latest") {
		def := id[:len(id)-len("/versions/latest")]
		if _, err := tx.Get(ctx, def); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return badRequest(template.CodeBadSharedImageVersionSrc, "The gallery image definition %s of the source does not exist.", def)
			}
			return err
		}
		_, err := s.lookupSource(ctx, tx, src, location)
		var e *Error
		if errors.As(err, &e) && strings.Contains(e.Message, "has no version to use as latest") {
			return nil
		}
		return err
	}
	_, err := s.lookupSource(ctx, tx, src, location)
	return err
}

// PinSource returns the template a run builds: a SharedImageVersion
// source's "latest" resolved to the exact version now, and recorded as the
// template's source exactVersion (as AIB does from 2022-07-01).
func (s *Service) PinSource(ctx context.Context, t ImageTemplate) (*template.Template, error) {
	src := t.Template.Properties.Source
	if src.Type != template.SourceManagedImage && src.Type != template.SourceSharedImageVersion {
		return t.Template, nil
	}
	pinned := *t.Template
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		pin := src
		pin.ExactVersion = ""
		res, err := s.lookupSource(ctx, tx, pin, t.Location)
		if err != nil {
			return err
		}
		if src.Type != template.SourceSharedImageVersion {
			return nil
		}
		pinned.Properties.Source.ExactVersion = res.ID
		var cur ImageTemplate
		if _, err := tx.GetJSON(ctx, t.ID, &cur); err != nil {
			return err
		}
		cur.Template.Properties.Source.ExactVersion = res.ID
		return tx.PutJSON(ctx, cur.ID, TypeImageTemplate, cur)
	})
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, fmt.Errorf("%s: %s", e.Code, e.Message)
		}
		return nil, err
	}
	return &pinned, nil
}

// StoredDisk implements source.Stored: the disk of a managed image or
// gallery image version, as stored in the region of the run calling it
// (see WithRunLocation), or in the resource's own region otherwise.
func (s *Service) StoredDisk(ctx context.Context, src template.Source) (source.StoredDisk, error) {
	loc, _ := ctx.Value(runLocationKey{}).(string)
	var res Resource
	err := s.st.View(ctx, func(tx *store.Tx) (err error) {
		res, err = s.lookupSource(ctx, tx, src, loc)
		return err
	})
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return source.StoredDisk{}, fmt.Errorf("%s: %s", e.Code, e.Message)
		}
		return source.StoredDisk{}, err
	}
	region := NormalizeLocation(loc)
	if region == "" {
		region = res.Artifact.Regions[0]
	}
	st, ok := s.regions.Store(region)
	if !ok {
		return source.StoredDisk{}, fmt.Errorf("%s: %w", sourceCode(src), s.regions.Check(region))
	}
	sum := res.Artifact.SHA256
	if _, ok, err := st.Stat(sum); err != nil || !ok {
		return source.StoredDisk{}, fmt.Errorf("%s: the disk of %s is missing from the %s store (%v)", sourceCode(src), res.ID, region, err)
	}
	var p string
	switch st := st.(type) {
	case *blob.Dir:
		p = st.Path(sum)
	default:
		// A bucket: the build reads a local copy (the disk backs the
		// build's overlay), fetched once per node, its sha256 verified.
		unlock := s.cache.Lock(sum)
		_, err := blob.Copy(ctx, s.cache, st, sum)
		unlock()
		if err != nil {
			return source.StoredDisk{}, fmt.Errorf("%s: fetch the disk of %s from the %s store: %w", sourceCode(src), res.ID, region, err)
		}
		p = s.cache.Path(sum)
	}
	os := template.OSLinux
	if strings.EqualFold(res.Artifact.OSType, "windows") {
		os = template.OSWindows
	}
	return source.StoredDisk{ID: res.ID, Region: region, Path: p, Format: res.Artifact.Format, SHA256: res.Artifact.SHA256,
		VirtualSize: res.Artifact.VirtualSize, OSType: os}, nil
}

// StoredFile is a stored disk: a file to read (Path), or an object in a
// bucket (Object; Path is empty).
type StoredFile struct {
	Path     string
	Object   *blob.S3
	Region   string
	Artifact Artifact
}

// ArtifactFile returns the disk of a managed image or gallery image version
// as stored in region ("" for the resource's own region).
func (s *Service) ArtifactFile(ctx context.Context, id, region string) (StoredFile, error) {
	var r Resource
	if err := s.viewDoc(ctx, id, &r); err != nil {
		return StoredFile{}, err
	}
	if (!strings.EqualFold(r.Type, TypeImage) && !strings.EqualFold(r.Type, TypeGalleryImageVersion)) || r.Artifact == nil {
		return StoredFile{}, badRequest("InvalidResourceType", "%s is not a managed image or gallery image version with a disk.", id)
	}
	if st, _ := r.Properties["provisioningState"].(string); st != StateSucceeded {
		return StoredFile{}, conflict("Conflict", "%s is not ready: its provisioningState is %s.", id, st)
	}
	region = NormalizeLocation(region)
	if region == "" {
		region = r.Artifact.Regions[0]
		if slices.Contains(r.Artifact.Regions, NormalizeLocation(r.Location)) {
			region = NormalizeLocation(r.Location)
		}
	}
	if !slices.Contains(r.Artifact.Regions, region) {
		return StoredFile{}, newErr(KindNotFound, "ResourceNotFound", "%s has no copy in %s (it has %s).", id, region, strings.Join(r.Artifact.Regions, ", "))
	}
	st, ok := s.regions.Store(region)
	if !ok {
		return StoredFile{}, newErr(KindInternal, "InternalServerError", "%v", s.regions.Check(region))
	}
	switch st := st.(type) {
	case *blob.Dir:
		return StoredFile{Path: st.Path(r.Artifact.SHA256), Region: region, Artifact: *r.Artifact}, nil
	case *blob.S3:
		return StoredFile{Object: st, Region: region, Artifact: *r.Artifact}, nil
	}
	return StoredFile{}, newErr(KindInternal, "InternalServerError", "the %s store is of an unknown kind", region)
}
