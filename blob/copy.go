package blob

import (
	"context"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// copyVerified copies src to dst keeping holes, syncs it, and returns the
// sha256 of dst as read back from dst.
func copyVerified(ctx context.Context, dst, src string) (string, error) {
	if err := disk.CopySparse(ctx, dst, src); err != nil {
		return "", err
	}
	sum, _, err := disk.SHA256File(ctx, dst)
	return sum, err
}
