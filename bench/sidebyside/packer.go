package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/goldsmith-dev/goldsmith/machine/guestagent"
)

// packerSide runs `packer build` on packer.json.
type packerSide struct {
	exec        execer
	bin         string
	template    string // packer.json, written once per run
	deprovision string // deprovision.sh, written once per run
	baseImage   string // the catalog's disk blob, the same goldsmith boots
	baseSHA256  string
	diskMiB     int64
	accel       string
	cpus        int
	memoryMiB   int
}

// buildUser is the user Packer logs in as, the name goldsmith's build user
// has too (AIB's).
const buildUser = "packer"

func (p packerSide) Build(ctx context.Context, j job) (*buildRun, error) {
	r := &buildRun{Side: sidePacker, Kind: j.Kind, Dir: j.Dir}
	fwDir := filepath.Join(j.Dir, "fwcfg")
	key, err := writePackerIdentity(fwDir, filepath.Join(j.Dir, "id_ed25519"))
	if err != nil {
		return r, err
	}
	outDir := filepath.Join(j.Dir, "output")
	vhd := filepath.Join(j.Dir, "disk.vhd")
	vars := map[string]string{
		"base_image":         p.baseImage,
		"base_sha256":        p.baseSHA256,
		"disk_size":          fmt.Sprintf("%dM", p.diskMiB),
		"accelerator":        p.accel,
		"cpus":               fmt.Sprint(p.cpus),
		"memory_mib":         fmt.Sprint(p.memoryMiB),
		"output_dir":         outDir,
		"fwcfg_dir":          fwDir,
		"ssh_key":            key,
		"setup_script":       j.Work.SetupPath,
		"payload":            j.Work.PayloadPath,
		"payload_sha256":     j.Work.PayloadSHA256,
		"check_text":         j.CheckText,
		"deprovision_script": p.deprovision,
		"vhd":                vhd,
	}
	varFile := filepath.Join(j.Dir, "vars.json")
	logFile, err := os.Create(filepath.Join(j.Dir, "packer.log"))
	if err != nil {
		return r, err
	}
	defer logFile.Close()
	serialFile, err := os.Create(filepath.Join(j.Dir, "serial.log"))
	if err != nil {
		return r, err
	}
	defer serialFile.Close()
	// A unix socket's path must be short; the job dir's may not be.
	sockDir, err := os.MkdirTemp("", "bench-serial-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(sockDir)
	vars["serial_socket"] = filepath.Join(sockDir, "serial.sock")
	data, _ := json.MarshalIndent(vars, "", "  ")
	if err := os.WriteFile(varFile, data, 0o644); err != nil {
		return r, err
	}

	start := time.Now()
	out := &timedLines{start: start, w: logFile}
	serial := &timedLines{start: start, w: serialFile}
	serialCtx, stopSerial := context.WithCancel(ctx)
	serialDone := make(chan struct{})
	go func() {
		defer close(serialDone)
		readSerial(serialCtx, vars["serial_socket"], serial)
	}()
	err = p.exec.Run(ctx, command{
		Path: p.bin,
		Args: []string{"build", "-color=false", "-var-file=" + varFile, p.template},
		Dir:  j.Dir,
		Env: []string{
			"PACKER_CACHE_DIR=" + filepath.Join(j.Dir, "packer_cache"),
			"PACKER_LOG=1", "PACKER_LOG_PATH=" + filepath.Join(j.Dir, "packer-debug.log"),
			"CHECKPOINT_DISABLE=1", // no version check over the network
		},
		Stdout: out, Stderr: out,
	})
	r.Seconds = time.Since(start).Seconds()
	stopSerial()
	<-serialDone
	out.flush()
	serial.flush()
	r.Timeline, r.Serial = out.lines, serial.lines
	r.Phases, r.Steps = packerPhases(out.lines, serial.lines, r.Seconds)
	if err != nil {
		return r, fmt.Errorf("packer build (log %s): %w", logFile.Name(), err)
	}
	st, err := os.Stat(vhd)
	if err != nil {
		return r, fmt.Errorf("packer build: no VHD: %w", err)
	}
	r.Artifact, r.ArtifactBytes = vhd, st.Size()
	return r, nil
}

// writePackerIdentity writes what goldsmith's guest agent reads from fw_cfg
// (machine/guestagent): the build user, its authorized key and a host key,
// and the client's private key for Packer's ssh_private_key_file.
func writePackerIdentity(fwDir, keyFile string) (string, error) {
	if err := os.MkdirAll(fwDir, 0o700); err != nil {
		return "", err
	}
	clientPub, clientKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	sshPub, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		return "", err
	}
	clientPEM, err := ssh.MarshalPrivateKey(clientKey, "goldsmith side-by-side benchmark")
	if err != nil {
		return "", err
	}
	hostPEM, err := ssh.MarshalPrivateKey(hostKey, "")
	if err != nil {
		return "", err
	}
	files := map[string][]byte{
		filepath.Join(fwDir, guestagent.ItemUser):           []byte(buildUser),
		filepath.Join(fwDir, guestagent.ItemAuthorizedKeys): ssh.MarshalAuthorizedKey(sshPub),
		filepath.Join(fwDir, guestagent.ItemHostKey):        pem.EncodeToMemory(hostPEM),
		keyFile: pem.EncodeToMemory(clientPEM),
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", fmt.Errorf("packer identity: %w", err)
		}
	}
	return keyFile, nil
}

