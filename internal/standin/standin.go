// Package standin is a TEST EXECUTOR standing in for the QEMU build engine,
// which is far too slow for API tests. Only tests use it: a server started
// with it builds nothing real, so its outputs prove the service's paths
// (queue, phases, logs, distribution, crash recovery), never the engine's.
package standin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/runner"
	"github.com/goldsmith-dev/goldsmith/template"
)

// Executor implements runner.Executor. It does real, small work so the
// API, queue and crash-recovery paths are exercised for real: it starts a real child
// process (sleep) in the run's WorkDir and records its pid there as the
// build VM would, walks through the phases (Building, Customizing,
// Validating, Distributing) over Duration while writing log lines, reads
// every staged file it is given, and writes a real small disk per target: a
// raw disk with an MBR boot signature whose first sector names the template
// and run, and for VHD targets a fixed VHD (the raw disk plus a VHD footer).
// It stops at once when its context is canceled.
//
// A Shell customizer whose inline commands include "exit N" (N > 0) fails
// the run during Customizing with that exit status, so tests can make a
// build fail from the template alone.
type Executor struct {
	Duration time.Duration // total build time; default 1s
	DiskSize int64         // bytes, a multiple of 1 MiB; default 1 MiB
}

// Execute implements runner.Executor.
func (e Executor) Execute(ctx context.Context, run runner.Request, log io.Writer, progress func(build.Phase, string)) (res runner.Result, err error) {
	// Like the engine, it leaves a manifest (phases with their seconds,
	// customizers with theirs and their exit codes, outputs) even when it fails.
	m := &manifest{m: build.Manifest{Template: build.ManifestTemplate{Name: run.Template.Name, APIVersion: run.Template.APIVersion,
		Location: run.Template.Location}, Source: build.ManifestSource{Type: run.Template.Properties.Source.Type},
		Steps: []build.ManifestStep{}, Outputs: []build.Output{}, Started: time.Now().UTC()}, progress: progress}
	progress = m.enter
	defer func() {
		if merr := m.finish(run.ManifestPath, res, err); merr != nil {
			fmt.Fprintf(log, "stand-in: keep the manifest: %v\n", merr)
		}
	}()
	d := e.Duration
	if d <= 0 {
		d = time.Second
	}
	size := e.DiskSize
	if size <= 0 {
		size = 1 << 20
	}
	size = (size + (1<<20 - 1)) &^ (1<<20 - 1)
	t := run.Template

	// The stand-in "build VM": a real process whose pid is recorded.
	vm := exec.Command("sleep", strconv.Itoa(int(d/time.Second)+60))
	vm.Dir = run.WorkDir
	if err := vm.Start(); err != nil {
		return runner.Result{}, fmt.Errorf("start the stand-in build VM: %w", err)
	}
	defer func() { _ = vm.Process.Kill(); _ = vm.Wait() }()
	if err := machine.WritePIDFile(filepath.Join(run.WorkDir, "vm.pid"), vm.Process.Pid); err != nil {
		return runner.Result{}, err
	}
	fmt.Fprintf(log, "stand-in build VM started (pid %d) in %s\n", vm.Process.Pid, run.WorkDir)

	steps := 3 + len(t.Properties.Customize)
	if t.Properties.Validate != nil {
		steps += len(t.Properties.Validate.InVMValidations) + 1
	}
	step := d / time.Duration(steps)
	wait := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step):
			return nil
		}
	}

	progress(build.PhaseBuilding, fmt.Sprintf("source %s, vmSize %s", describeSource(t.Properties.Source), t.Properties.VMProfile.EffectiveVMSize()))
	if err := wait(); err != nil {
		return runner.Result{}, err
	}
	progress(build.PhaseCustomizing, fmt.Sprintf("%d customizers", len(t.Properties.Customize)))
	for i, c := range t.Properties.Customize {
		stepStart := time.Now()
		fmt.Fprintf(log, "customizer %d (%s %q)\n", i, c.Type, c.Name)
		for _, uri := range []string{c.ScriptURI, c.SourceURI} {
			if f, ok := run.Files[uri]; ok && uri != "" {
				sum, err := fileSHA256(f.Path)
				if err != nil {
					return runner.Result{}, fmt.Errorf("customizer %d: read %s: %w", i, uri, err)
				}
				fmt.Fprintf(log, "  staged %s sha256 %s (%d bytes)\n", uri, sum, f.Size)
			}
		}
		for _, line := range c.Inline {
			fmt.Fprintf(log, "  + %s\n", line)
			if code := exitCode(line); code > 0 && c.Type == template.CustomizeShell {
				m.step(c, stepStart, code)
				// The engine's own error, so the message reads as a real build's.
				return runner.Result{}, &customize.StepError{Kind: customize.KindCustomizer, Index: i + 1, Total: len(t.Properties.Customize),
					Name: c.Name, Type: c.Type, ExitCode: code}
			}
		}
		if err := wait(); err != nil {
			return runner.Result{}, err
		}
		m.step(c, stepStart, 0)
	}
	if v := t.Properties.Validate; v != nil {
		progress(build.PhaseValidating, fmt.Sprintf("%d validators", len(v.InVMValidations)))
		for i, c := range v.InVMValidations {
			fmt.Fprintf(log, "validator %d (%s %q)\n", i, c.Type, c.Name)
			if err := wait(); err != nil {
				return runner.Result{}, err
			}
		}
	}
	progress(build.PhaseDistributing, fmt.Sprintf("%d targets", len(t.Properties.Distribute)))
	raw := filepath.Join(run.WorkDir, "disk.raw")
	if err := writeRawDisk(raw, size, fmt.Sprintf("goldsmith stand-in image of %s, run %s", run.TemplateID, run.RunID)); err != nil {
		return runner.Result{}, err
	}
	rawSum, err := fileSHA256(raw)
	if err != nil {
		return runner.Result{}, err
	}
	osType := string(template.OSByPublisher(t.Properties.Source))
	if osType == "" {
		osType = "Linux"
	}
	res = runner.Result{OSType: osType, HyperVGeneration: "V1"}
	for i, dist := range t.Properties.Distribute {
		o := build.Output{RunOutputName: dist.RunOutputName, Type: dist.Type, Path: raw, Format: "raw", SHA256: rawSum, Size: size}
		if dist.Type == template.DistributeVHD {
			vhd := filepath.Join(run.WorkDir, fmt.Sprintf("output-%d.vhd", i+1))
			if err := writeFixedVHD(raw, vhd); err != nil {
				return runner.Result{}, err
			}
			sum, err := fileSHA256(vhd)
			if err != nil {
				return runner.Result{}, err
			}
			o.Path, o.Format, o.SHA256, o.Size = vhd, "vhd", sum, size+512
		}
		fmt.Fprintf(log, "output %s: %s %s sha256 %s\n", o.RunOutputName, o.Format, o.Path, o.SHA256)
		res.Outputs = append(res.Outputs, o)
	}
	if err := wait(); err != nil {
		return runner.Result{}, err
	}
	return res, nil
}

