package catalog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/machine/guestagent"
)

// Fakes for every external program, so the catalog's logic (versions,
// locking, cleanup, rootfs configuration) is tested in milliseconds.

type fakeBootstrap struct {
	mu      sync.Mutex
	calls   int
	err     error
	started chan struct{} // closed on the first call, if set
	block   bool          // wait for ctx to end
	spec    BootstrapSpec
}

func (f *fakeBootstrap) Bootstrap(ctx context.Context, s BootstrapSpec) error {
	f.mu.Lock()
	f.calls++
	f.spec = s
	if f.started != nil && f.calls == 1 {
		close(f.started)
	}
	f.mu.Unlock()
	if f.block {
		<-ctx.Done()
		return ctx.Err()
	}
	if f.err != nil {
		return f.err
	}
	for _, e := range s.EarlyFiles {
		if _, err := os.Stat(e.Src); err != nil {
			return fmt.Errorf("early file: %w", err)
		}
	}
	files := map[string]string{
		"boot/vmlinuz-6.1.0-1-cloud-amd64":            "KERNEL",
		"boot/initrd.img-6.1.0-1-cloud-amd64":         "INITRD",
		"lib/systemd/system/systemd-networkd.service": "[Unit]\nDescription=n\n\n[Install]\nWantedBy=multi-user.target\nAlso=systemd-networkd.socket\nAlias=dbus-org.freedesktop.network1.service\n",
		"lib/systemd/system/systemd-networkd.socket":  "[Install]\nWantedBy=sockets.target\n",
		"lib/systemd/system/systemd-resolved.service": "[Install]\nWantedBy=sysinit.target\nAlias=dbus-org.freedesktop.resolve1.service\n",
		"etc/resolv.conf":                             "nameserver 10.0.2.3\n",
		"etc/ssh/ssh_host_ed25519_key":                "SECRET",
		"etc/ssh/ssh_host_ed25519_key.pub":            "PUBLIC",
		"etc/hostname":                                "buildhost\n",
		"var/lib/dpkg/status":                         "",
	}
	for p, data := range files {
		full := filepath.Join(s.Target, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			return err
		}
	}
	if err := os.Symlink("boot/vmlinuz-6.1.0-1-cloud-amd64", filepath.Join(s.Target, "vmlinuz")); err != nil {
		return err
	}
	return os.Symlink("/boot/initrd.img-6.1.0-1-cloud-amd64", filepath.Join(s.Target, "initrd.img"))
}

func (f *fakeBootstrap) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

type fakePackages struct{}

func (fakePackages) ListPackages(context.Context, string) ([]Package, error) {
	return []Package{{"linux-image-cloud-amd64", "6.1.0-1"}, {"openssh-server", "1:9.2"}}, nil
}

// fakeImages "converts" by copying and reports a file's size as its
// virtual size.
type fakeImages struct{}

func (fakeImages) Convert(_ context.Context, src, _, dst string, _ disk.ConvertOptions) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func (fakeImages) Info(_ context.Context, p, format string) (disk.ImageInfo, error) {
	st, err := os.Stat(p)
	if err != nil {
		return disk.ImageInfo{}, err
	}
	return disk.ImageInfo{Filename: p, Format: format, VirtualSize: st.Size()}, nil
}

// fakePartitioner writes just enough of a GPT disk for the MBR patcher.
type fakePartitioner struct{}

func (fakePartitioner) PartitionGPT(_ context.Context, p string, parts []disk.Partition) ([]disk.Partition, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, _ := f.Stat()
	f.WriteAt([]byte{0x55, 0xaa}, 510)
	f.WriteAt([]byte("EFI PART"), 512)
	out := append([]disk.Partition(nil), parts...)
	out[1].Size = st.Size() - out[1].Start - 34*512
	return out, nil
}

// fakeFS records the root tree it was asked to format, for inspection.
type fakeFS struct {
	check func(spec disk.Ext4Spec) error
}

func (f fakeFS) MakeExt4(_ context.Context, s disk.Ext4Spec) error {
	if f.check != nil {
		return f.check(s)
	}
	return nil
}

type fakeCore struct{}

