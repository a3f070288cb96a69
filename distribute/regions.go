package distribute

import (
	"fmt"
	"slices"
	"strings"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/template"
)

// TargetRegion is one region a gallery image version is replicated to.
type TargetRegion struct {
	Name               string `json:"name"`
	ReplicaCount       int    `json:"regionalReplicaCount"`
	StorageAccountType string `json:"storageAccountType"`
}

// GalleryRegions returns the regions a sharedImage target replicates to:
// targetRegions (2022-07-01 and later; the gallery's region is added when
// missing, since a version always lives there), or replicationRegions,
// which must include the gallery's region, or the gallery's region alone.
// Names are normalized; duplicates are refused.
func GalleryRegions(d template.Distributor, galleryRegion string) ([]TargetRegion, error) {
	home := blob.NormalizeRegion(galleryRegion)
	if len(d.TargetRegions) > 0 && len(d.ReplicationRegions) > 0 {
		return nil, fmt.Errorf("targetRegions and replicationRegions exclude each other: use targetRegions")
	}
	var out []TargetRegion
	seen := map[string]bool{}
	add := func(name string, count int, sat string) error {
		n := blob.NormalizeRegion(name)
		if n == "" {
			return fmt.Errorf("a replication region has no name")
		}
		if seen[n] {
			return fmt.Errorf("the region %s is listed twice", n)
		}
		seen[n] = true
		if count <= 0 {
			count = 1
		}
		if sat == "" {
			sat = "Standard_LRS"
		}
		out = append(out, TargetRegion{Name: n, ReplicaCount: count, StorageAccountType: sat})
		return nil
	}
	switch {
	case len(d.TargetRegions) > 0:
		for _, tr := range d.TargetRegions {
			if err := add(tr.Name, tr.ReplicaCount, tr.StorageAccountType); err != nil {
				return nil, err
			}
		}
		if !seen[home] {
			if err := add(home, 1, ""); err != nil {
				return nil, err
			}
		}
	case len(d.ReplicationRegions) > 0:
		for _, r := range d.ReplicationRegions {
			if err := add(r, 1, d.StorageAccountType); err != nil {
				return nil, err
			}
		}
		if !seen[home] {
			return nil, fmt.Errorf("replicationRegions (%s) must include the gallery's region %s",
				strings.Join(d.ReplicationRegions, ", "), home)
		}
	default:
		if err := add(home, 1, d.StorageAccountType); err != nil {
			return nil, err
		}
	}
	// The gallery's region first: it is the version's home.
	slices.SortStableFunc(out, func(a, b TargetRegion) int {
		switch {
		case a.Name == home:
			return -1
		case b.Name == home:
			return 1
		}
		return 0
	})
	return out, nil
}
