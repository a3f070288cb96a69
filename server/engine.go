package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/download"
	"github.com/goldsmith-dev/goldsmith/runner"
)

// engine runs the service's builds with the build engine: it adapts
// build.Builder to runner.Executor.
type engine struct {
	builder build.Builder
}

// Execute implements runner.Executor.
func (e *engine) Execute(ctx context.Context, run runner.Request, log io.Writer, progress func(build.Phase, string)) (runner.Result, error) {
	b := e.builder
	// The service downloaded and verified every script and file when the
	// template was submitted: the build reads those copies and nothing else.
	staged := make(map[string]download.Local, len(run.Files))
	for uri, f := range run.Files {
		staged[uri] = download.Local{URI: uri, Path: f.Path, SHA256: f.SHA256, Size: f.Size}
	}
	b.Fetcher = customize.NewStagedFetcher(staged)
	req := build.Request{
		Template:  run.Template,
		WorkDir:   filepath.Join(run.WorkDir, "scratch"),
		OutputDir: filepath.Join(run.WorkDir, "out"),
		Log:       log,
		// AIB builds afresh on every run; a template opts in to the layer
		// cache with a tag.
		LayerCache: layerCacheOptIn(run.Template.Tags),
		Progress: func(p build.Progress) {
			detail := p.Message
			if p.Steps > 0 {
				detail = fmt.Sprintf("%s %d/%d %q (%s)", p.Phase, p.Step, p.Steps, p.StepName, p.StepType)
			}
			progress(p.Phase, detail)
		},
	}
	res, err := b.Run(ctx, req)
	if res != nil && res.Manifest != nil && run.ManifestPath != "" {
		if werr := writeManifest(run.ManifestPath, res.Manifest); werr != nil {
			fmt.Fprintf(log, "goldsmith: keep the build manifest: %v\n", werr)
		}
	}
	if err != nil {
		return runner.Result{}, err
	}
	// goldsmith builds BIOS (Hyper-V generation 1) images.
	return runner.Result{Outputs: res.Outputs, OSType: osTypeName(res), HyperVGeneration: "V1"}, nil
}

// noBuilds is the Executor of an API-only node (Config.Workers 0), whose
// queue never hands it a run.
type noBuilds struct{}

func (noBuilds) Execute(context.Context, runner.Request, io.Writer, func(build.Phase, string)) (runner.Result, error) {
	return runner.Result{}, errors.New("this goldsmith node runs no builds (serve --workers 0)")
}

// writeManifest keeps the build's manifest where the runner asked: the
// build's own copy goes with the run's scratch directory.
func writeManifest(path string, m *build.Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LayerCacheTag is the template tag that turns the layer cache on for a
// template's runs: goldsmith.layerCache: enabled.
const LayerCacheTag = "goldsmith.layerCache"

func layerCacheOptIn(tags map[string]string) bool {
	for k, v := range tags {
		if strings.EqualFold(k, LayerCacheTag) && strings.EqualFold(v, "enabled") {
			return true
		}
	}
	return false
}

func osTypeName(res *build.Result) string {
	if res.Manifest != nil && res.Manifest.OSType != "" {
		return string(res.Manifest.OSType)
	}
	return "Linux"
}
