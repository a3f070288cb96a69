package blob

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultRegionNames are the regions goldsmith serves when none are
// configured: those AIB's documentation names, plus centralus from its
// examples.
func DefaultRegionNames() []string {
	return []string{"eastus", "eastus2", "westcentralus", "westus", "westus2", "northeurope", "westeurope", "centralus"}
}

// Region configures one region: its name (normalized as ARM does, "West US
// 2" → "westus2") and its store: a blob root directory, or a bucket on an
// S3-compatible server.
type Region struct {
	Name string    `json:"name"`
	Root string    `json:"root,omitempty"` // default DATA_DIR/regions/NAME
	S3   *S3Config `json:"s3,omitempty"`   // instead of Root
}

// Regions are the configured regions and their stores.
type Regions struct {
	names  []string
	stores map[string]Store
}

// NormalizeRegion turns "West US 2" into "westus2", as ARM does.
func NormalizeRegion(name string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(name), " ", ""))
}

// OpenRegions opens every region's store; a region without a root gets
// defaultRoot/NAME. No regions means DefaultRegionNames. An S3 region's
// credentials come from the environment or its credentials file.
func OpenRegions(ctx context.Context, defaultRoot string, regions []Region) (*Regions, error) {
	if len(regions) == 0 {
		for _, n := range DefaultRegionNames() {
			regions = append(regions, Region{Name: n})
		}
	}
	rs := &Regions{stores: map[string]Store{}}
	for _, r := range regions {
		name := NormalizeRegion(r.Name)
		if name == "" {
			return nil, fmt.Errorf("regions: a region has no name")
		}
		if _, dup := rs.stores[name]; dup {
			return nil, fmt.Errorf("regions: %s is configured twice", name)
		}
		var st Store
		var err error
		switch {
		case r.S3 != nil && r.Root != "":
			return nil, fmt.Errorf("region %s: root and s3 exclude each other", name)
		case r.S3 != nil:
			st, err = NewS3(ctx, *r.S3, os.Getenv)
		default:
			root := r.Root
			if root == "" {
				root = filepath.Join(defaultRoot, name)
			}
			st, err = NewDir(root)
		}
		if err != nil {
			return nil, fmt.Errorf("region %s: %w", name, err)
		}
		rs.names = append(rs.names, name)
		rs.stores[name] = st
	}
	return rs, nil
}

// Names lists the configured regions, in configuration order.
func (r *Regions) Names() []string { return slices.Clone(r.names) }

// Store returns a region's store (the name in any casing or spacing).
func (r *Regions) Store(name string) (Store, bool) {
	d, ok := r.stores[NormalizeRegion(name)]
	return d, ok
}

// Has tells whether a region is configured.
func (r *Regions) Has(name string) bool {
	_, ok := r.stores[NormalizeRegion(name)]
	return ok
}

// Check returns an error naming the configured regions when name is not one.
func (r *Regions) Check(name string) error {
	if r.Has(name) {
		return nil
	}
	return fmt.Errorf("the location '%s' is not a region this goldsmith site serves; configured regions: %s",
		name, strings.Join(r.names, ", "))
}
