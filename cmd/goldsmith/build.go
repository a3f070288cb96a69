package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/source"
	"github.com/goldsmith-dev/goldsmith/template"
)

type buildFlags struct {
	parameters string
	apiVersion string
	outputDir  string
	dataDir    string
	output     string
	format     string
	accel      string
	vmNetwork  string
	resource   string
	verbose    bool
	noCache    bool
}

func newBuildCommand() *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build TEMPLATE",
		Short: "Build a template into real VM images on this machine, with no server",
		Long: `Build runs an AIB image template the way AIB does, locally: it resolves the
source image from the catalog, boots a QEMU build VM on a copy-on-write
overlay, runs the customizers over SSH (surviving reboots), validates,
generalizes, powers off, and writes one disk per distribute target into the
output directory (managedImage and sharedImage targets as qcow2 or raw,
VHD targets as fixed VHDs), with customization.log and manifest.json.

The layer cache keeps the build VM (disk and memory) after each customizer:
a rebuild whose first customizers are unchanged (definition and downloaded
bytes) restores the VM after them and runs only the rest. Like Docker's
build cache, a step whose result depends on the network ("apt-get upgrade")
is reused as it was; change the step, or use --no-cache, to run it again.
See goldsmith cache ls|prune.

On a terminal it shows the phase, the customizer running and the elapsed
time while the log streams. Ctrl-C cancels and cleans up. Exit status 0 only
when the build succeeded.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.parameters, "parameters", "p", "", "ARM parameter file for deployment templates")
	fl.StringVar(&f.apiVersion, "api-version", "", "apiVersion for templates that carry none")
	fl.StringVar(&f.outputDir, "output-dir", "", "where the outputs go (default ./goldsmith-out/<template>-<time>)")
	fl.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "catalog, caches and state")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	fl.StringVar(&f.format, "format", "qcow2", "disk format for managedImage and sharedImage targets: qcow2 or raw")
	fl.StringVar(&f.accel, "accel", "", "force the accelerator: kvm or tcg (default: probe)")
	fl.StringVar(&f.vmNetwork, "vm-network", string(machine.NetworkIsolated), vmNetworkUsage)
	fl.StringVar(&f.resource, "resource", "", "which template of a deployment template to build, e.g. resources[1]")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log goldsmith's internals")
	fl.BoolVar(&f.noCache, "no-cache", false, "run every customizer: neither restore nor save layers")
	return cmd
}

func runBuild(ctx context.Context, stdout, stderr io.Writer, file string, f buildFlags) error {
	if f.output != "table" && f.output != "json" {
		return usageError("--output must be table or json, not %q", f.output)
	}
	if f.accel != "" && f.accel != "kvm" && f.accel != "tcg" {
		return usageError("--accel must be kvm or tcg, not %q", f.accel)
	}
	if err := checkVMNetwork(f.vmNetwork); err != nil {
		return err
	}
	tmpl, err := loadOne(file, f)
	if err != nil {
		return err
	}
	outDir := f.outputDir
	if outDir == "" {
		name := tmpl.Name
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		}
		outDir = filepath.Join("goldsmith-out", name+"-"+time.Now().Format("20060102-150405"))
	}

	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	b, _, err := newBuilder(f.dataDir, logger, f.accel, f.vmNetwork)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.dataDir, 0o755); err != nil {
		return err
	}
	workDir, release, err := newRunDir(f.dataDir, logger)
	if err != nil {
		return err
	}
	defer release()

	req := build.Request{Template: tmpl, WorkDir: workDir, OutputDir: outDir, ManagedFormat: f.format, LiveConsole: f.verbose,
		LayerCache: !f.noCache}
	var view *progressView
	if f.output == "table" {
		view = newProgressView(stderr)
		req.Log = view
		req.Progress = view.Update
		req.OnAbort = func(ctx context.Context, a build.Abort) {
			fmt.Fprintf(view, "\nThe build failed and errorHandling says abort: the build VM is kept running.\n  %s\nPress Ctrl-C to stop it and clean up.\n", a.SSHCommand)
			<-ctx.Done()
		}
	}
	res, err := b.Run(ctx, req)
	if view != nil {
		view.Close()
	}
	if f.output == "json" {
		return printBuildJSON(stdout, outDir, res, err)
	}
	if err != nil {
		return &exitError{code: exitFailure, err: fmt.Errorf("build failed: %w\nlog: %s", err, filepath.Join(outDir, "customization.log"))}
	}
	fmt.Fprintf(stdout, "Build succeeded in %s. Outputs in %s:\n", res.Manifest.Finished.Sub(res.Manifest.Started).Round(time.Second), outDir)
	for _, o := range res.Outputs {
		fmt.Fprintf(stdout, "  %-12s %-24s %s  %s\n", o.Type, o.RunOutputName, filepath.Base(o.Path), o.SHA256)
	}
	return nil
}

func printBuildJSON(w io.Writer, outDir string, res *build.Result, err error) error {
	out := struct {
		Status    string          `json:"status"`
		Error     string          `json:"error,omitempty"`
		OutputDir string          `json:"outputDir"`
		Outputs   []build.Output  `json:"outputs"`
		Manifest  *build.Manifest `json:"manifest,omitempty"`
	}{Status: "Succeeded", OutputDir: outDir, Outputs: []build.Output{}}
	if res != nil {
		out.Manifest = res.Manifest
		if res.Outputs != nil {
			out.Outputs = res.Outputs
		}
	}
	if err != nil {
		out.Status, out.Error = "Failed", err.Error()
		if errors.Is(err, build.ErrCanceled) {
			out.Status = "Canceled"
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if eerr := enc.Encode(out); eerr != nil {
		return eerr
	}
	if err != nil {
		return &exitError{code: exitFailure}
	}
	return nil
}

// newBuilder makes the build engine over the data dir's catalog (returned
// too: a server resolves sources with it) and caches.
func newBuilder(dataDir string, logger *slog.Logger, accel, network string) (*build.Builder, *catalog.Catalog, error) {
	run := disk.Exec{Log: logger}
	cat, err := catalog.Open(dataDir, catalog.WithLogger(logger), catalog.WithRunner(run))
	if err != nil {
		return nil, nil, fmt.Errorf("open the catalog: %w", err)
	}
	layers, err := openLayers(dataDir, logger)
	if err != nil {
		return nil, nil, err
	}
	return &build.Builder{
		Images:   source.Resolver{Platform: cat},
		Disks:    disk.QemuImg{Run: run},
		StartVM:  build.StartMachine,
		Fetcher:  &customize.Fetcher{CacheDir: filepath.Join(dataDir, "downloads")},
		CacheDir: filepath.Join(dataDir, "cache"),
		Accel:    machine.Accel(accel),
		Network:  machine.Network(network),
		Logger:   logger,
		Layers:   layers,
	}, cat, nil
}

// loadOne reads the template to build, refusing invalid ones with every
// problem listed.
func loadOne(file string, f buildFlags) (*template.Template, error) {
	params, err := readParameters(f.parameters)
	if err != nil {
		return nil, err
	}
	opts := template.LoadOptions{Options: template.Options{APIVersion: f.apiVersion}, Parameters: params}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &exitError{code: exitFailure, err: err}
	}
	found, err := template.Load(data, opts)
	if err != nil {
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("%s: %w", file, err)}
	}
	var pick *template.Found
	switch {
	case f.resource != "":
		for i := range found {
			if found[i].Resource == f.resource {
				pick = &found[i]
			}
		}
		if pick == nil {
			return nil, usageError("%s has no image template at %s", file, f.resource)
		}
	case len(found) > 1:
		var where []string
		for _, fd := range found {
			where = append(where, fd.Resource)
		}
		return nil, usageError("%s holds %d image templates (%s): pick one with --resource", file, len(found), strings.Join(where, ", "))
	default:
		pick = &found[0]
	}
	if pick.Err != nil {
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("%s is not a valid template: %w", file, pick.Err)}
	}
	if len(pick.Unresolved) > 0 {
		// Valid, but only a live ARM deployment can say what these are.
		return nil, &exitError{code: exitFailure, err: fmt.Errorf("%s cannot be built here: %s only a live ARM deployment knows (reference() and the like); give the values as parameters",
			file, strings.Join(pick.Unresolved, ", "))}
	}
	return pick.Template, nil
}

const vmNetworkUsage = "build VMs' network: isolated (passt: the outside network, not this host's loopback) or slirp (QEMU's own: reaches every service on this host's 127.0.0.1; only where passt is missing)"

func checkVMNetwork(n string) error {
	switch machine.Network(n) {
	case machine.NetworkIsolated, machine.NetworkSlirp:
		return nil
	}
	return usageError("--vm-network must be %s or %s, not %q", machine.NetworkIsolated, machine.NetworkSlirp, n)
}
