// Command sidebyside runs `goldsmith build` and Packer 1.6.6 side by side on
// the same work from the same base disk, in interleaved pairs, and reports
// each side's wall time, goldsmith's phases, the ratio, and goldsmith's
// rebuild with only the last customizer changed (see bench/doc.go).
//
//	go run ./bench/sidebyside -n 5
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/machine"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside:", err)
		os.Exit(1)
	}
}

// baseURN is the catalog image both sides start from.
const baseURN = "Debian:debian-12:12"

type config struct {
	pairs     int
	only      string
	rebuild   bool
	dataDir   string
	workDir   string
	out       string
	goldsmith string
	packer    string
	vmSize    string
	accel     string
	timeout   time.Duration
	keep      bool
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("sidebyside", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.pairs, "n", 5, "interleaved pairs to run (the issue asks for at least 5)")
	fs.StringVar(&c.only, "only", "", "run one side only: goldsmith or packer")
	fs.BoolVar(&c.rebuild, "rebuild", true, "after each warm goldsmith build, rebuild with only the last customizer changed (P2)")
	fs.StringVar(&c.dataDir, "data-dir", "/var/tmp/goldsmith-bench/sidebyside/data", "goldsmith data dir: its catalog holds the base image both sides boot")
	fs.StringVar(&c.workDir, "work-dir", "/var/tmp/goldsmith-bench/sidebyside/runs", "where each run's directory (logs, kept failures) goes")
	fs.StringVar(&c.out, "out", "", "results JSON (default bench/results/sidebyside-TIME.json in the module)")
	fs.StringVar(&c.goldsmith, "goldsmith", "", "goldsmith binary (default: go build ./cmd/goldsmith into the run dir)")
	fs.StringVar(&c.packer, "packer", "packer", "packer binary (Debian's packer 1.6.6)")
	fs.StringVar(&c.vmSize, "vm-size", "Standard_D2s_v3", "the template's vmSize; Packer gets the same vCPUs and memory")
	fs.StringVar(&c.accel, "accel", "auto", "auto (KVM only if a probe boot works), kvm or tcg; both sides use the answer")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Minute, "per-build limit")
	fs.BoolVar(&c.keep, "keep", false, "keep every build's disks (by default only failed builds keep theirs)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.pairs < 1:
		return c, fmt.Errorf("-n must be at least 1")
	case c.only != "" && c.only != sideGoldsmith && c.only != sidePacker:
		return c, fmt.Errorf("-only must be goldsmith or packer, not %q", c.only)
	case c.accel != "auto" && c.accel != "kvm" && c.accel != "tcg":
		return c, fmt.Errorf("-accel must be auto, kvm or tcg, not %q", c.accel)
	}
	return c, nil
}

// job is one build of the work.
type job struct {
	Kind      string
	Dir       string
	Work      pairWork
	CheckText string
}

