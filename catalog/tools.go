package catalog

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/internal/shellquote"
)

// The external programs the catalog drives, one small interface per
// concern, so each build step reads as a typed call and tests can fake them.

// Bootstrapper makes a Debian root filesystem in a directory (mmdebstrap).
type Bootstrapper interface {
	Bootstrap(ctx context.Context, spec BootstrapSpec) error
}

// BootstrapSpec describes one root filesystem.
type BootstrapSpec struct {
	Suite      string   // bookworm
	Variant    string   // minbase
	Sources    []string // one-line apt sources: "deb URL SUITE COMPONENTS"
	Packages   []string // installed on top of the variant
	AptOptions []string // e.g. `Acquire::Check-Valid-Until "false"` (kept in the image)
	HookDirs   []string // mmdebstrap hook directories
	DebCache   string   // directory of .deb files shared between builds ("" for none)
	Target     string   // directory to create
	// EarlyFiles are copied into the tree after the essential packages and
	// before the others, so that the other packages' maintainer scripts
	// (the kernel's initramfs build) see them.
	EarlyFiles []EarlyFile
}

// EarlyFile is a host file copied to a guest path during bootstrap.
type EarlyFile struct{ Src, Dst string }

// PackageLister lists the packages installed in a root filesystem.
type PackageLister interface {
	ListPackages(ctx context.Context, rootDir string) ([]Package, error)
}

// imageConverter is the part of qemu-img the catalog uses (disk.QemuImg).
type imageConverter interface {
	Convert(ctx context.Context, src, srcFormat, dst string, opt disk.ConvertOptions) error
	Info(ctx context.Context, path, format string) (disk.ImageInfo, error)
}

// tools bundles the programs a Catalog uses.
type tools struct {
	bootstrap Bootstrapper
	packages  PackageLister
	images    imageConverter
	disk      disk.BIOSDiskTools
}

func realTools(r disk.Runner) tools {
	return tools{
		bootstrap: Mmdebstrap{Run: r},
		packages:  DpkgQuery{Run: r},
		images:    disk.QemuImg{Run: r},
		disk:      disk.NewBIOSDiskTools(r),
	}
}

// Mmdebstrap is the Bootstrapper that runs mmdebstrap as root, in a private
// mount namespace so its /proc, /sys and /dev mounts in the chroot vanish
// with it even if it is killed.
type Mmdebstrap struct {
	Run disk.Runner
}

// Bootstrap implements Bootstrapper.
//
// The .deb cache: a setup hook hard-links (or copies, across filesystems)
// the cached debs into the chroot's /var/cache/apt/archives before apt
// downloads anything, so apt finds them there and fetches only what is
// missing; --skip=essential/unlink keeps the essential debs there until a
// customize hook links every deb back into the cache.
func (m Mmdebstrap) Bootstrap(ctx context.Context, s BootstrapSpec) error {
	args := []string{"--mode=root", "--format=directory"}
	if s.Variant != "" {
		args = append(args, "--variant="+s.Variant)
	}
	for _, o := range s.AptOptions {
		args = append(args, "--aptopt="+o)
	}
	for _, d := range s.HookDirs {
		args = append(args, "--hook-dir="+d)
	}
	if s.DebCache != "" {
		cache := shellquote.Quote(s.DebCache)
		args = append(args,
			"--skip=essential/unlink",
			`--setup-hook=mkdir -p "$1/var/cache/apt/archives" && `+linkDebs(cache, `"$1/var/cache/apt/archives"`),
			`--customize-hook=`+linkDebs(`"$1/var/cache/apt/archives"`, cache),
		)
	}
	for _, f := range s.EarlyFiles {
		args = append(args,
			`--essential-hook=mkdir -p "$1"`+shellquote.Quote(path.Dir(f.Dst)),
			"--essential-hook=upload "+shellquote.Quote(f.Src)+" "+shellquote.Quote(f.Dst))
	}
	if len(s.Packages) > 0 {
		args = append(args, "--include="+strings.Join(s.Packages, ","))
	}
	args = append(args, s.Suite, s.Target)
	args = append(args, s.Sources...)
	_, err := m.Run.Run(ctx, disk.Cmd{Name: "mmdebstrap", Args: args, PrivateMounts: true, LogStderr: true})
	return err
}

// linkDebs is a shell command that hard-links every .deb in from into to,
// copying instead when they are on different filesystems. Both arguments
// are already quoted for the shell.
func linkDebs(from, to string) string {
	find := fmt.Sprintf(`find %s -maxdepth 1 -name '*.deb' -exec`, from)
	return fmt.Sprintf(`{ %s ln -f -t %s {} + 2>/dev/null || %s cp -f -t %s {} +; }`, find, to, find, to)
}

// DpkgQuery lists packages with the host's dpkg-query pointed at the root
// filesystem's database: no chroot needed.
type DpkgQuery struct {
	Run disk.Runner
}

// ListPackages implements PackageLister.
func (d DpkgQuery) ListPackages(ctx context.Context, rootDir string) ([]Package, error) {
	out, err := d.Run.Run(ctx, disk.Cmd{Name: "dpkg-query", Args: []string{
		"--admindir=" + filepath.Join(rootDir, "var", "lib", "dpkg"),
		"-W", "-f", `${db:Status-Abbrev}\t${Package}\t${Version}\n`,
	}})
	if err != nil {
		return nil, err
	}
	return parsePackages(out), nil
}

// parsePackages reads "status\tname\tversion" lines, keeping installed ones.
func parsePackages(b []byte) []Package {
	var pkgs []Package
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 || !strings.HasPrefix(f[0], "ii") {
			continue
		}
		pkgs = append(pkgs, Package{Name: f[1], Version: f[2]})
	}
	return pkgs
}
