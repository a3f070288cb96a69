package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// server answers on 127.0.0.1:
//
//	/s.sh           the script, with Content-Length
//	/big            limit+1 bytes, with Content-Length
//	/chunked/big    limit+1 bytes, streamed without Content-Length
//	/exact          limit bytes, streamed
//	/to-file        a redirect to file:///etc/passwd
//	/to-script      a redirect to /s.sh
//	/stall          a few bytes, then nothing until the client goes away
func server(t *testing.T, script []byte, limit int64, stalled chan<- struct{}) *httptest.Server {
	t.Helper()
	big := bytes.Repeat([]byte("x"), int(limit)+1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/s.sh":
			w.Write(script)
		case "/big":
			w.Header().Set("Content-Length", "1001")
			w.Write(big)
		case "/chunked/big":
			w.(http.Flusher).Flush() // no Content-Length from here on
			w.Write(big)
		case "/exact":
			w.(http.Flusher).Flush()
			w.Write(big[:limit])
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/to-script":
			http.Redirect(w, r, "/s.sh", http.StatusFound)
		case "/stall":
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			stalled <- struct{}{}
			<-r.Context().Done()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDownload(t *testing.T) {
	script := []byte("#!/bin/sh\necho hi\n")
	want := digest(script)
	const limit = 1000
	srv := server(t, script, limit, nil)
	d := &Downloader{Limits: Limits{Script: limit, File: limit}}
	tests := []struct {
		name, path, sum string
		kind            Kind
		wantData        []byte
		errHas          []string
		as              any
	}{
		{name: "ok", path: "/s.sh", sum: want, wantData: script},
		{name: "upper-case digest", path: "/s.sh", sum: strings.ToUpper(want), wantData: script},
		{name: "no digest", path: "/s.sh", wantData: script},
		{name: "exactly at the cap", path: "/exact", kind: File, wantData: bytes.Repeat([]byte("x"), limit)},
		{name: "redirect to http", path: "/to-script", sum: want, wantData: script},
		{name: "bad checksum", path: "/s.sh", sum: strings.Repeat("ab", 32),
			errHas: []string{"/s.sh", strings.Repeat("ab", 32), want}, as: new(*ChecksumError)},
		{name: "digest not hex", path: "/s.sh", sum: "abc", errHas: []string{"not 64 hex"}},
		{name: "over the cap by Content-Length", path: "/big", errHas: []string{"1001 bytes is over the 1000 byte limit for a script"}, as: new(*TooLargeError)},
		{name: "over the cap mid-stream", path: "/chunked/big", errHas: []string{"more than the 1000 byte limit for a script"}, as: new(*TooLargeError)},
		{name: "File over the cap quotes AIB", path: "/chunked/big", kind: File,
			errHas: []string{"limit for a File customizer's source", "< 20MB"}, as: new(*TooLargeError)},
		{name: "not found", path: "/nope", errHas: []string{"/nope: HTTP 404"}},
		{name: "redirect to file://", path: "/to-file", errHas: []string{"redirected", "file:///etc/passwd", "only http and https"}, as: new(*SchemeError)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uri := srv.URL + tc.path
			dir := t.TempDir()
			dst := filepath.Join(dir, "out")
			f, ferr := d.ToFile(context.Background(), uri, tc.sum, tc.kind, dst)
			data, sum, berr := d.Bytes(context.Background(), uri, tc.sum, tc.kind)
			if len(tc.errHas) == 0 {
				if ferr != nil || berr != nil {
					t.Fatalf("ToFile: %v; Bytes: %v", ferr, berr)
				}
				onDisk, err := os.ReadFile(dst)
				if err != nil || !bytes.Equal(onDisk, tc.wantData) || !bytes.Equal(data, tc.wantData) {
					t.Fatalf("got %q on disk (%v) and %q in memory", onDisk, err, data)
				}
				if f.SHA256 != digest(tc.wantData) || sum != f.SHA256 || f.Size != int64(len(tc.wantData)) || f.Path != dst || f.URI != uri {
					t.Fatalf("got %+v and %s", f, sum)
				}
				return
			}
			for _, err := range []error{ferr, berr} {
				if err == nil {
					t.Fatal("no error")
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				if tc.as != nil && !errors.As(err, tc.as) {
					t.Errorf("error %T is not %T", err, tc.as)
				}
			}
			assertEmpty(t, dir)
		})
	}
}

func TestDownloadScheme(t *testing.T) {
	for _, uri := range []string{"file:///etc/passwd", "ftp://127.0.0.1/x", "/relative", "127.0.0.1/x"} {
		dir := t.TempDir()
		_, err := (&Downloader{}).ToFile(context.Background(), uri, "", Script, filepath.Join(dir, "out"))
		var se *SchemeError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), "only http and https") {
			t.Errorf("%s: %v, want a *SchemeError", uri, err)
		}
		assertEmpty(t, dir)
	}
}