func (fakeCore) MakeCoreImage(context.Context, disk.CoreImageSpec) ([]byte, error) {
	c := make([]byte, 4*512)
	binary.LittleEndian.PutUint64(c[0x1f4:], 2)
	binary.LittleEndian.PutUint16(c[0x1fc:], 3)
	binary.LittleEndian.PutUint16(c[0x1fe:], 0x820)
	return c, nil
}

// fakeGrubDir holds a boot.img stand-in and one module.
func fakeGrubDir(t *testing.T) string {
	d := t.TempDir()
	b := make([]byte, 512)
	b[0x64], b[0x66], b[0x67] = 0xff, 0xeb, 0x05
	os.WriteFile(filepath.Join(d, "boot.img"), b, 0o644)
	os.WriteFile(filepath.Join(d, "normal.mod"), []byte("MOD"), 0o644)
	return d
}

var testDay = time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)

type fakes struct {
	boot *fakeBootstrap
	fs   fakeFS
}

// newTestCatalog opens a catalog in dir with every program faked.
func newTestCatalog(t *testing.T, dir string, f *fakes, opts ...Option) *Catalog {
	t.Helper()
	opts = append([]Option{WithClock(func() time.Time { return testDay }), WithDiskSize(80 << 20)}, opts...)
	c, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	c.grubDir = fakeGrubDir(t)
	c.tools = tools{
		bootstrap: f.boot,
		packages:  fakePackages{},
		images:    fakeImages{},
		disk:      disk.BIOSDiskTools{Partitioner: fakePartitioner{}, Filesystem: f.fs, CoreImage: fakeCore{}},
	}
	return c
}

func assertNoWork(t *testing.T, c *Catalog) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(c.Dir(), "tmp", "*"))
	if len(left) > 0 {
		t.Errorf("work files left behind: %v", left)
	}
}

func TestEnsureBuildsOnce(t *testing.T) {
	dir := t.TempDir()
	f := &fakes{boot: &fakeBootstrap{}}
	c1 := newTestCatalog(t, dir, f)
	c2 := newTestCatalog(t, dir, f) // another handle on the same directory, as another process would have
	ctx := context.Background()

	var wg sync.WaitGroup
	urns := make([]string, 6)
	errs := make([]error, 6)
	for i := range urns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := c1
			if i%2 == 1 {
				c = c2
			}
			e, err := c.Ensure(ctx, "Debian:debian-12:12")
			urns[i], errs[i] = e.URN, err
		}()
	}
	wg.Wait()
	for i := range urns {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if urns[i] != "Debian:debian-12:12:12.20260315.0" {
			t.Errorf("caller %d got %q", i, urns[i])
		}
	}
	if n := f.boot.Calls(); n != 1 {
		t.Errorf("built %d times, want once", n)
	}
	assertNoWork(t, c1)

	// Build makes a new version of the day; latest follows it.
	e, err := c1.Build(ctx, "Debian:debian-12:12")
	if err != nil {
		t.Fatal(err)
	}
	if e.Version != "12.20260315.1" {
		t.Errorf("second build of the day: %s", e.Version)
	}
	for _, q := range []string{"Debian:debian-12:12", "debian:DEBIAN-12:12:latest"} {
		r, err := c2.Resolve(ctx, q)
		if err != nil || r.Version != "12.20260315.1" || r.SubstituteFor != "" {
			t.Errorf("Resolve(%s) = %s, %v", q, r.URN, err)
		}
	}
	old, err := c2.Resolve(ctx, "Debian:debian-12:12:12.20260315.0")
	if err != nil || old.URN != "Debian:debian-12:12:12.20260315.0" {
		t.Errorf("exact version: %s, %v", old.URN, err)
	}
	if _, err := c2.Resolve(ctx, "Debian:debian-12:12:12.19990101.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing version: %v", err)
	}
	if n := f.boot.Calls(); n != 2 {
		t.Errorf("bootstrap ran %d times, want 2", n)
	}
	list, err := c1.List()
	if err != nil || len(list) != 2 || list[0].Version != "12.20260315.0" {
		t.Errorf("List: %+v, %v", list, err)
	}

	// The entry and its blobs.
	if e.KernelPath == "" || e.OSType != "Linux" || e.HyperVGeneration != "V1" || len(e.Packages) != 2 {
		t.Errorf("entry %+v", e)
	}
	if b, _ := os.ReadFile(e.KernelPath); string(b) != "KERNEL" {
		t.Errorf("kernel blob %q", b)
	}
	if b, _ := os.ReadFile(e.InitrdPath); string(b) != "INITRD" {
		t.Errorf("initrd blob %q", b)
	}
	if sum, _, _ := disk.SHA256File(ctx, e.DiskPath); sum != e.DiskSHA256 || filepath.Base(e.DiskPath) != sum {
		t.Errorf("disk blob %s is not content-addressed (%s)", e.DiskPath, sum)
	}
	if st, _ := os.Stat(e.DiskPath); st.Mode().Perm()&0o222 != 0 {
		t.Errorf("disk blob is writable: %v", st.Mode())
	}

	// A changed recipe is not satisfied by the cached image.
	b := DefaultBuiltins()
	b[0].Packages = append(b[0].Packages, "vim-tiny")
	c3 := newTestCatalog(t, dir, f, WithBuiltins(b...))
	e3, err := c3.Ensure(ctx, "Debian:debian-12:12")
	if err != nil || e3.Version != "12.20260315.2" || f.boot.Calls() != 3 {
		t.Errorf("after recipe change: %s, %v, %d builds", e3.URN, err, f.boot.Calls())
	}
	if _, err := c1.Ensure(ctx, "Canonical:UbuntuServer:18.04-LTS"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Ensure of a non-built-in: %v", err)
	}

	// Remove drops the entry and the blobs only it used.
	if err := c1.Remove(ctx, e3.URN); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{e3.DiskPath, e3.KernelPath, e3.InitrdPath} {
		_, err := os.Stat(p)
		shared := p == e.DiskPath || p == e.KernelPath || p == e.InitrdPath // the fakes make identical files
		if shared != (err == nil) {
			t.Errorf("%s: exists=%v, shared=%v", p, err == nil, shared)
		}
	}
	if err := c1.Remove(ctx, e3.URN); !errors.Is(err, ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	if err := c1.Remove(ctx, "Debian:debian-12:12"); err == nil {
		t.Error("remove without a version accepted")
	}
}

