package arm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/internal/s3test"
)

// TestDistributionToS3Region publishes a managed image into a region whose
// store is a bucket on a real S3-compatible server (versitygw on
// 127.0.0.1), downloads its disk through the presigned link the disk
// endpoint redirects to, and deletes the image: the object goes.
func TestDistributionToS3Region(t *testing.T) {
	srv, err := s3test.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	cfg := srv.Bucket(t)
	regions, err := blob.OpenRegions(context.Background(), t.TempDir(), []blob.Region{{Name: "westus2", S3: &cfg}, {Name: "eastus"}})
	if err != nil {
		t.Fatal(err)
	}
	s := startSite(t, siteOptions{Executor: standIn(200 * time.Millisecond), Regions: regions})
	putGroup(t, s, "rg1")
	img := rgPath("rg1") + "/providers/Microsoft.Compute/images/img"
	body := linuxTemplate("rg1", inline("echo hi"))
	body["properties"].(map[string]any)["distribute"] = []any{
		map[string]any{"type": "ManagedImage", "runOutputName": "managed", "location": "westus2", "imageId": img},
	}
	submit(t, s, "rg1", "t1", v24, body)
	pollOp(t, s, run(t, s, "rg1", "t1"))
	got := getJSON(t, s, tmplPath("rg1", "t1"), v24)
	if st := str(got, "properties", "lastRunStatus", "runState"); st != "Succeeded" {
		t.Fatalf("runState %s: %v", st, dig(got, "properties", "lastRunStatus"))
	}
	art := artifactOf(t, s, img)
	st, _ := regions.Store("westus2")
	if n, ok, err := st.Stat(art.SHA256); !ok || n != art.Size || err != nil {
		t.Fatalf("the bucket's blob: %d bytes, exists %v (%v); want %d", n, ok, err, art.Size)
	}

	// The disk endpoint redirects to a presigned GET on the object store.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/goldsmith/v1"+img+"/disk", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, cfg.Endpoint+"/") ||
		resp.Header.Get("X-Goldsmith-Disk-SHA256") != art.SHA256 {
		t.Fatalf("disk endpoint: %s, Location %q, headers %v", resp.Status, loc, resp.Header)
	}
	data := fetch(t, loc, "", http.StatusOK)
	if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != art.SHA256 {
		t.Errorf("the downloaded disk's sha256 is %x, want %s", h, art.SHA256)
	}

	if resp, _ := s.call(t, http.MethodDelete, img, "2024-11-01", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("delete image: %s", resp.Status)
	}
	if _, ok, err := st.Stat(art.SHA256); ok || err != nil {
		t.Errorf("the object outlived the only image that used it (%v)", err)
	}
}
