// Package source resolves an image template's source to a bootable disk:
// PlatformImage from the catalog (with aliases for Marketplace URNs that
// have no local image); ManagedImage and SharedImageVersion sources read the
// distribution stores.
package source

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/template"
)

// Image is a bootable disk a build starts from.
type Image struct {
	URN           string // publisher:offer:sku:version as resolved (exact version)
	SubstituteFor string // the URN the template asked for, when an alias stood in
	Disk          string // path to the cached disk, never written to
	DiskFormat    string // qcow2 or raw
	DiskSHA256    string
	VirtualSize   int64
	// Optional direct kernel boot, faster than firmware and GRUB.
	Kernel, Initrd, Cmdline string
	OSType                  template.OSType
}

// Platform resolves PlatformImage sources.
type Platform interface {
	Resolve(ctx context.Context, urn string) (catalog.Entry, error)
	// Expanded gives the entry's disk uncompressed, for a build to back
	// its disk on (see catalog.Catalog.Expanded).
	Expanded(ctx context.Context, e catalog.Entry) (catalog.Entry, error)
}

// StoredDisk is the disk behind a managed image or a gallery image version
// that goldsmith's service distributed.
type StoredDisk struct {
	ID          string // the image's, or the exact version's, resource id
	Region      string // the region whose copy Path is
	Path        string // never written to
	Format      string // qcow2 or raw
	SHA256      string
	VirtualSize int64
	OSType      template.OSType
}

// Stored reads the managed image and gallery stores of goldsmith's service
// (package resource implements it). It resolves a SharedImageVersion's
// "latest", and refuses a source that is not in the template's region with
// AIB's BadManagedImageSource or BadSharedImageVersionSource.
type Stored interface {
	StoredDisk(ctx context.Context, src template.Source) (StoredDisk, error)
}

// Resolver resolves every source type goldsmith supports.
type Resolver struct {
	Platform Platform
	// Stored reads ManagedImage and SharedImageVersion sources; nil (as in
	// goldsmith build, which has no server) refuses them.
	Stored Stored
}

// ErrUnsupported marks a source type goldsmith cannot build from yet.
var ErrUnsupported = errors.New("not supported yet")

// Resolve returns the image to build from. "latest" is resolved now, when
// the run starts, as AIB does.
func (r Resolver) Resolve(ctx context.Context, src template.Source) (Image, error) {
	switch src.Type {
	case template.SourcePlatformImage:
		urn := src.URN()
		e, err := r.Platform.Resolve(ctx, urn)
		if err != nil {
			if errors.Is(err, catalog.ErrNotFound) {
				return Image{}, fmt.Errorf("PlatformImage %s is not in the catalog: build a built-in (goldsmith catalog ls), import an image (goldsmith catalog import), or alias this URN to one (goldsmith catalog alias %s Debian:debian-12:12): %w", urn, urn, err)
			}
			return Image{}, fmt.Errorf("PlatformImage %s: %w", urn, err)
		}
		if e, err = r.Platform.Expanded(ctx, e); err != nil {
			return Image{}, fmt.Errorf("PlatformImage %s: %w", urn, err)
		}
		return fromEntry(e), nil
	case template.SourceManagedImage, template.SourceSharedImageVersion:
		if r.Stored == nil {
			return Image{}, fmt.Errorf("%s sources: %w without a server: they read the managed images and gallery image versions a goldsmith server (goldsmith serve) distributed; submit the template to the server instead", src.Type, ErrUnsupported)
		}
		d, err := r.Stored.StoredDisk(ctx, src)
		if err != nil {
			return Image{}, err
		}
		return Image{URN: d.ID, Disk: d.Path, DiskFormat: d.Format, DiskSHA256: d.SHA256, VirtualSize: d.VirtualSize, OSType: d.OSType}, nil
	case template.SourceISO:
		// Validation refuses them (template.ISONoLongerAccepted); a template
		// that got here was not validated.
		return Image{}, fmt.Errorf("ISO sources: %w: AIB stopped accepting them on %s", ErrUnsupported, template.ISONoLongerAccepted)
	}
	return Image{}, fmt.Errorf("source type %q: %w", src.Type, ErrUnsupported)
}

func fromEntry(e catalog.Entry) Image {
	osType := template.OSUnknown
	switch strings.ToLower(e.OSType) {
	case "linux":
		osType = template.OSLinux
	case "windows":
		osType = template.OSWindows
	}
	return Image{
		URN: e.URN, SubstituteFor: e.SubstituteFor,
		Disk: e.DiskPath, DiskFormat: e.DiskFormat, DiskSHA256: e.DiskSHA256, VirtualSize: e.VirtualSize,
		Kernel: e.KernelPath, Initrd: e.InitrdPath, Cmdline: e.Cmdline,
		OSType: osType,
	}
}