// TestBuildConfiguresRootfs looks at the tree as mke2fs would get it.
func TestBuildConfiguresRootfs(t *testing.T) {
	var checked bool
	f := &fakes{boot: &fakeBootstrap{}}
	f.fs.check = func(s disk.Ext4Spec) error {
		checked = true
		root := s.RootDir
		read := func(p string) string { b, _ := os.ReadFile(filepath.Join(root, p)); return string(b) }
		link := func(p string) string { l, _ := os.Readlink(filepath.Join(root, p)); return l }
		if !strings.Contains(read("etc/fstab"), "UUID="+s.UUID+"\t/\text4") {
			t.Errorf("fstab: %q (fs UUID %s)", read("etc/fstab"), s.UUID)
		}
		if read("etc/hostname") != "debian\n" {
			t.Errorf("hostname %q", read("etc/hostname"))
		}
		if !strings.Contains(read("etc/systemd/network/90-goldsmith-dhcp.network"), "Name=en* eth*") {
			t.Error("no DHCP network config")
		}
		for _, g := range guestagent.Files() {
			st, err := os.Stat(filepath.Join(root, g.Path))
			if err != nil || st.Mode().Perm() != g.Mode {
				t.Errorf("agent file %s: %v %v", g.Path, st, err)
			}
		}
		wants := map[string]string{
			"etc/systemd/system/multi-user.target.wants/" + guestagent.UnitName:   "/etc/systemd/system/" + guestagent.UnitName,
			"etc/systemd/system/multi-user.target.wants/systemd-networkd.service": "/lib/systemd/system/systemd-networkd.service",
			"etc/systemd/system/sockets.target.wants/systemd-networkd.socket":     "/lib/systemd/system/systemd-networkd.socket",
			"etc/systemd/system/dbus-org.freedesktop.network1.service":            "/lib/systemd/system/systemd-networkd.service",
			"etc/systemd/system/sysinit.target.wants/systemd-resolved.service":    "/lib/systemd/system/systemd-resolved.service",
			"etc/resolv.conf": "../run/systemd/resolve/stub-resolv.conf",
		}
		for p, want := range wants {
			if got := link(p); got != want {
				t.Errorf("%s → %q, want %q", p, got, want)
			}
		}
		if keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*")); len(keys) > 0 {
			t.Errorf("host keys left: %v", keys)
		}
		if mid, err := os.ReadFile(filepath.Join(root, "etc/machine-id")); err != nil || len(mid) != 0 {
			t.Errorf("machine-id %q, %v", mid, err)
		}
		cfg := read("boot/grub/grub.cfg")
		if !strings.Contains(cfg, "linux /vmlinuz root=UUID="+s.UUID) || !strings.Contains(cfg, "console=ttyS0,115200") {
			t.Errorf("grub.cfg:\n%s", cfg)
		}
		if read("boot/grub/i386-pc/normal.mod") != "MOD" {
			t.Error("GRUB modules not copied")
		}
		return nil
	}
	c := newTestCatalog(t, t.TempDir(), f)
	e, err := c.Ensure(context.Background(), "Debian:debian-11:11")
	if err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Fatal("mke2fs never called")
	}
	if !strings.HasPrefix(e.Version, "11.20260315.") || !strings.Contains(e.Cmdline, "root=UUID=") {
		t.Errorf("entry %+v", e)
	}
	s := f.boot.spec
	if s.Suite != "bullseye" || s.Variant != "minbase" || len(s.Sources) != 3 || !strings.Contains(s.Sources[2], "bullseye-security") {
		t.Errorf("bootstrap spec %+v", s)
	}
	if !strings.Contains(strings.Join(s.AptOptions, " "), `Check-Valid-Until "false"`) {
		t.Errorf("apt options %v", s.AptOptions)
	}
}

