package distribute

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/template"
)

// Versioning schemes.
const (
	SchemeLatest = "Latest"
	SchemeSource = "Source"
	// SchemeAutomatic is AIB's numbering before versioning existed
	// (apiVersions before 2022-07-01): 0.YYDDD.SSSSS from the time.
	SchemeAutomatic = "Automatic"
)

// VersionRequest is what picks a gallery image version's name.
type VersionRequest struct {
	// Explicit is the version named in galleryImageId (…/versions/x.y.z).
	Explicit   string
	Versioning *template.Versioning
	// APIVersion is the template's apiVersion: without versioning, those
	// that have it (2022-07-01 and later) number as Latest, older ones with
	// the automatic scheme.
	APIVersion string
	// SourceVersion is the source image's exact version, for scheme Source.
	SourceVersion string
	Existing      []string // the definition's versions
	Now           time.Time
}

// Scheme is the numbering scheme a request uses.
func (r VersionRequest) Scheme() string {
	switch {
	case r.Explicit != "":
		return ""
	case r.Versioning != nil && strings.EqualFold(r.Versioning.Scheme, SchemeSource):
		return SchemeSource
	case r.Versioning != nil && strings.EqualFold(r.Versioning.Scheme, SchemeLatest):
		return SchemeLatest
	}
	if v, ok := template.LookupAPIVersion(r.APIVersion); ok && v.TargetRegions {
		return SchemeLatest
	}
	return SchemeAutomatic
}

// VersionName picks the version's name as AIB does: the explicit version,
// which must not exist yet; Latest: one patch above the highest version
// (within major when set; major.0.0 or 1.0.0 for the first); Source: the
// source image's version; Automatic: 0.YYDDD.SSSSS (year, day of year,
// second of day, UTC), made unique.
func VersionName(r VersionRequest) (string, error) {
	taken := func(name string) bool {
		return slices.ContainsFunc(r.Existing, func(e string) bool { return strings.EqualFold(e, name) })
	}
	if r.Explicit != "" && r.Versioning != nil {
		return "", fmt.Errorf("galleryImageId names the version %s and versioning is set too: use one of them", r.Explicit)
	}
	switch r.Scheme() {
	case "":
		if _, ok := template.ParseGalleryVersion(r.Explicit); !ok {
			return "", fmt.Errorf("the gallery image version %q must be MAJOR.MINOR.PATCH with 32-bit integers", r.Explicit)
		}
		if taken(r.Explicit) {
			return "", fmt.Errorf("the gallery image version %s already exists: name a new version, or use versioning", r.Explicit)
		}
		return r.Explicit, nil
	case SchemeSource:
		if _, ok := template.ParseGalleryVersion(r.SourceVersion); !ok {
			return "", fmt.Errorf("versioning scheme Source needs a source image with a MAJOR.MINOR.PATCH version, not %q", r.SourceVersion)
		}
		if taken(r.SourceVersion) {
			return "", fmt.Errorf("the gallery image version %s (from the source image) already exists", r.SourceVersion)
		}
		return r.SourceVersion, nil
	case SchemeLatest:
		major := int64(-1)
		if r.Versioning != nil && r.Versioning.Major != nil {
			major = int64(*r.Versioning.Major)
		}
		best, found := [3]int64{}, false
		for _, e := range r.Existing {
			p, ok := template.ParseGalleryVersion(e)
			if !ok || (major >= 0 && p[0] != major) {
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
			best = [3]int64{major, 0, 0}
		default:
			best = [3]int64{1, 0, 0}
		}
		return fmt.Sprintf("%d.%d.%d", best[0], best[1], best[2]), nil
	}
	now := r.Now.UTC()
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

// CompareVersions orders two versions numerically (unparsable ones first).
func CompareVersions(a, b string) int {
	pa, oka := template.ParseGalleryVersion(a)
	pb, okb := template.ParseGalleryVersion(b)
	switch {
	case !oka && !okb:
		return strings.Compare(a, b)
	case !oka:
		return -1
	case !okb:
		return 1
	}
	return slices.Compare(pa[:], pb[:])
}
