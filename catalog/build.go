package catalog

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/goldsmith-dev/goldsmith/disk"
)

// kernelCmdline is the command line of built images, for GRUB and for
// direct kernel boot. The serial console comes last so it is /dev/console:
// systemd's messages and the login prompt reach ttyS0 (Azure's serial
// console, and the build log here).
func kernelCmdline(fsUUID string) string {
	return "root=UUID=" + fsUUID + " ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200"
}

// build makes a new version of a built-in image. The caller holds the
// recipe's build lock. Everything it creates outside the blob store lives
// in one work directory, removed on every return path.
func (c *Catalog) build(ctx context.Context, b Builtin) (_ Entry, err error) {
	started := c.now()
	log := c.log.With("image", b.URN())
	c.removeStaleWork(b)
	work, err := os.MkdirTemp(c.tmpDir(), workPrefix(b))
	if err != nil {
		return Entry{}, fmt.Errorf("build %s: %w", b.URN(), err)
	}
	defer func() {
		if rerr := removeWorkDir(work); rerr != nil {
			log.Error("remove work directory", "dir", work, "err", rerr)
			if err == nil {
				err = fmt.Errorf("build %s: %w", b.URN(), rerr)
			}
		}
	}()
	e, err := c.buildIn(ctx, b, work)
	if err != nil {
		return Entry{}, fmt.Errorf("build %s: %w", b.URN(), err)
	}
	log.Info("built", "urn", e.URN, "elapsed", c.now().Sub(started).Round(time.Second), "diskBytes", e.DiskSize)
	return e, nil
}

func workPrefix(b Builtin) string { return "build-" + b.Name + "-" }

// removeStaleWork deletes work directories of b's earlier builds that died
// without cleaning up; the caller's build lock says none is running.
func (c *Catalog) removeStaleWork(b Builtin) {
	old, _ := filepath.Glob(filepath.Join(c.tmpDir(), workPrefix(b)+"*"))
	for _, d := range old {
		if err := removeWorkDir(d); err != nil {
			c.log.Warn("remove stale work directory", "dir", d, "err", err)
		}
	}
}

func (c *Catalog) buildIn(ctx context.Context, b Builtin, work string) (Entry, error) {
	log := c.log.With("image", b.URN())
	root := filepath.Join(work, "rootfs")
	step := func(name string, t0 time.Time) { log.Info(name, "elapsed", time.Since(t0).Round(10*time.Millisecond)) }

	fsUUID, err := newUUID()
	if err != nil {
		return Entry{}, err
	}
	// initramfs-tools finds the root filesystem's type by probing the
	// build host's device for it, finds nothing, and leaves fsck out of the
	// initramfs; naming the type fixes that, now and at kernel upgrades.
	initramfsConf := filepath.Join(work, "initramfs-fstype.conf")
	if err := os.WriteFile(initramfsConf, []byte("# Written by goldsmith: the root filesystem's type, for the fsck hook.\nFSTYPE=ext4\n"), 0o644); err != nil {
		return Entry{}, err
	}
	t0 := time.Now()
	if err := c.tools.bootstrap.Bootstrap(ctx, BootstrapSpec{
		Suite:      b.Suite,
		Variant:    "minbase",
		Sources:    b.Sources(),
		Packages:   b.Packages,
		AptOptions: []string{`Acquire::Check-Valid-Until "false"`},
		HookDirs:   b.hookDirs(),
		DebCache:   c.debDir(),
		EarlyFiles: []EarlyFile{{Src: initramfsConf, Dst: "/etc/initramfs-tools/conf.d/goldsmith-fstype.conf"}},
		Target:     root,
	}); err != nil {
		return Entry{}, fmt.Errorf("bootstrap %s: %w", b.Suite, err)
	}
	step("root filesystem bootstrapped", t0)

	if err := configureRootfs(root, rootConfig{Hostname: b.Hostname, FSUUID: fsUUID}); err != nil {
		return Entry{}, fmt.Errorf("configure root filesystem: %w", err)
	}
	pkgs, err := c.tools.packages.ListPackages(ctx, root)
	if err != nil {
		return Entry{}, fmt.Errorf("list packages: %w", err)
	}

	// Kernel and initrd for direct kernel boot, out of the tree before it
	// goes into the filesystem. /vmlinuz and /initrd.img are the links the
	// kernel package maintains, so grub.cfg keeps working after a kernel
	// upgrade inside a build.
	kernel, initrd := filepath.Join(work, "vmlinuz"), filepath.Join(work, "initrd.img")
	for _, f := range []struct{ guest, dst string }{{"/vmlinuz", kernel}, {"/initrd.img", initrd}} {
		src, err := resolveInRoot(root, f.guest)
		if err != nil {
			return Entry{}, fmt.Errorf("find %s in the image: %w", f.guest, err)
		}
		if err := copyFile(f.dst, src); err != nil {
			return Entry{}, err
		}
	}
	cmdline := kernelCmdline(fsUUID)
	grubCfg, err := disk.GrubConfig{Title: b.Title, Kernel: "/vmlinuz", Initrd: "/initrd.img", Cmdline: cmdline, TimeoutSeconds: 1}.Render(fsUUID)
	if err != nil {
		return Entry{}, err
	}
	if err := disk.InstallGrubFiles(root, c.grubDir, grubCfg); err != nil {
		return Entry{}, fmt.Errorf("install GRUB files: %w", err)
	}

	t0 = time.Now()
	raw := filepath.Join(work, "disk.raw")
	d, err := disk.MakeBIOSDisk(ctx, c.tools.disk, disk.BIOSDiskSpec{
		Path: raw, Size: c.diskSize, RootDir: root, RootFSUUID: fsUUID, RootLabel: "root",
		GrubModuleDir: c.grubDir,
	})
	if err != nil {
		return Entry{}, err
	}
	step("disk written", t0)
	// The tree is in the disk now: remove it while qemu-img converts.
	removed := make(chan error, 1)
	go func() { removed <- removeWorkDir(root) }()
	defer func() { <-removed }() // before build removes the work directory

	t0 = time.Now()
	qcow := filepath.Join(work, "disk.qcow2")
	if err := c.tools.images.Convert(ctx, raw, disk.FormatRaw, qcow, disk.ConvertOptions{Format: disk.FormatQCOW2, Compress: c.compress}); err != nil {
		return Entry{}, fmt.Errorf("convert to qcow2: %w", err)
	}
	info, err := c.tools.images.Info(ctx, qcow, disk.FormatQCOW2)
	if err != nil {
		return Entry{}, err
	}
	if info.VirtualSize != d.Size {
		return Entry{}, fmt.Errorf("qcow2 virtual size %d, want %d", info.VirtualSize, d.Size)
	}
	step("converted to qcow2", t0)

	diskSHA, diskSize, err := c.storeBlob(ctx, qcow)
	if err != nil {
		return Entry{}, err
	}
	kernelSHA, _, err := c.storeBlob(ctx, kernel)
	if err != nil {
		return Entry{}, err
	}
	initrdSHA, _, err := c.storeBlob(ctx, initrd)
	if err != nil {
		return Entry{}, err
	}

	created := c.now().UTC()
	e := Entry{
		Publisher: b.Publisher, Offer: b.Offer, SKU: b.SKU,
		DiskFormat: disk.FormatQCOW2, DiskSHA256: diskSHA, DiskSize: diskSize, VirtualSize: d.Size,
		KernelSHA256: kernelSHA, InitrdSHA256: initrdSHA, Cmdline: cmdline,
		OSType: "Linux", HyperVGeneration: "V1", Packages: pkgs, Created: created,
		Source: fmt.Sprintf("built-in recipe %s: mmdebstrap %s from %s", b.Name, b.Suite, b.Mirror),
		Recipe: b.RecipeDigest(),
	}
	if err := c.addEntry(ctx, &e, b.Major); err != nil {
		return Entry{}, err
	}
	return c.withPaths(e), nil
}

