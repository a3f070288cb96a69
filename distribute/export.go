package distribute

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// Converter converts disk images (disk.QemuImg).
type Converter interface {
	Convert(ctx context.Context, src, srcFormat, dst string, opt disk.ConvertOptions) error
}

// ExportFormats are the formats Export writes.
var ExportFormats = []string{"raw", "qcow2", "vhd", "vmdk"}

// qemuFormat maps goldsmith's format names to qemu-img's.
func qemuFormat(f string) (string, error) {
	switch strings.ToLower(f) {
	case "raw":
		return disk.FormatRaw, nil
	case "qcow2":
		return disk.FormatQCOW2, nil
	case "vhd", "vpc":
		return disk.FormatVHD, nil
	case "vmdk":
		return disk.FormatVMDK, nil
	}
	return "", fmt.Errorf("unknown disk format %q (want one of %s)", f, strings.Join(ExportFormats, ", "))
}

// Export writes the disk src (in srcFormat: raw, qcow2 or vhd) to dst in
// format (raw, qcow2, vhd: a fixed VHD with a 1 MiB-multiple size, vmdk:
// streamOptimized, what most hypervisors import). dst appears only when
// complete.
func Export(ctx context.Context, conv Converter, src, srcFormat, dst, format string) error {
	in, err := qemuFormat(srcFormat)
	if err != nil {
		return err
	}
	out, err := qemuFormat(format)
	if err != nil {
		return err
	}
	tmp := dst + ".partial"
	os.Remove(tmp)
	fail := func(err error) error {
		os.Remove(tmp)
		return fmt.Errorf("export to %s: %w", dst, err)
	}
	if in == out && in != disk.FormatVHD {
		err = disk.CopySparse(ctx, tmp, src)
	} else {
		opt := disk.ConvertOptions{Format: out}
		if out == disk.FormatVMDK {
			opt.Subformat = "streamOptimized"
		}
		err = conv.Convert(ctx, src, in, tmp, opt)
	}
	if err != nil {
		return fail(err)
	}
	if out == disk.FormatVHD {
		if _, err := disk.CheckFixedVHD(tmp); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fail(err)
	}
	return nil
}

// VirtualSize is the size of the disk a guest sees, read from the image:
// the file size for raw, the file less its footer for a fixed VHD, the
// header's size field for qcow2.
func VirtualSize(path, format string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	switch strings.ToLower(format) {
	case "raw":
		return st.Size(), nil
	case "vhd", "vpc":
		return st.Size() - disk.VHDFooterSize, nil
	case "qcow2":
		hdr := make([]byte, 32)
		if _, err := f.ReadAt(hdr, 0); err != nil {
			return 0, fmt.Errorf("read qcow2 header of %s: %w", path, err)
		}
		if string(hdr[:4]) != "QFI\xfb" {
			return 0, fmt.Errorf("%s is not a qcow2 image", path)
		}
		return int64(binary.BigEndian.Uint64(hdr[24:32])), nil
	}
	return 0, fmt.Errorf("virtual size of a %q image: unknown format", format)
}