func TestBuildCleansUpOnError(t *testing.T) {
	f := &fakes{boot: &fakeBootstrap{err: errors.New("mirror unreachable")}}
	c := newTestCatalog(t, t.TempDir(), f)
	_, err := c.Ensure(context.Background(), "Debian:debian-12:12")
	if err == nil || !strings.Contains(err.Error(), "build Debian:debian-12:12") || !strings.Contains(err.Error(), "mirror unreachable") {
		t.Fatalf("err = %v", err)
	}
	assertNoWork(t, c)
	if l, _ := c.List(); len(l) != 0 {
		t.Errorf("index has %d entries after a failed build", len(l))
	}

	// A failure after the disk was written leaves nothing either.
	f = &fakes{boot: &fakeBootstrap{}, fs: fakeFS{check: func(disk.Ext4Spec) error { return errors.New("no space") }}}
	c = newTestCatalog(t, t.TempDir(), f)
	if _, err := c.Ensure(context.Background(), "Debian:debian-12:12"); err == nil {
		t.Fatal("no error")
	}
	assertNoWork(t, c)
	blobs, _ := filepath.Glob(filepath.Join(c.Dir(), "blobs", "sha256", "*"))
	if len(blobs) != 0 {
		t.Errorf("blobs after failure: %v", blobs)
	}
}

