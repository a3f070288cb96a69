package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/internal/s3test"
)

// The S3 cases run against a real versitygw on 127.0.0.1, started once for
// the package.
var s3srv *s3test.Server

func TestMain(m *testing.M) { s3test.Main(m, func(s *s3test.Server) { s3srv = s }) }

// backend opens an empty store of one kind.
type backend struct {
	name string
	open func(t *testing.T) blob.Store
}

func backends() []backend {
	return []backend{
		{"local", func(t *testing.T) blob.Store {
			d, err := blob.NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		}},
		{"s3", func(t *testing.T) blob.Store { return openS3(t, s3srv.Bucket(t)) }},
	}
}

func openS3(t *testing.T, cfg blob.S3Config) *blob.S3 {
	t.Helper()
	s, err := blob.NewS3(context.Background(), cfg, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// disk writes a test file of size bytes (11 MiB: three 5 MiB parts on S3)
// and returns its path, bytes and sha256.
func disk(t *testing.T, size int, seed byte) (string, []byte, string) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7) + seed
	}
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	return p, data, hex.EncodeToString(h[:])
}

func readAll(t *testing.T, st blob.Store, sum string) []byte {
	t.Helper()
	r, err := st.Open(context.Background(), sum)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// noTmp checks that nothing is left in the store's tmp area.
func noTmp(t *testing.T, st blob.Store) {
	t.Helper()
	switch s := st.(type) {
	case *blob.Dir:
		entries, err := os.ReadDir(filepath.Join(s.Root(), "tmp"))
		if err != nil || len(entries) != 0 {
			t.Errorf("tmp/ holds %d entries (%v)", len(entries), err)
		}
	case *blob.S3:
		prefix := strings.TrimSuffix(s.Key("00"), "sha256/00/00")
		c := s3srv.Client(t)
		bucket := strings.Split(strings.TrimPrefix(s.String(), s3srv.Endpoint+"/"), "/")[0]
		for o := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix + "tmp/", Recursive: true}) {
			t.Errorf("tmp/ holds %s (%v)", o.Key, o.Err)
		}
	}
}

const size = 11 << 20

func TestStoreContract(t *testing.T) {
	src, data, sum := disk(t, size, 1)
	wrong := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		run  func(t *testing.T, st blob.Store)
	}{
		{"put, stat, open, list, put again reuses", func(t *testing.T, st blob.Store) {
			unlock := st.Lock(sum)
			defer unlock()
			p, err := st.Put(context.Background(), sum, src, blob.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Size != size || p.Reused || !p.Copied {
				t.Errorf("first put: %+v", p)
			}
			if n, ok, err := st.Stat(sum); n != size || !ok || err != nil {
				t.Errorf("stat: %d %v %v", n, ok, err)
			}
			if !bytes.Equal(readAll(t, st, sum), data) {
				t.Error("the stored bytes differ from the source")
			}
			if sums, err := st.List(); err != nil || !slices.Equal(sums, []string{sum}) {
				t.Errorf("list: %v %v", sums, err)
			}
			if p, err := st.Put(context.Background(), sum, src, blob.PutOptions{}); err != nil || !p.Reused {
				t.Errorf("second put: %+v %v", p, err)
			}
			noTmp(t, st)
		}},
		{"a wrong sha256 is refused and leaves nothing", func(t *testing.T, st blob.Store) {
			_, err := st.Put(context.Background(), wrong, src, blob.PutOptions{})
			if !errors.Is(err, blob.ErrDigestMismatch) {
				t.Fatalf("put with a wrong sha256: %v, want ErrDigestMismatch", err)
			}
			if _, ok, _ := st.Stat(wrong); ok {
				t.Error("the blob exists under the wrong sum")
			}
			if sums, _ := st.List(); len(sums) != 0 {
				t.Errorf("list after a refused put: %v", sums)
			}
			noTmp(t, st)
		}},
		{"a short stream is refused", func(t *testing.T, st blob.Store) {
			_, err := st.PutReader(context.Background(), sum, bytes.NewReader(data[:size-1]), size)
			if err == nil {
				t.Fatal("a stream one byte short was stored")
			}
			if _, ok, _ := st.Stat(sum); ok {
				t.Error("the blob exists after a short stream")
			}
			noTmp(t, st)
		}},
		{"canceled put leaves nothing", func(t *testing.T, st blob.Store) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := st.Put(ctx, sum, src, blob.PutOptions{}); err == nil {
				t.Fatal("a canceled put succeeded")
			}
			if _, ok, _ := st.Stat(sum); ok {
				t.Error("the blob exists after a canceled put")
			}
			noTmp(t, st)
		}},
		{"remove, then clean a crashed put", func(t *testing.T, st blob.Store) {
			if _, err := st.Put(context.Background(), sum, src, blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := st.Remove(sum); err != nil {
				t.Fatal(err)
			}
			if err := st.Remove(sum); err != nil {
				t.Errorf("removing a missing blob: %v", err)
			}
			if _, ok, _ := st.Stat(sum); ok {
				t.Error("the blob exists after Remove")
			}
			if err := st.CleanTmp(); err != nil {
				t.Fatal(err)
			}
			noTmp(t, st)
		}},
	}
	for _, b := range backends() {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) { tt.run(t, b.open(t)) })
		}
	}
}