// addEntry gives e the next version of the day (unless it has one) and
// appends it to the index.
func (c *Catalog) addEntry(ctx context.Context, e *Entry, major string) error {
	return c.updateIndex(ctx, func(idx *index) error {
		u := URN{Publisher: e.Publisher, Offer: e.Offer, SKU: e.SKU}
		var versions []string
		for _, x := range idx.Entries {
			if (URN{Publisher: x.Publisher, Offer: x.Offer, SKU: x.SKU}).sameImage(u) {
				versions = append(versions, x.Version)
				if e.Version != "" && x.Version == e.Version {
					return fmt.Errorf("%s:%s: %w", u, e.Version, ErrExists)
				}
			}
		}
		if e.Version == "" {
			e.Version = nextVersion(major, e.Created.Format("20060102"), versions)
		}
		u.Version = e.Version
		e.URN = u.String()
		idx.Entries = append(idx.Entries, *e)
		return nil
	})
}

// ErrExists is returned (wrapped) when a version is already in the catalog.
var ErrExists = errors.New("image version already in the catalog")

// storeBlob moves the file at p into the blob store under its sha256 (or
// drops it if that blob exists) and returns the digest and size.
func (c *Catalog) storeBlob(ctx context.Context, p string) (string, int64, error) {
	sum, n, err := disk.SHA256File(ctx, p)
	if err != nil {
		return "", 0, err
	}
	return sum, n, c.placeBlob(p, sum)
}

// placeBlob renames the verified file p to the blob for sum, read-only.
func (c *Catalog) placeBlob(p, sum string) error {
	dst := c.BlobPath(sum)
	if _, err := os.Stat(dst); err == nil {
		return os.Remove(p)
	}
	if err := os.Chmod(p, 0o444); err != nil {
		return err
	}
	return os.Rename(p, dst)
}

func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

func copyFile(dst, src string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

// removeWorkDir removes a work directory, first making sure nothing is
// mounted below it: a chroot's bind-mounted /dev must never be walked by
// RemoveAll. mmdebstrap runs in its own mount namespace, so this is a
// second line of defence.
func removeWorkDir(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	for _, m := range mounts { // deepest first
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("%s is still mounted (%v): not removing %s", m, err, dir)
		}
	}
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == abs || strings.HasPrefix(mp, abs+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