func TestBuildCleansUpOnCancel(t *testing.T) {
	started := make(chan struct{})
	f := &fakes{boot: &fakeBootstrap{block: true, started: started}}
	c := newTestCatalog(t, t.TempDir(), f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Ensure(ctx, "Debian:debian-12:12"); done <- err }()
	<-started
	work, _ := filepath.Glob(filepath.Join(c.Dir(), "tmp", "*"))
	if len(work) == 0 {
		t.Error("no work directory while building")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	assertNoWork(t, c)

	// A waiter for the build lock gives up with its context too.
	f2 := &fakes{boot: &fakeBootstrap{block: true, started: make(chan struct{})}}
	c2 := newTestCatalog(t, t.TempDir(), f2)
	bctx, bcancel := context.WithCancel(context.Background())
	defer bcancel()
	go c2.Ensure(bctx, "Debian:debian-12:12")
	<-f2.boot.started
	wctx, wcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer wcancel()
	if _, err := c2.Ensure(wctx, "Debian:debian-12:12"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiter: %v", err)
	}
}

func TestAliasResolve(t *testing.T) {
	ctx := context.Background()
	f := &fakes{boot: &fakeBootstrap{}}
	c := newTestCatalog(t, t.TempDir(), f)
	img := writeTestImage(t, 3<<20)
	for _, v := range []string{"1.0.0", "1.0.1"} {
		if _, err := c.Import(ctx, ImportRequest{URN: "Local:golden:base:" + v, Source: img.path, SHA256: img.sum}); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Alias(ctx, "Canonical:UbuntuServer:18.04-LTS", "Local:golden:base"))
	must(c.Alias(ctx, "Canonical:UbuntuServer:18.04-LTS:18.04.1", "Local:golden:base:1.0.0"))
	must(c.Alias(ctx, "RedHat:RHEL:8", "Canonical:UbuntuServer:18.04-LTS")) // chain
	must(c.Alias(ctx, "OpenLogic:CentOS:7.5", "Debian:debian-12:12"))       // to a built-in

	tests := []struct {
		urn, wantURN, wantSubst string
		wantErr                 error
	}{
		{"Canonical:UbuntuServer:18.04-LTS:latest", "Local:golden:base:1.0.1", "Canonical:UbuntuServer:18.04-LTS:latest", nil},
		{"canonical:ubuntuserver:18.04-lts", "Local:golden:base:1.0.1", "canonical:ubuntuserver:18.04-lts", nil},
		{"Canonical:UbuntuServer:18.04-LTS:18.04.1", "Local:golden:base:1.0.0", "Canonical:UbuntuServer:18.04-LTS:18.04.1", nil},
		{"Canonical:UbuntuServer:18.04-LTS:18.04.9", "Local:golden:base:1.0.1", "Canonical:UbuntuServer:18.04-LTS:18.04.9", nil}, // versionless alias covers it
		{"RedHat:RHEL:8:latest", "Local:golden:base:1.0.1", "RedHat:RHEL:8:latest", nil},
		{"OpenLogic:CentOS:7.5:latest", "Debian:debian-12:12:12.20260315.0", "OpenLogic:CentOS:7.5:latest", nil},
		{"Local:golden:base:latest", "Local:golden:base:1.0.1", "", nil},
		{"Local:golden:base:1.0.0", "Local:golden:base:1.0.0", "", nil},
		{"Canonical:UbuntuServer:20.04-LTS:latest", "", "", ErrNotFound},
	}
	for _, tc := range tests {
		e, err := c.Resolve(ctx, tc.urn)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Resolve(%s): err %v, want %v", tc.urn, err, tc.wantErr)
			}
			continue
		}
		if err != nil || e.URN != tc.wantURN || e.SubstituteFor != tc.wantSubst {
			t.Errorf("Resolve(%s) = %s (substitute for %q), %v; want %s for %q", tc.urn, e.URN, e.SubstituteFor, err, tc.wantURN, tc.wantSubst)
		}
	}

	// Refused: a loop, a missing target, an alias of itself.
	if err := c.Alias(ctx, "Local:golden:base", "RedHat:RHEL:8"); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Errorf("loop accepted: %v", err)
	}
	if err := c.Alias(ctx, "A:B:C", "Nobody:nothing:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing target: %v", err)
	}
	if err := c.Alias(ctx, "A:B:C", "Debian:debian-12:12:12.19990101.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing version of a built-in: %v", err)
	}
	if err := c.Alias(ctx, "Local:golden:base:2", "Local:golden:base:1.0.0"); err == nil {
		t.Error("self alias accepted")
	}
	if e, err := c.Resolve(ctx, "Local:golden:base"); err != nil || e.SubstituteFor != "" {
		t.Errorf("after refused loop: %+v %v", e, err)
	}
	// Replacing and removing.
	must(c.Alias(ctx, "Canonical:UbuntuServer:18.04-LTS", "Local:golden:base:1.0.0"))
	if e, _ := c.Resolve(ctx, "Canonical:UbuntuServer:18.04-LTS"); e.URN != "Local:golden:base:1.0.0" {
		t.Errorf("replaced alias resolves to %s", e.URN)
	}
	must(c.RemoveAlias(ctx, "OpenLogic:CentOS:7.5"))
	if _, err := c.Resolve(ctx, "OpenLogic:CentOS:7.5"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed alias: %v", err)
	}
	al, _ := c.Aliases()
	if len(al) != 3 {
		t.Errorf("aliases %v", al)
	}
}
