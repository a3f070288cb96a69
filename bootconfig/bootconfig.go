// Package bootconfig reads, from a disk image at rest, what the disk's own
// GRUB would boot: the default menu entry's kernel, initrd and kernel
// command line. It reads the image in Go (qcow2 with its backing chain, or
// raw; GPT or MBR; ext2/3/4), with no root, loop device or mount, so a VM
// can be restarted with direct kernel boot after a guest reboot without
// losing what a customizer changed in /boot.
//
// Whatever cannot be determined with confidence is an error, so the caller
// can boot through GRUB instead: a chosen entry with chainloader, multiboot,
// Xen or an unknown command, a root on LVM, RAID, btrfs or an encrypted
// volume, a variable that cannot be expanded, a one-time grub-reboot entry.
package bootconfig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Boot is what the disk's default GRUB entry boots.
type Boot struct {
	Kernel  string // the kernel, extracted into the caller's directory
	Initrd  string // the initrd(s), extracted and concatenated; "" if none
	Cmdline string // the command line GRUB would pass, BOOT_IMAGE=... first
	Entry   string // the menu entry's title, submenu levels joined by ">"
	Config  string // the grub.cfg read, e.g. (hd0,gpt2)/boot/grub/grub.cfg
}

// Read finds the default boot entry of the disk image at path (format
// "qcow2" or "raw") and extracts its kernel and initrd into outDir. Files
// already extracted there with the same contents are reused, so repeated
// reads of an unchanged disk cost little.
func Read(ctx context.Context, path, format, outDir string) (Boot, error) {
	img, err := openImage(path, format)
	if err != nil {
		return Boot{}, fmt.Errorf("boot config of %s: %w", path, err)
	}
	defer img.close()
	b, err := read(ctx, img, outDir)
	if err != nil {
		return Boot{}, fmt.Errorf("boot config of %s: %w", path, err)
	}
	return b, nil
}

func read(ctx context.Context, img *diskImage, outDir string) (Boot, error) {
	parts, err := readPartitions(img.r, img.size)
	if err != nil {
		return Boot{}, err
	}
	vols := &diskVolumes{img: img, parts: parts, open: map[int]*ext4Volume{}, errs: map[int]error{}}
	cfgDev, cfgPath, err := vols.findGrubCfg()
	if err != nil {
		return Boot{}, err
	}
	vol, _, _ := vols.get(cfgDev)
	src, err := vol.readFile(cfgPath)
	if err != nil {
		return Boot{}, err
	}
	sel, err := resolveGrub(string(src), vols, cfgDev, cfgPath)
	if err != nil {
		return Boot{}, err
	}
	if err := ctx.Err(); err != nil {
		return Boot{}, err
	}
	b := Boot{Cmdline: sel.cmdline(), Entry: sel.title, Config: "(" + cfgDev + ")" + cfgPath}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return Boot{}, err
	}
	b.Kernel, err = vols.extract(ctx, "kernel", []fileRef{sel.linux}, outDir, checkBzImage)
	if err != nil {
		return Boot{}, fmt.Errorf("kernel %s: %w", sel.arg0, err)
	}
	if len(sel.initrds) > 0 {
		b.Initrd, err = vols.extract(ctx, "initrd", sel.initrds, outDir, nil)
		if err != nil {
			return Boot{}, fmt.Errorf("initrd: %w", err)
		}
	}
	return b, nil
}

// checkBzImage refuses anything QEMU's -kernel would not boot as GRUB's
// linux command does: an x86 bzImage has "HdrS" at 0x202.
func checkBzImage(head []byte) error {
	if len(head) < 0x206 || string(head[0x202:0x206]) != "HdrS" {
		return errors.New("not an x86 Linux bzImage")
	}
	return nil
}

// diskVolumes are the filesystems of one disk image, opened on demand.
type diskVolumes struct {
	img   *diskImage
	parts []partition
	open  map[int]*ext4Volume
	errs  map[int]error
}

func (d *diskVolumes) volume(p partition) (*ext4Volume, error) {
	if v, ok := d.open[p.number]; ok {
		return v, nil
	}
	if err, ok := d.errs[p.number]; ok {
		return nil, err
	}
	fsys, err := openExt4(io.NewSectionReader(d.img.r, p.start, p.size), p.size)
	if err != nil {
		err = fmt.Errorf("(%s): %w", p.grubName(), err)
		d.errs[p.number] = err
		return nil, err
	}
	v := &ext4Volume{fs: fsys}
	d.open[p.number] = v
	return v, nil
}

// get implements volumes.
func (d *diskVolumes) get(dev string) (volume, string, error) {
	p, err := d.partition(dev)
	if err != nil {
		return nil, "", err
	}
	v, err := d.volume(p)
	if err != nil {
		return nil, "", err
	}
	return v, p.grubName(), nil
}

// partition finds a partition by its GRUB name.
func (d *diskVolumes) partition(dev string) (partition, error) {
	scheme, n, err := parseGrubDevice(dev)
	if err != nil {
		return partition{}, err
	}
	for _, p := range d.parts {
		if p.number == n && (scheme == "" || scheme == p.scheme) {
			return p, nil
		}
	}
	return partition{}, fmt.Errorf("device %q: no such partition", dev)
}

