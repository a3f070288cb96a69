package build

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/goldsmith-dev/goldsmith/customize"
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
	// template was submitted: serve those copies instead of fetching again.
	b.Fetcher = &customize.Fetcher{Client: &http.Client{Transport: stagedFiles{files: run.Files, next: http.DefaultTransport}}}
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
