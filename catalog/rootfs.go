package catalog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/goldsmith-dev/goldsmith/machine/guestagent"
)

// rootConfig is what configureRootfs writes into a fresh root filesystem.
type rootConfig struct {
	Hostname string
	FSUUID   string // the root filesystem's UUID, for fstab
}

// fstab mounts the root filesystem by UUID.
func fstab(fsUUID string) string {
	return "# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=" + fsUUID + "\t/\text4\tdefaults,errors=remount-ro\t0\t1\n"
}

// networkdDHCP configures every Ethernet interface by DHCP: en* for
// predictable names (virtio and Hyper-V NICs), eth* in case a kernel
// argument turns predictable names off.
const networkdDHCP = `[Match]
Name=en* eth*

[Network]
DHCP=yes

[DHCPv4]
UseDomains=true
`

// configureRootfs turns mmdebstrap's tree into a bootable, generalized
// image: identity files, network by DHCP through systemd-networkd and
// systemd-resolved, the goldsmith guest agent enabled, and no host-specific
// secrets (SSH host keys, machine id). It never runs anything inside the
// tree: units are enabled by writing the symlinks systemctl would.
func configureRootfs(root string, cfg rootConfig) error {
	files := []struct {
		path string
		mode os.FileMode
		data string
	}{
		{"/etc/hostname", 0o644, cfg.Hostname + "\n"},
		{"/etc/hosts", 0o644, fmt.Sprintf("127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n", cfg.Hostname)},
		{"/etc/fstab", 0o644, fstab(cfg.FSUUID)},
		{"/etc/systemd/network/90-goldsmith-dhcp.network", 0o644, networkdDHCP},
		// Empty, as in Debian's cloud images: systemd makes a new id at
		// boot, so no two VMs of the image share one.
		{"/etc/machine-id", 0o444, ""},
	}
	for _, f := range files {
		if err := writeInRoot(root, f.path, []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	for _, f := range guestagent.Files() {
		if err := writeInRoot(root, f.Path, f.Data, f.Mode); err != nil {
			return err
		}
	}
	// Host keys made when openssh-server was installed would be shared by
	// every VM: the guest agent regenerates missing ones at boot.
	keys, _ := filepath.Glob(filepath.Join(root, "etc", "ssh", "ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(root, "var", "lib", "dbus", "machine-id")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := useResolved(root); err != nil {
		return err
	}
	for _, u := range []string{"systemd-networkd.service", guestagent.UnitName} {
		if err := enableUnit(root, u); err != nil {
			return err
		}
	}
	return nil
}

// useResolved enables systemd-resolved and points /etc/resolv.conf at its
// stub, unless the package already did (bookworm's systemd-resolved does;
// bullseye's systemd ships it disabled).
func useResolved(root string) error {
	const stub = "../run/systemd/resolve/stub-resolv.conf"
	rc := filepath.Join(root, "etc", "resolv.conf")
	if target, err := os.Readlink(rc); err == nil && strings.Contains(target, "systemd/resolve") {
		return nil
	}
	if err := enableUnit(root, "systemd-resolved.service"); err != nil {
		return err
	}
	if err := os.Remove(rc); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Symlink(stub, rc)
}

// writeInRoot writes a file at the guest path p inside root.
func writeInRoot(root, p string, data []byte, mode os.FileMode) error {
	dst := filepath.Join(root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	os.Remove(dst) // replace symlinks rather than write through them
	if err := os.WriteFile(dst, data, mode); err != nil {
		return err
	}
	return os.Chmod(dst, mode) // WriteFile's mode is filtered by the umask
}

// unitDirs are where systemd looks for unit files, most specific first.
var unitDirs = []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// enableUnit does what `systemctl enable` does, without running anything
// in the tree: it reads the unit's [Install] section and creates the
// .wants/.requires and alias symlinks under /etc/systemd/system, then
// enables the units named by Also=.
func enableUnit(root, name string) error {
	return enableUnitDepth(root, name, 0)
}

func enableUnitDepth(root, name string, depth int) error {
	if depth > 8 {
		return fmt.Errorf("enable %s: Also= chain too deep", name)
	}
	guestPath, inst, err := readInstall(root, name)
	if err != nil {
		return fmt.Errorf("enable %s: %w", name, err)
	}
	link := func(dir, linkName string) error {
		p := filepath.Join(root, "etc", "systemd", "system", dir, linkName)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if cur, err := os.Readlink(p); err == nil && cur == guestPath {
			return nil
		}
		os.Remove(p)
		return os.Symlink(guestPath, p)
	}
	for _, t := range inst["WantedBy"] {
		if err := link(t+".wants", name); err != nil {
			return err
		}
	}
	for _, t := range inst["RequiredBy"] {
		if err := link(t+".requires", name); err != nil {
			return err
		}
	}
	for _, a := range inst["Alias"] {
		if err := link("", a); err != nil {
			return err
		}
	}
	for _, also := range inst["Also"] {
		if err := enableUnitDepth(root, also, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// readInstall finds a unit file and returns its guest path and [Install]
// keys (space-separated values split, repeated keys merged).
func readInstall(root, name string) (string, map[string][]string, error) {
	for _, d := range unitDirs {
		gp := path.Join(d, name)
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(gp)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return gp, parseInstall(b), nil
	}
	return "", nil, fmt.Errorf("unit file not found under %s", strings.Join(unitDirs, ", "))
}

func parseInstall(b []byte) map[string][]string {
	out := map[string][]string{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			in = line == "[Install]"
			continue
		}
		if !in {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = append(out[strings.TrimSpace(k)], strings.Fields(v)...)
	}
	return out
}

// resolveInRoot follows symlinks of the guest path p within root (absolute
// targets are taken relative to root) and returns the host path of the
// final file.
func resolveInRoot(root, p string) (string, error) {
	cur := path.Clean("/" + p)
	for i := 0; i < 40; i++ {
		host := filepath.Join(root, filepath.FromSlash(cur))
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return host, nil
		}
		t, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if path.IsAbs(t) {
			cur = path.Clean(t)
		} else {
			cur = path.Join(path.Dir(cur), t)
		}
	}
	return "", fmt.Errorf("%s: too many symlinks", p)
}