// parseGrubDevice parses GRUB's names of partitions on the first disk:
// hd0,gpt2, hd0,msdos1 or hd0,2 (scheme "").
func parseGrubDevice(dev string) (scheme string, number int, err error) {
	disk, part, ok := strings.Cut(dev, ",")
	if !ok || disk != "hd0" {
		return "", 0, fmt.Errorf("device %q: only partitions of the first disk (hd0,...) are supported", dev)
	}
	for _, s := range []string{"gpt", "msdos"} {
		if strings.HasPrefix(part, s) {
			scheme, part = s, part[len(s):]
		}
	}
	n, err := strconv.Atoi(part)
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("device %q: not a plain partition", dev)
	}
	return scheme, n, nil
}

// all implements volumes.
func (d *diskVolumes) all() []namedVolume {
	var out []namedVolume
	for _, p := range d.parts {
		if v, err := d.volume(p); err == nil {
			out = append(out, namedVolume{name: p.grubName(), vol: v})
		}
	}
	return out
}

// findGrubCfg finds the one filesystem with GRUB's config: /boot/grub on
// a root filesystem, or /grub on a separate /boot filesystem.
func (d *diskVolumes) findGrubCfg() (dev, path string, err error) {
	var found []string
	var why []string
	for _, p := range d.parts {
		v, err := d.volume(p)
		if err != nil {
			if !errors.Is(err, errNotExt4) {
				why = append(why, err.Error())
			}
			continue
		}
		for _, c := range []string{"/boot/grub/grub.cfg", "/grub/grub.cfg"} {
			if fi, err := v.stat(c); err == nil && !fi.dir {
				found = append(found, p.grubName()+" "+c)
			}
		}
	}
	switch len(found) {
	case 1:
		dev, path, _ = strings.Cut(found[0], " ")
		return dev, path, nil
	case 0:
		msg := "no ext2/3/4 filesystem on the disk holds /boot/grub/grub.cfg or /grub/grub.cfg"
		if len(why) > 0 {
			msg += " (" + strings.Join(why, "; ") + ")"
		}
		return "", "", errors.New(msg)
	}
	return "", "", fmt.Errorf("several GRUB configs on the disk (%s): which one GRUB reads is unknown", strings.Join(found, ", "))
}

// extract writes the files, concatenated as GRUB concatenates initrds
// (each starting 4-byte aligned), to outDir/<kind>-<key> and returns the
// path. The key comes from the files' inode change data when the
// filesystem records nanosecond times, so an unchanged file is not read
// again; else from the contents.
func (d *diskVolumes) extract(ctx context.Context, kind string, refs []fileRef, outDir string, check func([]byte) error) (string, error) {
	type src struct {
		vol *ext4Volume
		in  *inode
	}
	var srcs []src
	key := sha256.New()
	keyed := true
	for _, ref := range refs {
		v, _, err := d.get(ref.dev)
		if err != nil {
			return "", err
		}
		ev := v.(*ext4Volume)
		in, err := ev.fs.lookup(ref.path)
		if err != nil {
			return "", fmt.Errorf("(%s)%s: %w", ref.dev, ref.path, err)
		}
		if !in.isRegular() {
			return "", fmt.Errorf("(%s)%s: not a regular file", ref.dev, ref.path)
		}
		k, ok := in.changeKey()
		keyed = keyed && ok
		fmt.Fprintf(key, "%s %s %s\x00", ev.fs.uuid, ref.path, k)
		srcs = append(srcs, src{ev, in})
	}
	if keyed {
		p := filepath.Join(outDir, kind+"-"+hex.EncodeToString(key.Sum(nil))[:32])
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	tmp, err := os.CreateTemp(outDir, "."+kind+"-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	content := sha256.New()
	w := &ctxWriter{ctx: ctx, w: io.MultiWriter(tmp, content)}
	var written int64
	for i, s := range srcs {
		if pad := (4 - written%4) % 4; i > 0 && pad > 0 {
			if _, err := w.Write(make([]byte, pad)); err != nil {
				tmp.Close()
				return "", err
			}
			written += pad
		}
		if err := s.vol.fs.readData(s.in, w); err != nil {
			tmp.Close()
			return "", fmt.Errorf("(%s)%s: %w", refs[i].dev, refs[i].path, err)
		}
		written += s.in.size
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if check != nil {
		head := make([]byte, 1024)
		f, err := os.Open(tmp.Name())
		if err != nil {
			return "", err
		}
		n, _ := io.ReadFull(f, head)
		f.Close()
		if err := check(head[:n]); err != nil {
			return "", err
		}
	}
	name := hex.EncodeToString(content.Sum(nil))[:32]
	if keyed {
		name = hex.EncodeToString(key.Sum(nil))[:32]
	}
	p := filepath.Join(outDir, kind+"-"+name)
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", err
	}
	return p, nil
}

// ctxWriter stops a long copy when its context ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// ext4Volume adapts an ext4FS to volume.
type ext4Volume struct{ fs *ext4FS }

func (v *ext4Volume) uuid() string  { return v.fs.uuid }
func (v *ext4Volume) label() string { return v.fs.label }

func (v *ext4Volume) stat(p string) (fileInfo, error) {
	in, err := v.fs.lookup(p)
	if err != nil {
		return fileInfo{}, err
	}
	return fileInfo{size: in.size, dir: in.isDir()}, nil
}

// maxConfigFile bounds what readFile loads into memory (grub.cfg, grubenv).
const maxConfigFile = 16 << 20

func (v *ext4Volume) readFile(p string) ([]byte, error) {
	in, err := v.fs.lookup(p)
	if err != nil {
		return nil, err
	}
	if !in.isRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	if in.size > maxConfigFile {
		return nil, fmt.Errorf("%s: %d bytes, too large for a config file", p, in.size)
	}
	var b bytes.Buffer
	if err := v.fs.readData(in, &b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
