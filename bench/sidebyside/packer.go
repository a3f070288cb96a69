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
		"serial_log":         filepath.Join(j.Dir, "serial.log"),
		"setup_script":       j.Work.SetupPath,
		"payload":            j.Work.PayloadPath,
		"payload_sha256":     j.Work.PayloadSHA256,
		"check_text":         j.CheckText,
		"deprovision_script": p.deprovision,
		"vhd":                vhd,
	}
	varFile := filepath.Join(j.Dir, "vars.json")
	data, _ := json.MarshalIndent(vars, "", "  ")
	if err := os.WriteFile(varFile, data, 0o644); err != nil {
		return r, err
	}
	logFile, err := os.Create(filepath.Join(j.Dir, "packer.log"))
	if err != nil {
		return r, err
	}
	defer logFile.Close()
	start := time.Now()
	out := &timedLines{start: start, w: logFile}
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
	out.flush()
	r.Timeline = out.lines
	r.Phases, r.Steps = packerPhases(out.lines, r.Seconds)
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

// Markers in Packer 1.6.6's output (qemu builder, -color=false).
const (
	markSSH         = "==> qemu: Connected to SSH!"
	markProvision   = "==> qemu: Provisioning with shell script: "
	markDeprovision = "deprovision.sh"
	markPost        = "==> qemu: Running post-processor:"
	markCheck       = "qemu: bench-check:"
)

// packerPhases splits a Packer run into goldsmith's phases, by the lines
// that start them: Building until SSH first answers (copying and resizing
// the disk, booting through the disk's GRUB), Customizing until the
// deprovision script starts, Generalizing until the post-processor (the
// deprovision, the shutdown command and QEMU's exit), Distributing (the
// fixed-VHD conversion) until Packer exits. The steps are the disk copy
// (until the VM starts) and the reboot (from the start of the provisioner
// that reboots to the first output of the check after it, so including the
// check's pause_before). A phase whose
// marker is missing (a failed run) is left out.
func packerPhases(lines []timedLine, total float64) (phases, steps []phase) {
	find := func(from int, match func(string) bool) int {
		for i := from; i < len(lines); i++ {
			if match(lines[i].Text) {
				return i
			}
		}
		return -1
	}
	ssh := find(0, func(s string) bool { return strings.HasPrefix(s, markSSH) })
	deprov := find(0, func(s string) bool {
		return strings.HasPrefix(s, markProvision) && strings.HasSuffix(s, markDeprovision)
	})
	post := find(0, func(s string) bool { return strings.HasPrefix(s, markPost) })
	marks := []struct {
		name string
		at   int
	}{{"Building", ssh}, {"Customizing", deprov}, {"Generalizing", post}}
	prev := 0.0
	for _, m := range marks {
		if m.at < 0 {
			return phases, packerSteps(lines, find)
		}
		phases = append(phases, phase{Name: m.name, Seconds: lines[m.at].Seconds - prev})
		prev = lines[m.at].Seconds
	}
	phases = append(phases, phase{Name: "Distributing", Seconds: total - prev})
	return phases, packerSteps(lines, find)
}

func packerSteps(lines []timedLine, find func(int, func(string) bool) int) []phase {
	var steps []phase
	if vm := find(0, func(s string) bool { return strings.HasPrefix(s, "==> qemu: Starting VM") }); vm >= 0 {
		steps = append(steps, phase{Name: "copy disk", Seconds: lines[vm].Seconds})
	}
	check := find(0, func(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), markCheck) })
	if check < 0 {
		return steps
	}
	// The check's own provisioner line comes first going back, then the
	// rebooting one's.
	seen := 0
	for i := check - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i].Text, markProvision) {
			if seen++; seen == 2 {
				steps = append(steps, phase{Name: "reboot", Seconds: lines[check].Seconds - lines[i].Seconds})
				break
			}
		}
	}
	return steps
}
