package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/goldsmith-dev/goldsmith/machine/guestagent"
)

// Builtin is a recipe for a platform image goldsmith builds itself.
type Builtin struct {
	Name                  string // short name, used in file names: debian-12
	Publisher, Offer, SKU string // Debian, debian-12, 12
	Major                 string // first part of the versions: 12 → 12.YYYYMMDD.N
	Title                 string // boot menu title
	Suite                 string // bookworm
	Mirror                string // Debian archive, e.g. http://deb.debian.org/debian
	SecurityMirror        string // e.g. http://deb.debian.org/debian-security ("" for none)
	Components            []string
	Packages              []string
	Hostname              string
	// MergedUsr makes /bin, /lib, /sbin links into /usr with mmdebstrap's
	// merged-usr hook. It needs the usr-is-merged package (bookworm on).
	MergedUsr bool
}

// hookDirs are the mmdebstrap hook directories of the recipe.
func (b Builtin) hookDirs() []string {
	var d []string
	if b.MergedUsr {
		d = append(d, "/usr/share/mmdebstrap/hooks/merged-usr")
	}
	// eatmydata: dpkg without fsync, 76 → 45 s here.
	return append(d, "/usr/share/mmdebstrap/hooks/eatmydata")
}

// URN is the image's URN without a version.
func (b Builtin) URN() string { return b.urn().String() }

func (b Builtin) urn() URN { return URN{Publisher: b.Publisher, Offer: b.Offer, SKU: b.SKU} }

// Sources are the apt source lines of the image: the release, its updates
// and its security suite, as Debian's cloud images have.
func (b Builtin) Sources() []string {
	comps := "main"
	if len(b.Components) > 0 {
		comps = strings.Join(b.Components, " ")
	}
	s := []string{
		fmt.Sprintf("deb %s %s %s", b.Mirror, b.Suite, comps),
		fmt.Sprintf("deb %s %s-updates %s", b.Mirror, b.Suite, comps),
	}
	if b.SecurityMirror != "" {
		s = append(s, fmt.Sprintf("deb %s %s-security %s", b.SecurityMirror, b.Suite, comps))
	}
	return s
}

// recipeRevision changes whenever the build steps in this package change
// in a way that changes the image (rootfs configuration, boot setup).
const recipeRevision = "5"

// RecipeDigest identifies what the recipe would produce: the Builtin's
// fields, the build steps' revision and the guest agent's files. A cached
// image made by another recipe is not reused by Ensure.
func (b Builtin) RecipeDigest() string {
	h := sha256.New()
	j, _ := json.Marshal(b)
	h.Write(j)
	h.Write([]byte("\x00revision " + recipeRevision + "\x00"))
	for _, f := range guestagent.Files() {
		fmt.Fprintf(h, "%s %o %d\x00", f.Path, f.Mode, len(f.Data))
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Default mirrors; the machine's Debian mirror is a snapshot proxy, whence
// the Check-Valid-Until option below.
const (
	DebianMirror         = "http://deb.debian.org/debian"
	DebianSecurityMirror = "http://deb.debian.org/debian-security"
)

// basePackages are installed on top of mmdebstrap's minbase. fdisk brings
// sfdisk, which growing the root partition in a build needs.
var basePackages = []string{
	"linux-image-cloud-amd64", "systemd-sysv", "udev", "dbus", "openssh-server",
	"sudo", "iproute2", "grub-pc-bin", "e2fsprogs", "fdisk", "systemd-resolved",
	"ca-certificates",
}

// DefaultBuiltins are Debian 12 (bookworm) and Debian 11 (bullseye) under
// their Azure Marketplace names.
func DefaultBuiltins() []Builtin {
	deb := func(major, suite, title string, pkgs []string, mergedUsr bool) Builtin {
		return Builtin{
			Name: "debian-" + major, Publisher: "Debian", Offer: "debian-" + major, SKU: major,
			Major: major, Title: title, Suite: suite,
			Mirror: DebianMirror, SecurityMirror: DebianSecurityMirror,
			Components: []string{"main"}, Packages: pkgs, Hostname: "debian",
			MergedUsr: mergedUsr,
		}
	}
	// bullseye has no separate systemd-resolved package: systemd carries it.
	bullseye := make([]string, 0, len(basePackages))
	for _, p := range basePackages {
		if p != "systemd-resolved" {
			bullseye = append(bullseye, p)
		}
	}
	return []Builtin{
		deb("12", "bookworm", "Debian GNU/Linux 12 (bookworm)", basePackages, true),
		// bullseye has no usr-is-merged package, so no merged-usr hook: its
		// /usr is not merged.
		deb("11", "bullseye", "Debian GNU/Linux 11 (bullseye)", bullseye, false),
	}
}