// side is goldsmith or Packer.
type side interface {
	Build(ctx context.Context, j job) (*buildRun, error)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ex := processGroup{}
	res := results{Started: time.Now().UTC()}
	runDir := filepath.Join(cfg.workDir, res.Started.Local().Format("20060102-150405"))
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	if cfg.out == "" {
		root, err := moduleRoot(ctx, ex)
		if err != nil {
			return err
		}
		cfg.out = filepath.Join(root, "bench", "results", "sidebyside-"+res.Started.Local().Format("20060102-150405")+".json")
	}

	base, err := baseImage(ctx, cfg.dataDir, log)
	if err != nil {
		return err
	}
	host, err := machine.HostResources()
	if err != nil {
		return err
	}
	size, err := machine.SizeFor(cfg.vmSize, host)
	if err != nil {
		return err
	}
	accel := cfg.accel
	if accel == "auto" {
		pr, err := machine.ProbeAccel(ctx, machine.ProbeConfig{CacheDir: filepath.Join(cfg.dataDir, "cache"), Kernel: base.KernelPath, Logger: log})
		if err != nil {
			return fmt.Errorf("accelerator probe: %w", err)
		}
		accel = string(pr.Accel)
		log.Info("accelerator", "accel", accel, "reason", pr.Reason)
	}
	hostname, _ := os.Hostname()
	res.Setup = setupInfo{
		Host: hostname, HostCPUs: host.CPUs, Accelerator: accel,
		VMSize: cfg.vmSize, CPUs: size.CPUs, MemoryMiB: size.MemoryMiB,
		BaseURN: base.URN, BaseDisk: base.DiskPath, BaseSHA256: base.DiskSHA256, BaseVirtualBytes: base.VirtualSize,
		DataDir: cfg.dataDir, WorkDir: runDir,
	}

	files := map[string][]byte{"goldsmith.json": goldsmithTemplate, "packer.json": packerTemplate, "deprovision.sh": deprovisionScript}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(runDir, name), data, 0o644); err != nil {
			return err
		}
	}
	sides := map[string]side{}
	if cfg.only != sidePacker {
		bin, version, err := goldsmithBinary(ctx, ex, cfg.goldsmith, runDir)
		if err != nil {
			return err
		}
		res.Setup.Goldsmith = bin + " " + version
		sides[sideGoldsmith] = goldsmithSide{exec: ex, bin: bin, template: filepath.Join(runDir, "goldsmith.json"),
			dataDir: cfg.dataDir, accel: accel, vmSize: cfg.vmSize, version: base.Version}
	}
	if cfg.only != sideGoldsmith {
		bin, version, err := packerBinary(ctx, ex, cfg.packer)
		if err != nil {
			return err
		}
		if !strings.Contains(version, "1.6.6") {
			log.Warn("the issue's comparison is with Packer 1.6.6", "packer", version)
		}
		res.Setup.Packer = bin + " " + version
		sides[sidePacker] = packerSide{exec: ex, bin: bin, template: filepath.Join(runDir, "packer.json"),
			deprovision: filepath.Join(runDir, "deprovision.sh"), baseImage: base.DiskPath, baseSHA256: base.DiskSHA256,
			diskMiB: base.VirtualSize >> 20, accel: accel, cpus: size.CPUs, memoryMiB: size.MemoryMiB}
	}

	serveRoot := filepath.Join(runDir, "serve")
	srv, err := serve(serveRoot)
	if err != nil {
		return err
	}
	defer srv.Close()
	log.Info("side-by-side benchmark", "pairs", cfg.pairs, "base", base.URN, "vmSize", cfg.vmSize,
		"cpus", size.CPUs, "memoryMiB", size.MemoryMiB, "accel", accel, "dir", runDir)

	pay := payload()
	var runErr error
	if g, ok := sides[sideGoldsmith]; ok {
		// Warm the caches a user's second build finds: the booted base
		// image saved once per catalog image and VM shape (layer 0), as the
		// catalog image itself is. Not timed; its own work never matches a
		// pair's.
		w, err := newPairWork(serveRoot, srv.URL, 0, pay)
		if err != nil {
			return err
		}
		j := job{Kind: kindWarm, Work: w, CheckText: "prime " + w.Nonce, Dir: filepath.Join(runDir, "prime", sideGoldsmith)}
		if _, err := runBuild(ctx, log, cfg, g, j); err != nil {
			return fmt.Errorf("priming goldsmith's caches: %w", err)
		}
	}
	for i := 1; i <= cfg.pairs && runErr == nil; i++ {
		var pr pairResult
		pr, runErr = runPair(ctx, log, cfg, sides, runDir, serveRoot, srv.URL, i, pay)
		res.Pairs = append(res.Pairs, pr)
	}
	res.Finished = time.Now().UTC()
	res.Completed = runErr == nil
	res.Summary = summarize(res.Pairs)
	fmt.Fprintln(stdout)
	printReport(stdout, res.Pairs, res.Summary)
	if err := writeResults(cfg.out, res); err != nil {
		return errors.Join(runErr, err)
	}
	fmt.Fprintf(stdout, "\nresults: %s\nlogs:    %s\n", cfg.out, runDir)
	return runErr
}

// runPair runs pair i: goldsmith's warm build and its rebuild, and Packer's
// build, goldsmith first in odd pairs and Packer first in even ones.
func runPair(ctx context.Context, log *slog.Logger, cfg config, sides map[string]side, runDir, serveRoot, baseURL string, i int, pay []byte) (pairResult, error) {
	pr := pairResult{Index: i}
	w, err := newPairWork(serveRoot, baseURL, i, pay)
	if err != nil {
		return pr, err
	}
	pr.Nonce = w.Nonce
	order := []string{sideGoldsmith, sidePacker}
	if i%2 == 0 {
		order = []string{sidePacker, sideGoldsmith}
	}
	for _, name := range order {
		s, ok := sides[name]
		if !ok {
			continue
		}
		if pr.First == "" {
			pr.First = name
		}
		j := job{Kind: kindWarm, Work: w, CheckText: "warm " + w.Nonce, Dir: filepath.Join(runDir, fmt.Sprintf("pair-%d", i), name)}
		r, err := runBuild(ctx, log, cfg, s, j)
		if name == sidePacker {
			pr.Packer = r
		} else {
			pr.Goldsmith = r
		}
		if err != nil {
			return pr, fmt.Errorf("pair %d: %w", i, err)
		}
		if name == sideGoldsmith && cfg.rebuild {
			// Every customizer but the last is the warm build's: a layer
			// cache can start from the layer after the reboot.
			j := job{Kind: kindRebuild, Work: w, CheckText: "rebuild " + w.Nonce, Dir: j.Dir + "-rebuild"}
			pr.Rebuild, err = runBuild(ctx, log, cfg, s, j)
			if err != nil {
				return pr, fmt.Errorf("pair %d: %w", i, err)
			}
		}
	}
	return pr, nil
}

