package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// ImportRequest adds an existing disk image to the catalog.
type ImportRequest struct {
	// URN to file it under. Without a version (or "latest") it gets
	// MAJOR.YYYYMMDD.N, MAJOR being the SKU's leading number (0 if none).
	URN string
	// Source is a local file path or an http(s) URL.
	Source string
	// SHA256 of the file as served; required. The bytes are hashed as they
	// stream in and nothing is kept unless it matches.
	SHA256 string
	// Defaults: Linux, V1.
	OSType, HyperVGeneration string
}

// ErrDigestMismatch is returned (wrapped) when an import's bytes do not
// hash to the digest given.
var ErrDigestMismatch = errors.New("sha256 mismatch")

// Import copies a qcow2, raw or VHD image (detected by content) into the
// blob store and adds it to the catalog. It returns the new entry. The same
// bytes under the same URN version are not imported twice: that returns the
// existing entry.
func (c *Catalog) Import(ctx context.Context, req ImportRequest) (Entry, error) {
	e, err := c.importImage(ctx, req)
	if err != nil {
		return Entry{}, fmt.Errorf("import %s from %s: %w", req.URN, req.Source, err)
	}
	return e, nil
}

func (c *Catalog) importImage(ctx context.Context, req ImportRequest) (Entry, error) {
	u, err := ParseURN(req.URN)
	if err != nil {
		return Entry{}, err
	}
	if _, ok := c.builtinFor(u); ok {
		return Entry{}, fmt.Errorf("%s is a built-in image; import under another URN", u)
	}
	want, err := disk.NormalizeSHA256(req.SHA256)
	if err != nil {
		return Entry{}, fmt.Errorf("the sha256 is required: %w", err)
	}
	osType, gen := req.OSType, req.HyperVGeneration
	if osType == "" {
		osType = "Linux"
	}
	if gen == "" {
		gen = "V1"
	}
	if !strings.EqualFold(osType, "Linux") && !strings.EqualFold(osType, "Windows") {
		return Entry{}, fmt.Errorf("osType %q: want Linux or Windows", osType)
	}
	if gen != "V1" && gen != "V2" {
		return Entry{}, fmt.Errorf("hyperVGeneration %q: want V1 or V2", gen)
	}
	if u.Version != "" {
		idx, err := c.readIndex()
		if err != nil {
			return Entry{}, err
		}
		if old, err := idx.find(u); err == nil {
			if old.DiskSHA256 == want {
				return c.withPaths(old), nil
			}
			return Entry{}, fmt.Errorf("%s: %w (with another sha256)", u, ErrExists)
		}
	}

	tmp, err := os.CreateTemp(c.tmpDir(), "import-*")
	if err != nil {
		return Entry{}, err
	}
	tmpName := tmp.Name()
	keep := false
	defer func() {
		tmp.Close()
		if !keep {
			os.Remove(tmpName)
		}
	}()
	src, err := c.open(ctx, req.Source)
	if err != nil {
		return Entry{}, err
	}
	defer src.Close()
	h := disk.NewHashingReader(disk.ContextReader(ctx, src))
	if _, err := disk.WriteSparse(tmp, h); err != nil {
		return Entry{}, fmt.Errorf("download: %w", err)
	}
	if got := h.Sum(); got != want {
		return Entry{}, fmt.Errorf("%w for %s: expected %s, got %s", ErrDigestMismatch, redactURL(req.Source), want, got)
	}
	if err := tmp.Sync(); err != nil {
		return Entry{}, err
	}
	if err := tmp.Close(); err != nil {
		return Entry{}, err
	}

	format, err := disk.DetectFormat(tmpName)
	if err != nil {
		return Entry{}, err
	}
	if format == disk.FormatVMDK {
		return Entry{}, errors.New("VMDK images are not supported as a source: convert to qcow2, raw or VHD")
	}
	info, err := c.tools.images.Info(ctx, tmpName, format)
	if err != nil {
		return Entry{}, fmt.Errorf("inspect image: %w", err)
	}
	if info.BackingFilename != "" {
		// A backing file reference would make the build read a host path.
		return Entry{}, fmt.Errorf("the image refers to a backing file (%s); import a standalone image", info.BackingFilename)
	}
	if err := c.placeBlob(tmpName, want); err != nil {
		return Entry{}, err
	}
	keep = true

	e := Entry{
		Publisher: u.Publisher, Offer: u.Offer, SKU: u.SKU, Version: u.Version,
		DiskFormat: format, DiskSHA256: want, DiskSize: h.N(), VirtualSize: info.VirtualSize,
		OSType: canonicalOSType(osType), HyperVGeneration: gen, Created: c.now().UTC(),
		Source: "import " + redactURL(req.Source),
	}
	if err := c.addEntry(ctx, &e, majorOf(u.SKU)); err != nil {
		return Entry{}, err
	}
	return c.withPaths(e), nil
}

func canonicalOSType(s string) string {
	if strings.EqualFold(s, "Windows") {
		return "Windows"
	}
	return "Linux"
}

// open returns the bytes of a local file or an http(s) URL.
func (c *Catalog) open(ctx context.Context, source string) (io.ReadCloser, error) {
	if strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %s", redactURL(source), resp.Status)
		}
		return resp.Body, nil
	}
	if strings.Contains(source, "://") {
		return nil, fmt.Errorf("unsupported source %q: want a file path or an http(s) URL", source)
	}
	return os.Open(source)
}

// redactURL drops credentials and query strings (SAS tokens) from a URL
// for logs and the index.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return s
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	return u.String()
}
