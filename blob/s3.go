package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// S3Config places a region's store in a bucket (or under a prefix in one)
// on an S3-compatible server. Credentials come from CredentialsFile when
// set, else from the environment variables AccessKeyEnv and SecretKeyEnv.
type S3Config struct {
	// Endpoint is the server's URL, http:// or https:// (plain host:port
	// means https).
	Endpoint string `json:"endpoint"`
	Bucket   string `json:"bucket"`
	Prefix   string `json:"prefix,omitempty"`
	Region   string `json:"region,omitempty"`
	// PathStyle addresses buckets as https://host/bucket/key rather than
	// https://bucket.host/key (what most servers other than AWS want).
	PathStyle bool `json:"pathStyle,omitempty"`
	// CredentialsFile is a JSON file {"accessKey": "...", "secretKey": "..."}.
	CredentialsFile string `json:"credentialsFile,omitempty"`
	AccessKeyEnv    string `json:"accessKeyEnv,omitempty"` // default AWS_ACCESS_KEY_ID
	SecretKeyEnv    string `json:"secretKeyEnv,omitempty"` // default AWS_SECRET_ACCESS_KEY
	// PartSizeMiB is the multipart upload's part size (default 64, minimum 5).
	PartSizeMiB int64 `json:"partSizeMiB,omitempty"`
}

// S3 is a region's blob store in an S3-compatible bucket:
//
//	PREFIX/sha256/ab/abcdef...   the blobs
//	PREFIX/tmp/                  uploads in progress
type S3 struct {
	client   *minio.Client
	endpoint string // scheme://host, to tell when a server-side copy works
	bucket   string
	prefix   string
	partSize uint64
	timeout  time.Duration // of the calls that take no context
	// tmpAge: CleanTmp leaves what under tmp/ is younger (see there).
	tmpAge time.Duration
	locks  keyLocks
}

// defaultTmpAge outlasts any upload goldsmith makes.
const defaultTmpAge = 24 * time.Hour

// NewS3 opens the store cfg names; its bucket must exist. getenv reads the
// environment (os.Getenv).
func NewS3(ctx context.Context, cfg S3Config, getenv func(string) string) (*S3, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" {
		u, err = url.Parse("https://" + cfg.Endpoint)
	}
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("s3 store: endpoint %q: want http(s)://host[:port]", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("s3 store %s: no bucket", cfg.Endpoint)
	}
	ak, sk, err := s3Credentials(cfg, getenv)
	if err != nil {
		return nil, fmt.Errorf("s3 store %s/%s: %w", cfg.Endpoint, cfg.Bucket, err)
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(ak, sk, ""),
		Secure:       u.Scheme == "https",
		Region:       cfg.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: %w", cfg.Endpoint, err)
	}
	part := cfg.PartSizeMiB
	if part == 0 {
		part = 64
	}
	if part < 5 {
		return nil, fmt.Errorf("s3 store %s: partSizeMiB %d is below S3's minimum of 5", cfg.Endpoint, part)
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	s := &S3{client: client, endpoint: u.Scheme + "://" + u.Host, bucket: cfg.Bucket, prefix: prefix,
		partSize: uint64(part) << 20, timeout: time.Minute, tmpAge: defaultTmpAge}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3 store %s/%s: %w", s.endpoint, cfg.Bucket, err)
	}
	if !ok {
		return nil, fmt.Errorf("s3 store %s: the bucket %s does not exist", s.endpoint, cfg.Bucket)
	}
	return s, nil
}

