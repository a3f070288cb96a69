package blob_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/goldsmith-dev/goldsmith/blob"
)

func TestStagingS3(t *testing.T) {
	explicit := &blob.S3Config{Endpoint: "http://s3.example", Bucket: "staging"}
	bucket := blob.S3Config{Endpoint: "http://s3.example", Bucket: "images", Prefix: "/west/"}
	for _, tc := range []struct {
		name     string
		explicit *blob.S3Config
		regions  []blob.Region
		want     *blob.S3Config
	}{
		{"nothing configured: local", nil, nil, nil},
		{"local regions: local", nil, []blob.Region{{Name: "westus"}, {Name: "eastus", Root: "/srv/e"}}, nil},
		{"explicit wins", explicit, []blob.Region{{Name: "westus", S3: &bucket}}, explicit},
		{"first bucket region, under its prefix", nil, []blob.Region{{Name: "eastus"}, {Name: "westus", S3: &bucket}, {Name: "northeurope", S3: explicit}},
			&blob.S3Config{Endpoint: "http://s3.example", Bucket: "images", Prefix: "west/staging"}},
		{"bucket without prefix", nil, []blob.Region{{Name: "westus", S3: explicit}},
			&blob.S3Config{Endpoint: "http://s3.example", Bucket: "staging", Prefix: "staging"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := blob.StagingS3(tc.explicit, tc.regions); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("StagingS3 = %+v, want %+v", got, tc.want)
			}
		})
	}
	if bucket.Prefix != "/west/" {
		t.Fatalf("StagingS3 changed the region's config: prefix %q", bucket.Prefix)
	}
}

// A staging store under a region bucket's prefix is not part of the
// region's store: the region's List (and so its sweep) does not see it.
func TestStagingBesideRegion(t *testing.T) {
	cfg := s3srv.Bucket(t)
	region := openS3(t, cfg)
	staging := openS3(t, *blob.StagingS3(nil, []blob.Region{{Name: "westus", S3: &cfg}}))
	p, _, sum := disk(t, 1000, 3)
	ctx := context.Background()
	if _, err := staging.Put(ctx, sum, p, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := region.List(); err != nil || len(got) != 0 {
		t.Fatalf("region List = %v, %v; want nothing", got, err)
	}
	if got, err := staging.List(); err != nil || !reflect.DeepEqual(got, []string{sum}) {
		t.Fatalf("staging List = %v, %v; want [%s]", got, err, sum)
	}
}

func TestFetch(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			p, data, sum := disk(t, 11<<20, 5)
			if _, err := st.Put(ctx, sum, p, blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "files", "001-script.sh")
			n, err := blob.Fetch(ctx, st, sum, dst)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dst)
			if err != nil || n != int64(len(data)) || !bytes.Equal(got, data) {
				t.Fatalf("fetched %d bytes (err %v), want the %d stored", n, err, len(data))
			}

			// Bytes that do not hash to the name never reach dst.
			_, bad, badSum := disk(t, 100, 9)
			plant(t, st, badSum, append(bad[:50:50], 'x'))
			dst2 := filepath.Join(filepath.Dir(dst), "002-file")
			if _, err := blob.Fetch(ctx, st, badSum, dst2); !errors.Is(err, blob.ErrDigestMismatch) {
				t.Fatalf("Fetch of corrupted blob: %v, want ErrDigestMismatch", err)
			}
			if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 1 {
				t.Fatalf("after a failed fetch the directory holds %d entries, want only the first file", len(entries))
			}
			if _, err := blob.Fetch(ctx, st, sum[:60]+"0000", dst2); err == nil {
				t.Fatal("Fetch of a missing blob succeeded")
			}
		})
	}
}

// plant stores data under sum without checking it, as a corrupted disk or
// bucket would hold it.
func plant(t *testing.T, st blob.Store, sum string, data []byte) {
	t.Helper()
	switch st := st.(type) {
	case *blob.Dir:
		p := st.Path(sum)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	case *blob.S3:
		if _, err := s3srv.Client(t).PutObject(context.Background(), st.Bucket(), st.Key(sum), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}
