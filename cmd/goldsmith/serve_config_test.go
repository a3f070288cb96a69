package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/internal/s3test"
)

// TestServeConfigStores reads config.json's regions and staging entries
// and opens the stores they name, buckets on a real versitygw included.
func TestServeConfigStores(t *testing.T) {
	srv, err := s3test.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	regionBucket, stagingBucket := srv.Bucket(t), srv.Bucket(t)
	for _, tc := range []struct {
		name   string
		config map[string]any
		want   string // the staging store's String, "" for the local default
	}{
		{"local regions, no staging", map[string]any{"regions": []any{map[string]any{"name": "westus2"}}}, ""},
		{"a bucket region: staging beside its blobs", map[string]any{"regions": []any{map[string]any{"name": "westus2", "s3": regionBucket}}},
			regionBucket.Endpoint + "/" + regionBucket.Bucket + "/staging/"},
		{"an explicit staging bucket", map[string]any{"regions": []any{map[string]any{"name": "westus2", "s3": regionBucket}}, "staging": stagingBucket},
			stagingBucket.Endpoint + "/" + stagingBucket.Bucket + "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data, err := json.Marshal(tc.config)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
				t.Fatal(err)
			}
			conf, err := readServeConfig(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			regions, staging, err := conf.stores(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if !regions.Has("westus2") {
				t.Errorf("regions %v", regions.Names())
			}
			got := ""
			if s, ok := staging.(*blob.S3); ok {
				got = s.String()
			} else if staging != nil {
				t.Fatalf("staging store %T", staging)
			}
			if got != tc.want {
				t.Errorf("staging store %q, want %q", got, tc.want)
			}
		})
	}
}