func s3Credentials(cfg S3Config, getenv func(string) string) (string, string, error) {
	if cfg.CredentialsFile != "" {
		b, err := os.ReadFile(cfg.CredentialsFile)
		if err != nil {
			return "", "", fmt.Errorf("read credentials: %w", err)
		}
		var c struct {
			AccessKey string `json:"accessKey"`
			SecretKey string `json:"secretKey"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return "", "", fmt.Errorf("credentials file %s: %w", cfg.CredentialsFile, err)
		}
		if c.AccessKey == "" || c.SecretKey == "" {
			return "", "", fmt.Errorf("credentials file %s: want accessKey and secretKey", cfg.CredentialsFile)
		}
		return c.AccessKey, c.SecretKey, nil
	}
	akEnv, skEnv := cfg.AccessKeyEnv, cfg.SecretKeyEnv
	if akEnv == "" {
		akEnv = "AWS_ACCESS_KEY_ID"
	}
	if skEnv == "" {
		skEnv = "AWS_SECRET_ACCESS_KEY"
	}
	ak, sk := getenv(akEnv), getenv(skEnv)
	if ak == "" || sk == "" {
		return "", "", fmt.Errorf("no credentials: set %s and %s, or credentialsFile", akEnv, skEnv)
	}
	return ak, sk, nil
}

// Endpoint is the server's scheme://host[:port]: buckets on one endpoint
// copy between each other on the server.
func (s *S3) Endpoint() string { return s.endpoint }

// Bucket is the store's bucket.
func (s *S3) Bucket() string { return s.bucket }

// String names the store.
func (s *S3) String() string { return s.endpoint + "/" + s.bucket + "/" + s.prefix }

// Key is the object key of the blob sum.
func (s *S3) Key(sum string) string {
	sum = strings.ToLower(sum)
	if len(sum) < 2 {
		return s.prefix + "sha256/_/" + sum
	}
	return s.prefix + "sha256/" + sum[:2] + "/" + sum
}

// Lock serializes this process's decisions about one blob.
func (s *S3) Lock(sum string) func() { return s.locks.lock(sum) }

func notFound(err error) bool {
	return minio.ToErrorResponse(err).StatusCode == http.StatusNotFound
}

// Stat returns the blob's size, and whether it exists.
func (s *S3) Stat(sum string) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	info, err := s.client.StatObject(ctx, s.bucket, s.Key(sum), minio.StatObjectOptions{})
	if notFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("blob %s in %s: %w", sum, s, err)
	}
	return info.Size, true, nil
}

// Put uploads the file src as the blob sum (PutReader); opt does not apply:
// a bucket cannot hard-link.
func (s *S3) Put(ctx context.Context, sum, src string, _ PutOptions) (Placed, error) {
	if n, ok, err := s.Stat(sum); err != nil || ok {
		return Placed{Size: n, Reused: ok}, err
	}
	f, err := os.Open(src)
	if err != nil {
		return Placed{}, fmt.Errorf("blob put: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Placed{}, fmt.Errorf("blob put: %w", err)
	}
	return s.PutReader(ctx, sum, f, st.Size())
}

// PutReader uploads size bytes from r as the blob sum: a multipart upload
// (parts of PartSizeMiB) to tmp/, its sha256 computed from the bytes as they
// are sent. Only when it matches is the object copied by the server to its
// name (and tmp/ removed); a mismatch or failure removes the upload, so a
// blob never appears with the wrong bytes. The server checks each part's
// CRC32C checksum that minio-go sends, so what it stored is what was hashed.
// The caller holds Lock(sum).
func (s *S3) PutReader(ctx context.Context, sum string, r io.Reader, size int64) (Placed, error) {
	sum = strings.ToLower(sum)
	if _, err := disk.NormalizeSHA256(sum); err != nil {
		return Placed{}, fmt.Errorf("blob put: %w", err)
	}
	if n, ok, err := s.Stat(sum); err != nil || ok {
		return Placed{Size: n, Reused: ok}, err
	}
	tmp := s.tmpKey(sum)
	h := sha256.New()
	// A plain Reader (the TeeReader hides any ReaderAt): minio-go then
	// reads the parts in order rather than in parallel, so h sees every
	// byte, in order, as it is sent.
	info, err := s.client.PutObject(ctx, s.bucket, tmp, io.TeeReader(disk.ContextReader(ctx, r), h), size,
		minio.PutObjectOptions{PartSize: s.partSize, ContentType: "application/octet-stream"})
	if err != nil {
		s.removeTmp(tmp)
		return Placed{}, fmt.Errorf("upload blob %s to %s: %w", sum, s, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum || info.Size != size {
		s.removeTmp(tmp)
		return Placed{}, fmt.Errorf("upload blob %s to %s: %w: the %d bytes sent have %s", sum, s, ErrDigestMismatch, info.Size, got)
	}
	if err := s.place(ctx, tmp, sum); err != nil {
		return Placed{}, err
	}
	return Placed{Size: size, Copied: true}, nil
}

func (s *S3) tmpKey(sum string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return s.prefix + "tmp/" + sum[:12] + "-" + hex.EncodeToString(b[:])
}

// place copies tmp to the blob's key on the server and removes tmp.
func (s *S3) place(ctx context.Context, tmp, sum string) error {
	defer s.removeTmp(tmp)
	_, err := s.client.ComposeObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: s.Key(sum)},
		minio.CopySrcOptions{Bucket: s.bucket, Object: tmp})
	if err != nil {
		return fmt.Errorf("place blob %s in %s: %w", sum, s, err)
	}
	return nil
}

func (s *S3) removeTmp(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	_ = s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	_ = s.client.RemoveIncompleteUpload(ctx, s.bucket, key)
}

// copyFrom has the server copy the blob from src (same endpoint) to tmp/,
// reads the copy back to check its sha256, then places it.
func (s *S3) copyFrom(ctx context.Context, src *S3, sum string, size int64) (Placed, error) {
	tmp := s.tmpKey(sum)
	_, err := s.client.ComposeObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: tmp},
		minio.CopySrcOptions{Bucket: src.bucket, Object: src.Key(sum)})
	if err != nil {
		s.removeTmp(tmp)
		return Placed{}, fmt.Errorf("copy blob %s from %s to %s: %w", sum, src, s, err)
	}
	got, n, err := s.hashObject(ctx, tmp)
	if err == nil && (got != sum || n != size) {
		err = fmt.Errorf("%w: expected %s, the copy's %d bytes have %s", ErrDigestMismatch, sum, n, got)
	}
	if err != nil {
		s.removeTmp(tmp)
		return Placed{}, fmt.Errorf("copy blob %s from %s to %s: %w", sum, src, s, err)
	}
	if err := s.place(ctx, tmp, sum); err != nil {
		return Placed{}, err
	}
	return Placed{Size: size, Copied: true, ServerCopied: true}, nil
}

func (s *S3) hashObject(ctx context.Context, key string) (string, int64, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return "", 0, err
	}
	defer obj.Close()
	h := sha256.New()
	n, err := io.Copy(h, obj)
	if err != nil {
		return "", n, fmt.Errorf("read back %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Open reads the blob sum.
func (s *S3) Open(ctx context.Context, sum string) (io.ReadCloser, error) {
	if _, ok, err := s.Stat(sum); err != nil || !ok {
		if err == nil {
			err = os.ErrNotExist
		}
		return nil, fmt.Errorf("open blob %s in %s: %w", sum, s, err)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.Key(sum), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("open blob %s in %s: %w", sum, s, err)
	}
	return obj, nil
}

// PresignGet returns a URL that reads the blob without other credentials
// until expiry (at most 7 days, S3's limit). A VHD's artifactUri is this
// link rather than goldsmith's own signed proxy: a disk of several GiB then
// goes from the object store to the client directly, not through goldsmith,
// and the URL's scheme and host are the object store's.
func (s *S3) PresignGet(ctx context.Context, sum string, expiry time.Duration) (*url.URL, error) {
	u, err := s.client.PresignedGetObject(ctx, s.bucket, s.Key(sum), expiry, nil)
	if err != nil {
		return nil, fmt.Errorf("presign blob %s in %s: %w", sum, s, err)
	}
	return u, nil
}

// Remove deletes the blob; a missing blob is not an error. The caller holds
// Lock(sum) and has checked that nothing refers to it.
func (s *S3) Remove(sum string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.client.RemoveObject(ctx, s.bucket, s.Key(sum), minio.RemoveObjectOptions{}); err != nil && !notFound(err) {
		return fmt.Errorf("remove blob %s from %s: %w", sum, s, err)
	}
	return nil
}

// List returns the sums of the blobs in the store.
func (s *S3) List() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	var sums []string
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + "sha256/", Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s: %w", s, o.Err)
		}
		sums = append(sums, path.Base(o.Key))
	}
	return sums, nil
}

// CleanTmp removes the uploads a crash left in tmp/, finished or not. Call
// it when no Put runs.
func (s *S3) CleanTmp() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	// A bucket is shared by every node of a fleet: what is younger than
	// tmpAge may be another node's upload in progress.
	before := time.Now().Add(-s.tmpAge)
	var errs []error
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + "tmp/", Recursive: true}) {
		if o.Err != nil {
			return fmt.Errorf("clean %s: %w", s, o.Err)
		}
		if o.LastModified.After(before) {
			continue
		}
		errs = append(errs, s.client.RemoveObject(ctx, s.bucket, o.Key, minio.RemoveObjectOptions{}))
	}
	for u := range s.client.ListIncompleteUploads(ctx, s.bucket, s.prefix+"tmp/", true) {
		if u.Err != nil {
			return fmt.Errorf("clean %s: %w", s, u.Err)
		}
		if u.Initiated.After(before) {
			continue
		}
		errs = append(errs, s.client.RemoveIncompleteUpload(ctx, s.bucket, u.Key))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean %s: %w", s, err)
	}
	return nil
}