// readSerial copies the guest's serial console from QEMU's socket (made
// when QEMU starts) into out, until QEMU closes it or ctx ends.
func readSerial(ctx context.Context, sock string, out io.Writer) {
	var conn net.Conn
	for conn == nil {
		c, err := net.Dial("unix", sock)
		if err == nil {
			conn = c
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_, _ = io.Copy(out, conn)
}

// timedLine is one line of Packer's output and when it came.
type timedLine struct {
	Seconds float64 `json:"t"`
	Text    string  `json:"line"`
}

// timedLines keeps Packer's output lines with the time since start, and
// writes them, so stamped, to w.
type timedLines struct {
	start time.Time
	w     io.Writer
	mu    sync.Mutex
	buf   []byte
	lines []timedLine
}

func (t *timedLines) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Since(t.start).Seconds()
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			break
		}
		t.add(now, string(t.buf[:i]))
		t.buf = t.buf[i+1:]
	}
	return len(p), nil
}

func (t *timedLines) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) > 0 {
		t.add(time.Since(t.start).Seconds(), string(t.buf))
		t.buf = nil
	}
}

func (t *timedLines) add(at float64, line string) {
	line = strings.TrimRight(line, "\r")
	t.lines = append(t.lines, timedLine{Seconds: at, Text: line})
	fmt.Fprintf(t.w, "%8.3f %s\n", at, line)
}

// Markers in Packer 1.6.6's output (qemu builder, -color=false) and on the
// guest's console.
const (
	markVM          = "==> qemu: Starting VM"
	markSSH         = "==> qemu: Connected to SSH!"
	markProvision   = "==> qemu: Provisioning with shell script: "
	markDeprovision = "deprovision.sh"
	markPost        = "==> qemu: Running post-processor:"
	markCheck       = "qemu: bench-check:"
	markKernel      = "Linux version "
)

// packerPhases splits a Packer run into goldsmith's phases, by the output
// lines that start them: Building until SSH first answers (copying and
// resizing the disk, booting through the disk's GRUB), Customizing until
// the deprovision script starts, Generalizing until the post-processor (the
// deprovision, the shutdown command and QEMU's exit), Distributing (the
// fixed-VHD conversion) until Packer exits. A phase whose marker is missing
// (a failed run) is left out, as are the later ones.
//
// The steps say where the time goes, with the guest console's kernel banner
// between: until the VM starts (Packer's plugins, the checksum, the disk
// copy and resize), firmware and GRUB to the kernel, kernel to SSH; and the
// reboot, from the start of the provisioner that reboots to the kernel's
// banner (shutdown, firmware, GRUB), and from there to the check's first
// output (boot, sshd, Packer reconnecting), including the check's
// pause_before.
func packerPhases(out, serial []timedLine, total float64) (phases, steps []phase) {
	ssh := find(out, 0, prefix(markSSH))
	deprov := find(out, 0, func(s string) bool {
		return strings.HasPrefix(s, markProvision) && strings.HasSuffix(s, markDeprovision)
	})
	post := find(out, 0, prefix(markPost))
	prev := 0.0
	complete := true
	for _, m := range []struct {
		name string
		at   int
	}{{"Building", ssh}, {"Customizing", deprov}, {"Generalizing", post}} {
		if m.at < 0 {
			complete = false
			break
		}
		phases = append(phases, phase{Name: m.name, Seconds: out[m.at].Seconds - prev})
		prev = out[m.at].Seconds
	}
	if complete {
		phases = append(phases, phase{Name: "Distributing", Seconds: total - prev})
	}

	at := func(lines []timedLine, i int) (float64, bool) {
		if i < 0 {
			return 0, false
		}
		return lines[i].Seconds, true
	}
	span := func(name string, from, to float64, ok1, ok2 bool) {
		if ok1 && ok2 {
			steps = append(steps, phase{Name: name, Seconds: to - from})
		}
	}
	vm, okVM := at(out, find(out, 0, prefix(markVM)))
	span("to VM start", 0, vm, true, okVM)
	k1 := find(serial, 0, contains(markKernel))
	kernel1, okK1 := at(serial, k1)
	sshAt, okSSH := at(out, ssh)
	span("boot: firmware+GRUB", vm, kernel1, okVM, okK1)
	span("boot: kernel to SSH", kernel1, sshAt, okK1, okSSH)

	check := find(out, 0, func(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), markCheck) })
	// Going back from the check's output: the check's own provisioner line,
	// then the rebooting one's.
	reboot := -1
	for i, seen := check-1, 0; check >= 0 && i >= 0; i-- {
		if strings.HasPrefix(out[i].Text, markProvision) {
			if seen++; seen == 2 {
				reboot = i
				break
			}
		}
	}
	rebootAt, okR := at(out, reboot)
	checkAt, okC := at(out, check)
	kernel2, okK2 := 0.0, false
	if k1 >= 0 {
		kernel2, okK2 = at(serial, find(serial, k1+1, contains(markKernel)))
	}
	span("reboot: down+firmware+GRUB", rebootAt, kernel2, okR, okK2)
	span("reboot: kernel to check", kernel2, checkAt, okK2, okC)
	span("reboot", rebootAt, checkAt, okR, okC)
	return phases, steps
}

func find(lines []timedLine, from int, match func(string) bool) int {
	for i := from; i < len(lines); i++ {
		if match(lines[i].Text) {
			return i
		}
	}
	return -1
}

func prefix(p string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, p) }
}

func contains(sub string) func(string) bool {
	return func(s string) bool { return strings.Contains(s, sub) }
}