// TestS3CrashedUpload: CleanTmp removes both a finished upload and an
// unfinished multipart upload that a crash left under tmp/, once they are
// old enough not to be another node's upload in progress.
func TestS3CrashedUpload(t *testing.T) {
	cfg := s3srv.Bucket(t)
	st := openS3(t, cfg)
	c := s3srv.Client(t)
	ctx := context.Background()
	if _, err := c.PutObject(ctx, cfg.Bucket, "tmp/left-behind", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: c}
	if _, err := core.NewMultipartUpload(ctx, cfg.Bucket, "tmp/unfinished", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.CleanTmp(); err != nil {
		t.Fatal(err)
	}
	var uploads int
	for range c.ListIncompleteUploads(ctx, cfg.Bucket, "tmp/", true) {
		uploads++
	}
	if _, err := c.StatObject(ctx, cfg.Bucket, "tmp/left-behind", minio.StatObjectOptions{}); err != nil || uploads != 1 {
		t.Fatalf("CleanTmp removed young uploads (another node's, perhaps): object %v, %d unfinished uploads", err, uploads)
	}
	blob.SetTmpAge(st, 0)
	if err := st.CleanTmp(); err != nil {
		t.Fatal(err)
	}
	noTmp(t, st)
	for u := range c.ListIncompleteUploads(ctx, cfg.Bucket, "tmp/", true) {
		t.Errorf("an unfinished upload remains: %s (%v)", u.Key, u.Err)
	}
}

func TestS3Presign(t *testing.T) {
	st := openS3(t, s3srv.Bucket(t))
	src, data, sum := disk(t, 1<<20, 2)
	if _, err := st.Put(context.Background(), sum, src, blob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func(expiry time.Duration, wait time.Duration) (int, []byte) {
		u, err := st.PresignGet(context.Background(), sum, expiry)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u.String(), s3srv.Endpoint+"/") {
			t.Errorf("presigned URL %s is not the object store's", u)
		}
		time.Sleep(wait)
		resp, err := http.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	tests := []struct {
		name   string
		expiry time.Duration
		wait   time.Duration
		wantOK bool
	}{
		{"valid link downloads", time.Hour, 0, true},
		{"expired link is refused", time.Second, 2100 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, b := get(tt.expiry, tt.wait)
			if tt.wantOK != (code == http.StatusOK) {
				t.Fatalf("status %d, want OK %v: %s", code, tt.wantOK, b)
			}
			if tt.wantOK && !bytes.Equal(b, data) {
				t.Error("the downloaded bytes differ")
			}
		})
	}
}

func TestCopyBetweenRegions(t *testing.T) {
	src, data, sum := disk(t, size, 3)
	local, s3 := backends()[0], backends()[1]
	tests := []struct {
		name       string
		from, to   backend
		serverCopy bool
	}{
		{"local to local", local, local, false},
		{"local to s3", local, s3, false},
		{"s3 to local", s3, local, false},
		{"s3 to s3 on one endpoint (server-side copy)", s3, s3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to := tt.from.open(t), tt.to.open(t)
			if _, err := from.Put(context.Background(), sum, src, blob.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			unlock := to.Lock(sum)
			defer unlock()
			p, err := blob.Copy(context.Background(), to, from, sum)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Copied || p.Size != size || p.ServerCopied != tt.serverCopy {
				t.Errorf("copy: %+v", p)
			}
			if !bytes.Equal(readAll(t, to, sum), data) {
				t.Error("the copy's bytes differ")
			}
			if p, err := blob.Copy(context.Background(), to, from, sum); err != nil || !p.Reused {
				t.Errorf("second copy: %+v %v", p, err)
			}
			if _, err := blob.Copy(context.Background(), to, from, strings.Repeat("cd", 32)); err == nil {
				t.Error("copying a blob the source lacks succeeded")
			}
			noTmp(t, to)
		})
	}
}

func TestS3Config(t *testing.T) {
	good := s3srv.Bucket(t)
	creds := filepath.Join(t.TempDir(), "s3.json")
	if err := os.WriteFile(creds, []byte(`{"accessKey":"`+s3test.AccessKey+`","secretKey":"`+s3test.SecretKey+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		edit    func(c *blob.S3Config)
		wantErr string
	}{
		{"environment credentials", func(c *blob.S3Config) {}, ""},
		{"credentials file", func(c *blob.S3Config) { c.CredentialsFile, c.AccessKeyEnv = creds, "UNSET_GOLDSMITH_VAR" }, ""},
		{"no credentials", func(c *blob.S3Config) { c.AccessKeyEnv = "UNSET_GOLDSMITH_VAR" }, "no credentials"},
		{"wrong secret", func(c *blob.S3Config) { c.SecretKeyEnv = "GOLDSMITH_TEST_S3_ACCESS" }, "s3 store"},
		{"missing bucket", func(c *blob.S3Config) { c.Bucket = "no-such-bucket" }, "does not exist"},
		{"part too small", func(c *blob.S3Config) { c.PartSizeMiB = 1 }, "minimum"},
		{"bad endpoint", func(c *blob.S3Config) { c.Endpoint = "ftp://x" }, "endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			_, err := blob.NewS3(context.Background(), c, os.Getenv)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("NewS3: %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("prefix and regions config", func(t *testing.T) {
		c := good
		c.Prefix = "/site-a/"
		rs, err := blob.OpenRegions(context.Background(), t.TempDir(), []blob.Region{{Name: "West US 2", S3: &c}, {Name: "eastus"}})
		if err != nil {
			t.Fatal(err)
		}
		st, _ := rs.Store("westus2")
		s, ok := st.(*blob.S3)
		if !ok || !strings.HasPrefix(s.Key("abcd"), "site-a/sha256/ab/") {
			t.Fatalf("westus2 store: %T %v", st, st)
		}
		if _, err := blob.OpenRegions(context.Background(), t.TempDir(), []blob.Region{{Name: "x", Root: "/tmp/x", S3: &c}}); err == nil {
			t.Error("root and s3 together were accepted")
		}
	})
}

// TestRegionsConfigJSON reads the regions of a config.json as the README
// shows them.
func TestRegionsConfigJSON(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "regions-s3.json"))
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Regions []blob.Region `json:"regions"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}
	want := []blob.Region{
		{Name: "westus2", S3: &blob.S3Config{Endpoint: "https://s3.example.net:9000", Bucket: "goldsmith", Prefix: "westus2",
			Region: "us-east-1", PathStyle: true, CredentialsFile: "/etc/goldsmith/s3.json", PartSizeMiB: 16}},
		{Name: "eastus"},
	}
	if !reflect.DeepEqual(conf.Regions, want) {
		t.Errorf("regions %+v, want %+v", conf.Regions, want)
	}
}
