package disk

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// ImageTool is what goldsmith needs from qemu-img. Callers that need less
// should declare their own smaller interface; QemuImg satisfies both.
type ImageTool interface {
	CreateOverlay(ctx context.Context, path, backing, backingFormat string, size int64) error
	Convert(ctx context.Context, src, srcFormat, dst string, opt ConvertOptions) error
	Resize(ctx context.Context, path, format string, size int64) error
	Info(ctx context.Context, path, format string) (ImageInfo, error)
}

// ConvertOptions selects the output of a conversion.
type ConvertOptions struct {
	Format      string // FormatQCOW2, FormatRaw, FormatVHD (always fixed, force_size), FormatVMDK
	Compress    bool   // qcow2/vmdk only
	Subformat   string // vmdk: e.g. "streamOptimized"; ignored for vpc (always fixed)
	Preallocate bool   // raw/qcow2: allocate the whole file
}

// ImageInfo is the part of `qemu-img info --output=json` goldsmith reads.
type ImageInfo struct {
	Filename            string `json:"filename"`
	Format              string `json:"format"`
	VirtualSize         int64  `json:"virtual-size"`
	ActualSize          int64  `json:"actual-size"`
	ClusterSize         int64  `json:"cluster-size,omitempty"`
	BackingFilename     string `json:"backing-filename,omitempty"`
	FullBackingFilename string `json:"full-backing-filename,omitempty"`
	BackingFormat       string `json:"backing-filename-format,omitempty"`
	DirtyFlag           bool   `json:"dirty-flag,omitempty"`
}

// QemuImg runs the real qemu-img.
type QemuImg struct {
	Run  Runner
	Path string // "" means "qemu-img" from PATH
}

func (q QemuImg) run(ctx context.Context, args ...string) ([]byte, error) {
	name := q.Path
	if name == "" {
		name = "qemu-img"
	}
	return q.Run.Run(ctx, Cmd{Name: name, Args: args})
}

// CreateOverlay creates a qcow2 file at path whose backing file is backing
// (absolute path recommended: qemu resolves relative ones against path's
// directory). size 0 keeps the backing file's virtual size.
func (q QemuImg) CreateOverlay(ctx context.Context, path, backing, backingFormat string, size int64) error {
	args := []string{"create", "-q", "-f", FormatQCOW2, "-b", backing, "-F", backingFormat, path}
	if size > 0 {
		args = append(args, strconv.FormatInt(size, 10))
	}
	_, err := q.run(ctx, args...)
	return err
}

// Convert converts src to dst. A VHD is always written fixed with
// force_size, so its virtual size stays exactly the source's (a multiple of
// 1 MiB when the source's is); without force_size qemu rounds to CHS.
func (q QemuImg) Convert(ctx context.Context, src, srcFormat, dst string, opt ConvertOptions) error {
	args := []string{"convert", "-q"}
	if srcFormat != "" {
		args = append(args, "-f", srcFormat)
	}
	args = append(args, "-O", opt.Format)
	var o []string
	switch opt.Format {
	case FormatVHD:
		o = append(o, "subformat=fixed", "force_size=on")
	case FormatVMDK:
		if opt.Subformat != "" {
			o = append(o, "subformat="+opt.Subformat)
		}
	case FormatQCOW2, FormatRaw:
		if opt.Preallocate {
			o = append(o, "preallocation=falloc")
		}
	default:
		return fmt.Errorf("qemu-img convert: unsupported output format %q", opt.Format)
	}
	if opt.Compress {
		if opt.Format != FormatQCOW2 && opt.Format != FormatVMDK {
			return fmt.Errorf("qemu-img convert: %s cannot be compressed", opt.Format)
		}
		args = append(args, "-c")
	}
	for _, x := range o {
		args = append(args, "-o", x)
	}
	args = append(args, src, dst)
	_, err := q.run(ctx, args...)
	return err
}

// Resize sets the virtual size of path (growing only is safe for a disk
// with data; qemu-img refuses to shrink without --shrink).
func (q QemuImg) Resize(ctx context.Context, path, format string, size int64) error {
	args := []string{"resize", "-q"}
	if format != "" {
		args = append(args, "-f", format)
	}
	args = append(args, path, strconv.FormatInt(size, 10))
	_, err := q.run(ctx, args...)
	return err
}

// Info runs `qemu-img info --output=json`. Pass format FormatVHD for a
// fixed VHD: without it qemu-img reports one as raw.
func (q QemuImg) Info(ctx context.Context, path, format string) (ImageInfo, error) {
	args := []string{"info", "--output=json"}
	if format != "" {
		args = append(args, "-f", format)
	}
	args = append(args, path)
	out, err := q.run(ctx, args...)
	if err != nil {
		return ImageInfo{}, err
	}
	var info ImageInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return ImageInfo{}, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	return info, nil
}
