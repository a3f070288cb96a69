package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/customize"
	"github.com/goldsmith-dev/goldsmith/resource"
)

// engine runs the service's builds with the build engine: it adapts
// build.Builder to resource.Executor.
type engine struct {
	builder build.Builder
}

// Execute implements resource.Executor.
func (e *engine) Execute(ctx context.Context, run resource.RunRequest, log io.Writer, progress func(build.Phase, string)) (resource.RunResult, error) {
	b := e.builder
	// The service downloaded and verified every script and file when the
	// template was submitted: serve those copies instead of fetching again.
	b.Fetcher = &customize.Fetcher{Client: &http.Client{Transport: stagedFiles{files: run.Files, next: http.DefaultTransport}}}
	req := build.Request{
		Template:  run.Template,
		WorkDir:   filepath.Join(run.WorkDir, "scratch"),
		OutputDir: filepath.Join(run.WorkDir, "out"),
		Log:       log,
		Progress: func(p build.Progress) {
			detail := p.Message
			if p.Steps > 0 {
				detail = fmt.Sprintf("%s %d/%d %q (%s)", p.Phase, p.Step, p.Steps, p.StepName, p.StepType)
			}
			progress(p.Phase, detail)
		},
	}
	res, err := b.Run(ctx, req)
	if err != nil {
		return resource.RunResult{}, err
	}
	// goldsmith builds BIOS (Hyper-V generation 1) images.
	return resource.RunResult{Outputs: res.Outputs, OSType: osTypeName(res), HyperVGeneration: "V1"}, nil
}

func osTypeName(res *build.Result) string {
	if res.Manifest != nil && res.Manifest.OSType != "" {
		return string(res.Manifest.OSType)
	}
	return "Linux"
}

// stagedFiles answers GETs for URLs the service has verified local copies
// of, and passes other requests on.
type stagedFiles struct {
	files map[string]resource.LocalFile
	next  http.RoundTripper
}

func (s stagedFiles) RoundTrip(req *http.Request) (*http.Response, error) {
	f, ok := s.files[req.URL.String()]
	if !ok || req.Method != http.MethodGet {
		return s.next.RoundTrip(req)
	}
	body, err := os.Open(f.Path)
	if err != nil {
		return s.next.RoundTrip(req)
	}
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: body, ContentLength: f.Size, Request: req,
	}, nil
}
