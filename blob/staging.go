package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// StagingS3 says where the staging store (the files templates reference,
// downloaded at submission, and the VHDs runs publish) lives when it is a
// bucket: explicit, as configured; otherwise beside the blobs of the first
// region whose store is a bucket, under its prefix + "staging/" (so a site
// whose regions are in object storage needs no other setting for its
// workers to share staged files). nil means a local directory.
func StagingS3(explicit *S3Config, regions []Region) *S3Config {
	if explicit != nil {
		return explicit
	}
	for _, r := range regions {
		if r.S3 != nil {
			c := *r.S3
			c.Prefix = path.Join(strings.Trim(c.Prefix, "/"), "staging")
			return &c
		}
	}
	return nil
}

// Fetch copies the blob sum from st to the local file dst, verifying its
// sha256 before dst appears; it returns the size.
func Fetch(ctx context.Context, st Store, sum, dst string) (int64, error) {
	sum = strings.ToLower(sum)
	r, err := st.Open(ctx, sum)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return 0, fmt.Errorf("fetch blob %s: %w", sum, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".partial-*")
	if err != nil {
		return 0, fmt.Errorf("fetch blob %s: %w", sum, err)
	}
	fail := func(err error) (int64, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return 0, fmt.Errorf("fetch blob %s to %s: %w", sum, dst, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), disk.ContextReader(ctx, r))
	if err != nil {
		return fail(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fail(fmt.Errorf("%w: expected %s, the bytes have %s", ErrDigestMismatch, sum, got))
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fail(err)
	}
	return n, nil
}
