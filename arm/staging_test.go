package arm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/internal/s3test"
	"github.com/goldsmith-dev/goldsmith/resource"
)

// TestSharedStaging runs two servers with their own data directories on
// one PostgreSQL database, with the region's store and the staging store
// in buckets on a real S3 server (versitygw on 127.0.0.1), as two nodes of
// a site share nothing else. A template submitted through the first
// node, its script staged from a web server on 127.0.0.1, runs; the second
// node serves its VHD (a presigned GET on the object store whose bytes
// hash to the blob's name) and its managed image's disk. The second node
// then builds a template the first submitted after the first is gone,
// reading its staged script from the bucket.
func TestSharedStaging(t *testing.T) {
	srv, err := s3test.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	cfg := srv.Bucket(t)
	database := cluster.Database(t)
	script := "#!/bin/sh\necho from the staging bucket\n"
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/setup.sh" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, script)
	}))
	t.Cleanup(web.Close)
	regionsConf := []blob.Region{{Name: "westus2", S3: &cfg}}
	node := func() *site {
		dir := t.TempDir()
		regions, err := blob.OpenRegions(context.Background(), filepath.Join(dir, "regions"), regionsConf)
		if err != nil {
			t.Fatal(err)
		}
		staging, err := blob.NewS3(context.Background(), *blob.StagingS3(nil, regionsConf), os.Getenv)
		if err != nil {
			t.Fatal(err)
		}
		return startSite(t, siteOptions{DataDir: dir, Database: database, Regions: regions, Staging: staging,
			Executor: standIn(200 * time.Millisecond)})
	}
	a, b := node(), node()
	putGroup(t, a, "rg1")
	body := func() map[string]any {
		body := linuxTemplate("rg1", map[string]any{"type": "Shell", "name": "setup", "scriptUri": web.URL + "/setup.sh"})
		props := body["properties"].(map[string]any)
		props["distribute"] = append(props["distribute"].([]any), map[string]any{"type": "VHD", "runOutputName": "vhd"})
		return body
	}
	if op, _ := submit(t, a, "rg1", "t1", v24, body()); str(op, "status") != "Succeeded" {
		t.Fatalf("submission: %v", op)
	}
	if op := pollOp(t, a, run(t, a, "rg1", "t1")); str(op, "status") != "Succeeded" {
		t.Fatalf("run: %v", op)
	}

	// The second node serves the VHD: a presigned link to the bucket.
	stored, err := b.Svc.GetRunOutput(context.Background(), tmplPath("rg1", "t1"), "vhd")
	if err != nil {
		t.Fatal(err)
	}
	rest, _ := strings.CutPrefix(stored.Properties["artifactUri"].(string), resource.StagedScheme)
	sum, _, _ := strings.Cut(rest, "/")
	out := getJSON(t, b, tmplPath("rg1", "t1")+"/runOutputs/vhd", v24)
	link := str(out, "properties", "artifactUri")
	if !strings.HasPrefix(link, cfg.Endpoint+"/"+cfg.Bucket+"/staging/sha256/") || !strings.Contains(link, "X-Amz-Expires=") {
		t.Fatalf("artifactUri %q, want a presigned GET of the staging bucket", link)
	}
	data := fetch(t, link, "", http.StatusOK)
	if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum {
		t.Errorf("the VHD downloaded hashes to %x, want %s", h, sum)
	}
	if _, err := disk.CheckFixedVHD(writeTemp(t, data)); err != nil {
		t.Errorf("downloaded VHD: %v", err)
	}
	img := rgPath("rg1") + "/providers/Microsoft.Compute/images/out"
	art := artifactOf(t, b, img)
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/goldsmith/v1"+img+"/disk", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	_, err = io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || hex.EncodeToString(h.Sum(nil)) != art.SHA256 {
		t.Errorf("the image's disk through the second node: %s, sha256 %x (%v), want %s", resp.Status, h.Sum(nil), err, art.SHA256)
	}

	// A template the first node submitted is built by the second alone.
	if op, _ := submit(t, a, "rg1", "t2", v24, body()); str(op, "status") != "Succeeded" {
		t.Fatalf("submission: %v", op)
	}
	a.close()
	if op := pollOp(t, b, run(t, b, "rg1", "t2")); str(op, "status") != "Succeeded" {
		t.Fatalf("run on the second node: %v", op)
	}
	h2 := sha256.Sum256([]byte(script))
	rd, _, err := b.Svc.LogReader(context.Background(), tmplPath("rg1", "t2"), "", false)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := io.ReadAll(rd)
	rd.Close()
	if want := "staged " + web.URL + "/setup.sh sha256 " + hex.EncodeToString(h2[:]); !strings.Contains(string(log), want) {
		t.Errorf("the second node's build log lacks %q:\n%s", want, log)
	}
	data = fetch(t, str(getJSON(t, b, tmplPath("rg1", "t2")+"/runOutputs/vhd", v24), "properties", "artifactUri"), "", http.StatusOK)
	if _, err := disk.CheckFixedVHD(writeTemp(t, data)); err != nil {
		t.Errorf("the second node's VHD: %v", err)
	}
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
