package catalog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// Expanded returns e with its disk replaced by an uncompressed qcow2 copy,
// made once per image beside the blobs. Builds back their disks
// on it: QEMU decompresses a compressed qcow2 cluster on every read the
// guest makes, and writing outputs reads the whole image again, so the
// compressed blob is for storage and the expanded copy for use. It stays
// qcow2, not raw: its allocation map tells readers where the zeros are (a
// raw backing file would have every byte of it read and hashed). Entries
// that are not qcow2 come back unchanged. The copy's bytes are the blob's
// (its DiskSHA256 still names the blob).
func (c *Catalog) Expanded(ctx context.Context, e Entry) (Entry, error) {
	path := c.expandedPath(e.DiskSHA256)
	if e.DiskFormat != disk.FormatQCOW2 || e.DiskSHA256 == "" || e.DiskPath == path {
		return e, nil
	}
	use := func() Entry {
		e.DiskPath = path
		return e
	}
	if _, err := os.Stat(path); err == nil {
		return use(), nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return e, fmt.Errorf("expand %s: %w", e.URN, err)
	}
	// One build expands; others wait for it.
	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return e, fmt.Errorf("expand %s: %w", e.URN, err)
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil {
		return use(), nil
	}
	tmp := path + ".partial"
	defer os.Remove(tmp)
	if err := c.tools.images.Convert(ctx, e.DiskPath, disk.FormatQCOW2, tmp, disk.ConvertOptions{Format: disk.FormatQCOW2}); err != nil {
		return e, fmt.Errorf("expand %s: %w", e.URN, err)
	}
	// Read-only, as the blob: every build disk is an overlay on it.
	if err := os.Chmod(tmp, 0o444); err != nil {
		return e, fmt.Errorf("expand %s: %w", e.URN, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return e, fmt.Errorf("expand %s: %w", e.URN, err)
	}
	c.log.Info("expanded the platform image for builds", "urn", e.URN, "path", path)
	return use(), nil
}

// expandedPath is where the expanded copy of the disk blob sha goes.
func (c *Catalog) expandedPath(sha string) string {
	return filepath.Join(c.dir, "expanded", sha+".qcow2")
}
