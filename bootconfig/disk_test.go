package bootconfig

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/disk"
)

const testFSUUID = "5d1f2c3b-8e4a-4b6c-9d7e-0f1a2b3c4d5e"

// testDisk is a GPT + ext4 disk made by package disk (mke2fs -d, GRUB's
// core.img) from a tree with a kernel, a sparse many-extent initrd, a
// directory of many entries (hash-indexed by e2fsck -D) and symlinks.
type testDisk struct {
	raw    string
	tree   string
	root   disk.Partition
	kernel []byte
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	if _, err := os.Stat(filepath.Join(disk.DefaultGrubModuleDir, "boot.img")); err != nil {
		t.Skip("GRUB's i386-pc files not installed")
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func fakeKernel(t *testing.T, size int) []byte {
	k := randomBytes(t, size)
	copy(k[0x202:], "HdrS")
	return k
}

func makeTestDisk(t *testing.T) testDisk {
	t.Helper()
	needTools(t, "sfdisk", "mke2fs", "e2fsck", "grub-mkimage")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	kernel := fakeKernel(t, 3<<20+123)
	writeFile(t, filepath.Join(tree, "boot/vmlinuz-6.1.0-9-cloud-amd64"), kernel)
	// The initrd: 12 data runs separated by holes, so more extents than
	// fit in the inode (an extent tree of depth 1).
	f, err := os.Create(filepath.Join(tree, "boot/initrd.img-6.1.0-9-cloud-amd64"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 12; i++ {
		if _, err := f.WriteAt(randomBytes(t, 100<<10+i), int64(i)*(512<<10)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	for _, l := range []struct{ target, name string }{
		{"boot/vmlinuz-6.1.0-9-cloud-amd64", "vmlinuz"},
		{"boot/initrd.img-6.1.0-9-cloud-amd64", "initrd.img"},
		// Longer than 60 bytes: stored in a data block, not in the inode.
		{"../boot/" + strings.Repeat("x", 70) + "/../vmlinuz-6.1.0-9-cloud-amd64", "boot/long-link"},
	} {
		if err := os.Symlink(l.target, filepath.Join(tree, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(tree, "boot", strings.Repeat("x", 70)), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 600; i++ {
		writeFile(t, filepath.Join(tree, "many", fmt.Sprintf("entry-with-a-longish-name-%05d", i)), []byte(fmt.Sprintf("file %d\n", i)))
	}
	cfg, err := disk.GrubConfig{Title: "Debian GNU/Linux 12 (bookworm)", Kernel: "/vmlinuz", Initrd: "/initrd.img",
		Cmdline: "root=UUID=" + testFSUUID + " ro console=ttyS0,115200", TimeoutSeconds: 1}.Render(testFSUUID)
	if err != nil {
		t.Fatal(err)
	}
	if err := disk.InstallGrubFiles(tree, "", cfg); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "disk.raw")
	d, err := disk.MakeBIOSDisk(context.Background(), disk.NewBIOSDiskTools(disk.Exec{}), disk.BIOSDiskSpec{
		Path: raw, Size: 256 << 20, RootDir: tree, RootFSUUID: testFSUUID, RootLabel: "root",
	})
	if err != nil {
		t.Fatal(err)
	}
	// Index the big directory as the kernel would have (htree).
	out, err := exec.Command("e2fsck", "-fyD", fmt.Sprintf("%s?offset=%d", raw, d.Root.Start)).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1) {
		t.Fatalf("e2fsck -D: %v\n%s", err, out)
	}
	return testDisk{raw: raw, tree: tree, root: d.Root, kernel: kernel}
}

// checkFiles reads every file of the tree back from the image.
func checkFiles(t *testing.T, path, format string, want func(rel string) []byte) {
	t.Helper()
	img, err := openImage(path, format)
	if err != nil {
		t.Fatal(err)
	}
	defer img.close()
	parts, err := readPartitions(img.r, img.size)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[1].grubName() != "hd0,gpt2" {
		t.Fatalf("partitions %+v", parts)
	}
	vols := &diskVolumes{img: img, parts: parts, open: map[int]*ext4Volume{}, errs: map[int]error{}}
	v, _, err := vols.get("hd0,gpt2")
	if err != nil {
		t.Fatal(err)
	}
	fsys := v.(*ext4Volume).fs
	if fsys.uuid != testFSUUID || fsys.label != "root" {
		t.Errorf("uuid %s label %q", fsys.uuid, fsys.label)
	}
	many, err := fsys.lookup("/many")
	if err != nil {
		t.Fatal(err)
	}
	if many.flags&inodeFlagIndex == 0 {
		t.Error("/many is not hash-indexed: the htree case is not covered")
	}
	ents, err := fsys.readDir(many)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 602 { // with . and ..
		t.Errorf("/many has %d entries, want 602", len(ents))
	}
	for _, rel := range []string{
		"many/entry-with-a-longish-name-00000", "many/entry-with-a-longish-name-00321", "many/entry-with-a-longish-name-00599",
		"boot/vmlinuz-6.1.0-9-cloud-amd64", "boot/initrd.img-6.1.0-9-cloud-amd64", "vmlinuz", "boot/long-link",
		"boot/grub/grub.cfg", "boot/grub/i386-pc/normal.mod",
	} {
		in, err := fsys.lookup("/" + rel)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		var b bytes.Buffer
		if err := fsys.readData(in, &b); err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if !bytes.Equal(b.Bytes(), want(rel)) {
			t.Errorf("%s: %d bytes read differ from the %d written", rel, b.Len(), len(want(rel)))
		}
	}
	in, _ := fsys.lookup("/boot/initrd.img-6.1.0-9-cloud-amd64")
	if runs, _ := fsys.runs(in); len(runs) < 12 || in.block[6] == 0 && in.block[7] == 0 {
		t.Errorf("initrd: %d extents, tree depth %d: want a multi-extent file with an extent tree", len(runs), int(in.block[6])|int(in.block[7])<<8)
	}
	if _, err := fsys.lookup("/many/absent"); err == nil {
		t.Error("lookup of an absent file succeeded")
	}
}

func fromTree(tree string) func(string) []byte {
	return func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(tree, rel))
		if err != nil {
			panic(err)
		}
		return b
	}
}

func TestReadRawDisk(t *testing.T) {
	d := makeTestDisk(t)
	checkFiles(t, d.raw, "raw", fromTree(d.tree))
	out := t.TempDir()
	b, err := Read(context.Background(), d.raw, "raw", out)
	if err != nil {
		t.Fatal(err)
	}
	want := Boot{Cmdline: "BOOT_IMAGE=/vmlinuz root=UUID=" + testFSUUID + " ro console=ttyS0,115200",
		Entry: "Debian GNU/Linux 12 (bookworm)", Config: "(hd0,gpt2)/boot/grub/grub.cfg"}
	if b.Cmdline != want.Cmdline || b.Entry != want.Entry || b.Config != want.Config {
		t.Errorf("got %+v, want %+v", b, want)
	}
	assertFile(t, b.Kernel, d.kernel)
	assertFile(t, b.Initrd, fromTree(d.tree)("boot/initrd.img-6.1.0-9-cloud-amd64"))
	// Reading again reuses the extracted files.
	st1, _ := os.Stat(b.Kernel)
	b2, err := Read(context.Background(), d.raw, "raw", out)
	if err != nil || b2 != b {
		t.Fatalf("second read %+v %v", b2, err)
	}
	if st2, _ := os.Stat(b2.Kernel); !st2.ModTime().Equal(st1.ModTime()) {
		t.Error("the unchanged kernel was extracted again")
	}
	if ents, _ := os.ReadDir(out); len(ents) != 2 {
		t.Errorf("extraction dir holds %d files, want 2", len(ents))
	}
}

func assertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes differ from the %d expected", path, len(got), len(want))
	}
}

// TestReadQcow2Chain reads a qcow2 overlay over a compressed qcow2 base,
// as a build disk is: the overlay holds a new kernel and grub.cfg written
// into the filesystem after the base was made.
func TestReadQcow2Chain(t *testing.T) {
	needTools(t, "qemu-img", "debugfs")
	d := makeTestDisk(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	q := disk.QemuImg{Run: disk.Exec{}}
	if err := q.Convert(context.Background(), d.raw, "raw", base, disk.ConvertOptions{Format: disk.FormatQCOW2, Compress: true}); err != nil {
		t.Fatal(err)
	}
	if b, err := Read(context.Background(), base, "qcow2", t.TempDir()); err != nil || !strings.Contains(b.Cmdline, "BOOT_IMAGE=/vmlinuz ") {
		t.Fatalf("compressed base: %+v %v", b, err)
	}
	// A customizer's changes: a new kernel and a grub.cfg naming it.
	newKernel := fakeKernel(t, 2<<20+7)
	kpath := filepath.Join(dir, "new-kernel")
	writeFile(t, kpath, newKernel)
	cfg := strings.Replace(string(fromTree(d.tree)("boot/grub/grub.cfg")), "linux /vmlinuz", "linux /boot/vmlinuz-6.2 marker=1", 1)
	cpath := filepath.Join(dir, "grub.cfg")
	writeFile(t, cpath, []byte(cfg))
	fsArg := fmt.Sprintf("%s?offset=%d", d.raw, d.root.Start)
	for _, c := range []string{"rm /boot/grub/grub.cfg", "write " + cpath + " /boot/grub/grub.cfg", "write " + kpath + " /boot/vmlinuz-6.2"} {
		if out, err := exec.Command("debugfs", "-w", "-R", c, fsArg).CombinedOutput(); err != nil {
			t.Fatalf("debugfs %s: %v\n%s", c, err, out)
		}
	}
	// The overlay holds only the clusters that differ from the base.
	overlay := filepath.Join(dir, "overlay.qcow2")
	if out, err := exec.Command("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", "-B", base, "-F", "qcow2", d.raw, overlay).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert -B: %v\n%s", err, out)
	}
	if st, _ := os.Stat(overlay); st.Size() > 32<<20 {
		t.Fatalf("overlay is %d bytes: not a thin overlay", st.Size())
	}
	checkFiles(t, overlay, "qcow2", func(rel string) []byte {
		if rel == "boot/grub/grub.cfg" {
			return []byte(cfg)
		}
		return fromTree(d.tree)(rel)
	})
	b, err := Read(context.Background(), overlay, "qcow2", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if want := "BOOT_IMAGE=/boot/vmlinuz-6.2 marker=1 root=UUID=" + testFSUUID + " ro console=ttyS0,115200"; b.Cmdline != want {
		t.Errorf("cmdline %q, want %q", b.Cmdline, want)
	}
	assertFile(t, b.Kernel, newKernel)
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	blank := filepath.Join(dir, "blank.raw")
	if err := os.WriteFile(blank, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, format, want string }{
		{blank, "raw", "no partition table"},
		{blank, "qcow2", "open qcow2"},
		{blank, "vmdk", "want qcow2 or raw"},
		{filepath.Join(dir, "absent"), "raw", "no such file"},
	} {
		_, err := Read(context.Background(), tc.path, tc.format, dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: %v, want an error with %q", tc.path, tc.format, err, tc.want)
		}
	}
}