// runBuild runs one build with the per-build timeout, checks that it made a
// fixed VHD, and removes its disks unless it failed or -keep says so.
func runBuild(ctx context.Context, log *slog.Logger, cfg config, s side, j job) (*buildRun, error) {
	if err := os.MkdirAll(j.Dir, 0o755); err != nil {
		return &buildRun{Kind: j.Kind, Dir: j.Dir, Error: err.Error()}, err
	}
	bctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	log.Info("build", "dir", j.Dir, "kind", j.Kind)
	before := loadAverage()
	r, err := s.Build(bctx, j)
	r.LoadBefore, r.LoadAfter = before, loadAverage()
	if err == nil {
		err = checkFixedVHD(r.Artifact)
	}
	if err != nil {
		r.Error = err.Error()
		log.Error("build failed; its directory is kept", "dir", j.Dir, "err", err)
		return r, err
	}
	log.Info("build done", "side", r.Side, "kind", r.Kind, "seconds", fmt.Sprintf("%.1f", r.Seconds), "phases", phaseText(r.Phases))
	if !cfg.keep {
		for _, p := range []string{r.Artifact, filepath.Join(j.Dir, "output"), filepath.Join(j.Dir, "packer_cache")} {
			if err := os.RemoveAll(p); err != nil {
				log.Warn("cleanup", "err", err)
			}
		}
	}
	return r, nil
}

// loadAverage is the host's 1-minute load average (0 if unknown).
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(data), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

// checkFixedVHD checks the VHD footer: the "conectix" cookie and disk type
// 2 (fixed), so both sides are known to make the same kind of artifact.
func checkFixedVHD(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("artifact: %w", err)
	}
	footer := make([]byte, 512)
	if _, err := f.ReadAt(footer, st.Size()-512); err != nil {
		return fmt.Errorf("artifact %s: reading the VHD footer: %w", path, err)
	}
	if string(footer[:8]) != "conectix" || footer[63] != 2 {
		return fmt.Errorf("artifact %s is not a fixed VHD", path)
	}
	return nil
}

// baseImage finds the newest cached Debian 12 in the data dir's catalog,
// building one only if there is none. Its exact version is pinned in
// goldsmith's template and its disk is Packer's iso_url, so both sides boot
// the same bytes for the whole run.
func baseImage(ctx context.Context, dataDir string, log *slog.Logger) (catalog.Entry, error) {
	cat, err := catalog.Open(dataDir, catalog.WithLogger(log))
	if err != nil {
		return catalog.Entry{}, fmt.Errorf("open the catalog in %s: %w", dataDir, err)
	}
	want, err := catalog.ParseURN(baseURN)
	if err != nil {
		return catalog.Entry{}, err
	}
	entries, err := cat.List()
	if err != nil {
		return catalog.Entry{}, err
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Publisher != want.Publisher || e.Offer != want.Offer || e.SKU != want.SKU {
			continue
		}
		if _, err := os.Stat(e.DiskPath); err == nil {
			return e, nil
		}
	}
	log.Info("no cached base image: building it (a few minutes)", "urn", baseURN, "dataDir", dataDir)
	return cat.Ensure(ctx, baseURN)
}

func goldsmithBinary(ctx context.Context, ex execer, bin, runDir string) (path, version string, err error) {
	if bin != "" {
		return bin, "", nil
	}
	root, err := moduleRoot(ctx, ex)
	if err != nil {
		return "", "", err
	}
	var out bytes.Buffer
	if err := ex.Run(ctx, command{Path: "git", Args: []string{"describe", "--always", "--dirty"}, Dir: root, Stdout: &out, Stderr: io.Discard}); err == nil {
		version = strings.TrimSpace(out.String())
	}
	path = filepath.Join(runDir, "goldsmith")
	if err := ex.Run(ctx, command{Path: "go", Args: []string{"build", "-o", path, "./cmd/goldsmith"}, Dir: root, Stdout: os.Stderr, Stderr: os.Stderr}); err != nil {
		return "", "", fmt.Errorf("build goldsmith: %w", err)
	}
	return path, version, nil
}

func packerBinary(ctx context.Context, ex execer, bin string) (path, version string, err error) {
	path, err = exec.LookPath(bin)
	if err != nil {
		return "", "", fmt.Errorf("packer: %w (apt-get install packer, or ./scripts/setup)", err)
	}
	var out bytes.Buffer
	if err := ex.Run(ctx, command{Path: path, Args: []string{"version"}, Stdout: &out, Stderr: io.Discard, Env: []string{"CHECKPOINT_DISABLE=1"}}); err != nil {
		return "", "", err
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	return path, strings.TrimSpace(line), nil
}

// moduleRoot is the goldsmith module's directory (`go env GOMOD`), for
// building the binary and the default results path.
func moduleRoot(ctx context.Context, ex execer) (string, error) {
	var out bytes.Buffer
	if err := ex.Run(ctx, command{Path: "go", Args: []string{"env", "GOMOD"}, Stdout: &out, Stderr: io.Discard}); err != nil {
		return "", err
	}
	mod := strings.TrimSpace(out.String())
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run it inside the goldsmith module (go run ./bench/sidebyside), or give -goldsmith and -out")
	}
	return filepath.Dir(mod), nil
}

func writeResults(path string, res results) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	return os.Rename(tmp, path)
}
