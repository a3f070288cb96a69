// Package download fetches the scripts, files and ISOs an AIB template
// references, with AIB's limits: http and https only (redirects included), a
// size cap per kind of download, and the template's sha256Checksum verified
// before anyone sees the bytes. A download to a file is written to a
// temporary file beside it and renamed into place only when it is complete
// and verified, so a cap hit, a bad checksum, a network error or a cancel
// leaves nothing behind.
package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Kind is what a download is for; it selects the size cap.
type Kind int

// The kinds of download a template has.
const (
	// Script is a Shell or PowerShell scriptUri (customizer, in-VM
	// validation or optimize workload script).
	Script Kind = iota
	// File is a File customizer's sourceUri.
	File
	// ISO is an ISO source's sourceURI.
	ISO
)

// String names one download of the kind, with its article.
func (k Kind) String() string {
	switch k {
	case Script:
		return "a script"
	case File:
		return "a File customizer's source"
	case ISO:
		return "an ISO source"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Default size caps.
const (
	// MaxFileBytes is AIB's documented limit for the File customizer: "only
	// suitable for small file downloads, < 20MB". AIB does not say whether
	// MB is 10^6 or 2^20 bytes; the larger reading refuses nothing AIB takes.
	MaxFileBytes int64 = 20 << 20
	// MaxScriptBytes bounds a scriptUri. AIB documents no limit. Scripts are
	// text, usually kilobytes; the customizer runner holds a script in memory
	// and uploads it over SSH, and staging keeps a copy per template, so the
	// cap bounds both. 64 MiB leaves room for self-extracting installers
	// (makeself and the like) while a larger body is almost surely a wrong
	// URL (an image or an archive where a script was meant).
	MaxScriptBytes int64 = 64 << 20
	// DefaultMaxISOBytes bounds an ISO source unless configured otherwise:
	// the RHEL DVD ISOs AIB accepted were 4-11 GB; 16 GiB takes them all and
	// still stops a runaway body before it fills a disk.
	DefaultMaxISOBytes int64 = 16 << 30
)

// Limits are the size caps in bytes. A zero field means its default.
type Limits struct {
	Script, File, ISO int64
}

// Of returns the cap for kind.
func (l Limits) Of(k Kind) int64 {
	pick := func(v, def int64) int64 {
		if v > 0 {
			return v
		}
		return def
	}
	switch k {
	case File:
		return pick(l.File, MaxFileBytes)
	case ISO:
		return pick(l.ISO, DefaultMaxISOBytes)
	}
	return pick(l.Script, MaxScriptBytes)
}

// TooLargeError says a download is over its size cap.
type TooLargeError struct {
	URI   string
	Kind  Kind
	Limit int64
	Size  int64 // the announced Content-Length; -1 when only known to exceed Limit
}

func (e *TooLargeError) Error() string {
	var msg string
	if e.Size >= 0 {
		msg = fmt.Sprintf("download %s: %d bytes is over the %d byte limit for %s", e.URI, e.Size, e.Limit, e.Kind)
	} else {
		msg = fmt.Sprintf("download %s: more than the %d byte limit for %s", e.URI, e.Limit, e.Kind)
	}
	switch e.Kind {
	case File:
		// AIB's own advice for large files.
		msg += "; the File customizer is only suitable for small file downloads, < 20MB: download larger files from a script (curl or wget)"
	case Script:
		msg += "; download large payloads from the script itself (curl or wget)"
	}
	return msg
}

// ChecksumError says the downloaded bytes are not the ones the template names.
type ChecksumError struct {
	URI, Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("sha256 mismatch for %s: the template's sha256Checksum is %s but the downloaded bytes have %s", e.URI, e.Want, e.Got)
}

// SchemeError says a URI (or a redirect's target) is not http or https.
type SchemeError struct {
	URI string
}

func (e *SchemeError) Error() string {
	return fmt.Sprintf("download %s: only http and https URIs can be fetched", e.URI)
}

// NormalizeSHA256 returns the lower-case form of a template's hex
// sha256Checksum, or an error if s is not 64 hex digits. An empty s
// returns "".
func NormalizeSHA256(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", nil
	}
	if len(s) != 64 {
		return "", fmt.Errorf("sha256Checksum %q is not 64 hex digits", s)
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("sha256Checksum %q is not hex", s)
	}
	return s, nil
}

// Local is a downloaded, verified file on this machine.
type Local struct {
	URI    string
	Path   string
	SHA256 string // lower-case hex
	Size   int64
}

// Downloader fetches with AIB's limits. The zero value works. Safe for
// concurrent use.
type Downloader struct {
	// Client makes the requests; nil means http.DefaultClient. Its redirect
	// policy is kept, with redirects to other schemes refused on top.
	// Requests carry the caller's context.
	Client *http.Client
	// Limits are the size caps; zero fields mean the defaults.
	Limits Limits
}

// ToFile downloads uri into dst, checked against its cap and against
// wantSHA256 (hex, any case) when that is set. dst appears only when the
// download is complete and verified; on any error nothing is left.
func (d *Downloader) ToFile(ctx context.Context, uri, wantSHA256 string, kind Kind, dst string) (Local, error) {
	want, body, err := d.open(ctx, uri, wantSHA256, kind)
	if err != nil {
		return Local{}, err
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return Local{}, fmt.Errorf("download %s: %w", uri, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, got, err := body.copyTo(tmp)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("download %s: %w", uri, cerr)
	}
	if err == nil {
		err = verify(uri, want, got)
	}
	if err != nil {
		return Local{}, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Local{}, fmt.Errorf("download %s: %w", uri, err)
	}
	return Local{URI: uri, Path: dst, SHA256: got, Size: n}, nil
}

// Bytes downloads uri into memory with the same checks as ToFile and
// returns the bytes and their sha256 (lower-case hex).
func (d *Downloader) Bytes(ctx context.Context, uri, wantSHA256 string, kind Kind) ([]byte, string, error) {
	want, body, err := d.open(ctx, uri, wantSHA256, kind)
	if err != nil {
		return nil, "", err
	}
	defer body.Close()
	var buf bytes.Buffer
	_, got, err := body.copyTo(&buf)
	if err == nil {
		err = verify(uri, want, got)
	}
	if err != nil {
		return nil, "", err
	}
	return buf.Bytes(), got, nil
}

// ReadLocal reads a file downloaded earlier (by ToFile) and checks it again:
// against its cap for kind, its recorded digest and wantSHA256 when set.
func ReadLocal(f Local, wantSHA256 string, kind Kind, limits Limits) ([]byte, error) {
	want, err := NormalizeSHA256(wantSHA256)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", f.URI, err)
	}
	r, err := os.Open(f.Path)
	if err != nil {
		return nil, fmt.Errorf("read the staged copy of %s: %w", f.URI, err)
	}
	defer r.Close()
	limit := limits.Of(kind)
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read the staged copy of %s: %w", f.URI, err)
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{URI: f.URI, Kind: kind, Limit: limit, Size: -1}
	}
	sum := sha256.Sum256(data)
	got := hex.EncodeToString(sum[:])
	if f.SHA256 != "" && !strings.EqualFold(f.SHA256, got) {
		return nil, fmt.Errorf("the staged copy of %s changed since it was verified: sha256 %s, recorded %s", f.URI, got, strings.ToLower(f.SHA256))
	}
	if err := verify(f.URI, want, got); err != nil {
		return nil, err
	}
	return data, nil
}