// manifest records what the stand-in did in the engine's manifest shape.
type manifest struct {
	m        build.Manifest
	progress func(build.Phase, string)
	phase    build.Phase
	since    time.Time
}

func (m *manifest) enter(p build.Phase, detail string) {
	m.closePhase()
	m.phase, m.since = p, time.Now()
	m.progress(p, detail)
}

func (m *manifest) closePhase() {
	if m.phase != "" {
		m.m.Phases = append(m.m.Phases, build.ManifestPhase{Phase: m.phase, Seconds: time.Since(m.since).Seconds()})
	}
}

func (m *manifest) step(c template.Customizer, start time.Time, code int) {
	m.m.Steps = append(m.m.Steps, build.ManifestStep{Name: c.Name, Type: c.Type, URI: c.ScriptURI + c.SourceURI,
		Seconds: time.Since(start).Seconds(), ExitCode: code})
}

func (m *manifest) finish(path string, res runner.Result, err error) error {
	m.closePhase()
	m.m.Finished = time.Now().UTC()
	m.m.Outputs = append(m.m.Outputs, res.Outputs...)
	switch {
	case err == nil:
		m.m.Result = "Succeeded"
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		m.m.Result, m.m.Message = "Canceled", err.Error()
	default:
		m.m.Result, m.m.Message = "Failed", err.Error()
	}
	if path == "" {
		return nil
	}
	data, merr := json.MarshalIndent(m.m, "", "  ")
	if merr != nil {
		return merr
	}
	return os.WriteFile(path, data, 0o600)
}

func describeSource(s template.Source) string {
	switch s.Type {
	case template.SourcePlatformImage:
		return "PlatformImage " + s.URN()
	case template.SourceManagedImage:
		return "ManagedImage " + s.ImageID
	case template.SourceSharedImageVersion:
		return "SharedImageVersion " + s.ImageVersionID
	}
	return string(s.Type) + " " + s.SourceURI
}

// exitCode finds "exit N" in a shell line.
func exitCode(line string) int {
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "exit" {
			if n, err := strconv.Atoi(strings.TrimSuffix(f[i+1], ";")); err == nil {
				return n
			}
		}
	}
	return 0
}

func fileSHA256(p string) (string, error) {
	sum, _, err := disk.SHA256File(context.Background(), p)
	return sum, err
}

// writeRawDisk writes a raw disk of size bytes: an MBR with the boot
// signature, label text in the boot code area, zeros elsewhere.
func writeRawDisk(p string, size int64, label string) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	mbr := make([]byte, 512)
	copy(mbr[:440], label)
	mbr[510], mbr[511] = 0x55, 0xAA
	if _, err := f.Write(mbr); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeFixedVHD copies raw to dst and makes it a fixed VHD (package disk
// writes the footer).
func writeFixedVHD(raw, dst string) error {
	if err := disk.CopySparse(context.Background(), dst, raw); err != nil {
		return err
	}
	_, err := disk.WriteFixedVHD(dst)
	return err
}
