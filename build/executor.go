package build

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/download"
	"github.com/goldsmith-dev/goldsmith/resource"
)

// Executor runs the service's builds (goldsmith serve) with a Builder.
type Executor struct {
	Builder *Builder
}

// Execute implements resource.Executor.
func (e Executor) Execute(ctx context.Context, run resource.RunRequest, log io.Writer, progress func(resource.Phase, string)) (resource.RunResult, error) {
	b := *e.Builder
	// The service downloaded and verified every script and file when the
	// template was submitted: the build reads those copies and nothing else.
	staged := make(map[string]download.Local, len(run.Files))
	for uri, f := range run.Files {
		staged[uri] = download.Local{URI: uri, Path: f.Path, SHA256: f.SHA256, Size: f.Size}
	}
	b.Fetcher = customize.NewStagedFetcher(staged)
	req := Request{
		Template:  run.Template,
		WorkDir:   filepath.Join(run.WorkDir, "scratch"),
		OutputDir: filepath.Join(run.WorkDir, "out"),
		Log:       log,
		Progress: func(p Progress) {
			detail := p.Message
			if p.Steps > 0 {
				detail = fmt.Sprintf("%s %d/%d %q (%s)", p.Phase, p.Step, p.Steps, p.StepName, p.StepType)
			}
			progress(resource.Phase(p.Phase.RunSubState()), detail)
		},
	}
	res, err := b.Run(ctx, req)
	if err != nil {
		return resource.RunResult{}, err
	}
	out := resource.RunResult{}
	for _, o := range res.Outputs {
		out.Outputs = append(out.Outputs, resource.Output{
			RunOutputName: o.RunOutputName, Type: o.Type, Path: o.Path, Format: o.Format,
			SHA256: o.SHA256, Size: o.Size,
			OSType: osTypeName(res), HyperVGeneration: "V1",
		})
	}
	return out, nil
}

func osTypeName(res *Result) string {
	if res.Manifest != nil && res.Manifest.OSType != "" {
		return string(res.Manifest.OSType)
	}
	return "Linux"
}