// TestDownloadCancel cancels while the body is arriving: the call returns
// the context's error and leaves no partial file.
func TestDownloadCancel(t *testing.T) {
	stalled := make(chan struct{}, 1)
	srv := server(t, nil, 10, stalled)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-stalled; cancel() }()
	done := make(chan error, 1)
	go func() {
		_, err := (&Downloader{}).ToFile(ctx, srv.URL+"/stall", "", Script, filepath.Join(dir, "out"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ToFile did not return after cancel")
	}
	assertEmpty(t, dir)
}

// TestDownloadKeepsRedirectPolicy: the caller's own redirect policy still
// applies beside the scheme check.
func TestDownloadKeepsRedirectPolicy(t *testing.T) {
	srv := server(t, []byte("x"), 10, nil)
	refuse := errors.New("no redirects here")
	d := &Downloader{Client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return refuse }}}
	if _, _, err := d.Bytes(context.Background(), srv.URL+"/to-script", "", Script); !errors.Is(err, refuse) {
		t.Fatalf("err %v, want the client's own refusal", err)
	}
}

func TestReadLocal(t *testing.T) {
	data := []byte("echo staged\n")
	dir := t.TempDir()
	p := filepath.Join(dir, "s.sh")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f := Local{URI: "https://example.test/s.sh", Path: p, SHA256: digest(data), Size: int64(len(data))}
	tests := []struct {
		name   string
		f      Local
		sum    string
		kind   Kind
		limits Limits
		errHas string
		as     any
	}{
		{name: "ok", f: f, sum: strings.ToUpper(digest(data))},
		{name: "no digest in the template", f: f},
		{name: "template digest differs", f: f, sum: strings.Repeat("0", 64), errHas: "sha256 mismatch", as: new(*ChecksumError)},
		{name: "changed on disk", f: Local{URI: f.URI, Path: p, SHA256: strings.Repeat("1", 64)}, errHas: "changed since it was verified"},
		{name: "over the cap", f: f, kind: File, limits: Limits{File: 4}, errHas: "more than the 4 byte limit for a File customizer's source", as: new(*TooLargeError)},
		{name: "missing", f: Local{URI: f.URI, Path: filepath.Join(dir, "gone")}, errHas: "read the staged copy of https://example.test/s.sh"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadLocal(tc.f, tc.sum, tc.kind, tc.limits)
			if tc.errHas == "" {
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err %v, want it to mention %q", err, tc.errHas)
			}
			if tc.as != nil && !errors.As(err, tc.as) {
				t.Errorf("error %T is not %T", err, tc.as)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		l    Limits
		k    Kind
		want int64
	}{
		{Limits{}, Script, 64 << 20},
		{Limits{}, File, 20 << 20},
		{Limits{}, ISO, 16 << 30},
		{Limits{ISO: 5 << 30}, ISO, 5 << 30},
		{Limits{ISO: 5 << 30}, File, 20 << 20},
		{Limits{Script: 1}, Script, 1},
	}
	for _, tc := range tests {
		if got := tc.l.Of(tc.k); got != tc.want {
			t.Errorf("%+v.Of(%v) = %d, want %d", tc.l, tc.k, got, tc.want)
		}
	}
}

// assertEmpty fails if dir holds anything: no partial or temporary file.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left behind: %s", e.Name())
	}
}

func TestBaseName(t *testing.T) {
	tests := map[string]string{
		"https://h/a/motd.txt":          "motd.txt",
		"https://h/files/motd?x=1":      "motd",
		"https://h/files/motd#frag":     "motd",
		"https://h/a/dir/":              "dir",
		"https://h/my%20file.txt":       "my%20file.txt",
		"https://h/a%2Fb":               "a%2Fb",
		"https://h":                     "download",
		"https://h/":                    "download",
		"https://h/..":                  "download",
		"https://h/a/.":                 "download",
		"https://h/setup.sh?sv=1&sig=x": "setup.sh",
		"::not a uri":                   "download",
	}
	for in, want := range tests {
		if got := BaseName(in); got != want {
			t.Errorf("BaseName(%q) = %q, want %q", in, got, want)
		}
	}
}