func verify(uri, want, got string) error {
	if want != "" && got != want {
		return &ChecksumError{URI: uri, Want: want, Got: got}
	}
	return nil
}

// body is a response body being read under a cap.
type body struct {
	uri   string
	kind  Kind
	limit int64
	rc    io.ReadCloser
}

func (b *body) Close() error { return b.rc.Close() }

// copyTo copies at most limit bytes to w and returns the count and digest;
// one byte more is a *TooLargeError.
func (b *body) copyTo(w io.Writer) (int64, string, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(b.rc, b.limit+1))
	if err != nil {
		return 0, "", fmt.Errorf("download %s: %w", b.uri, unwrapURL(err))
	}
	if n > b.limit {
		return 0, "", &TooLargeError{URI: b.uri, Kind: b.kind, Limit: b.limit, Size: -1}
	}
	return n, hexSum(h), nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// open checks the request, sends it and checks the answer's status and
// announced length.
func (d *Downloader) open(ctx context.Context, uri, wantSHA256 string, kind Kind) (string, *body, error) {
	want, err := NormalizeSHA256(wantSHA256)
	if err != nil {
		return "", nil, fmt.Errorf("download %s: %w", uri, err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", nil, fmt.Errorf("download %s: bad URI: %w", uri, err)
	}
	if !allowed(u) {
		return "", nil, &SchemeError{URI: uri}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return "", nil, fmt.Errorf("download %s: %w", uri, err)
	}
	resp, err := d.client().Do(req)
	if err != nil {
		var se *SchemeError
		if errors.As(err, &se) {
			return "", nil, fmt.Errorf("download %s: redirected: %w", uri, se)
		}
		return "", nil, fmt.Errorf("download %s: %w", uri, unwrapURL(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return "", nil, fmt.Errorf("download %s: HTTP %s", uri, resp.Status)
	}
	limit := d.Limits.Of(kind)
	if resp.ContentLength > limit {
		resp.Body.Close()
		return "", nil, &TooLargeError{URI: uri, Kind: kind, Limit: limit, Size: resp.ContentLength}
	}
	return want, &body{uri: uri, kind: kind, limit: limit, rc: resp.Body}, nil
}

func allowed(u *url.URL) bool { return u.Scheme == "http" || u.Scheme == "https" }

// client is d.Client with redirects to other schemes refused.
func (d *Downloader) client() *http.Client {
	c := http.Client{}
	if d.Client != nil {
		c = *d.Client
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !allowed(req.URL) {
			return &SchemeError{URI: req.URL.String()}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 { // net/http's own default policy
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// unwrapURL drops a *url.Error's wrapping: the caller's message already
// names the URI.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
