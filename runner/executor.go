package runner

import (
	"context"
	"io"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/template"
)

// Executor builds the image of one run. The build engine implements it
// (package server adapts it).
type Executor interface {
	// Execute builds run.Template. It reports each phase it enters through
	// progress (Building, Customizing, Optimizing, Validating, Distributing)
	// with a short detail, writes the customization log to log, and returns
	// one Output per distribute target, or an error whose message becomes
	// lastRunStatus.message. It must stop promptly when ctx is canceled (a
	// cancel request, the build timeout or shutdown) and return ctx's error.
	Execute(ctx context.Context, run Request, log io.Writer, progress func(build.Phase, string)) (Result, error)
}

// Request is what an Executor gets.
type Request struct {
	RunID      string
	TemplateID string
	Template   *template.Template
	// Files maps every script, file and ISO URI the template references to
	// its verified copy in WorkDir, fetched from the staging store: no need
	// to download again.
	Files map[string]LocalFile
	// WorkDir is the run's scratch directory. goldsmith removes it after the
	// run, and after a crash. An Executor that starts processes (QEMU)
	// records each one's pid in a *.pid file here (machine.WritePIDFile),
	// so that the next server start can stop processes a killed server left
	// behind.
	WorkDir string
	// ManifestPath is where the Executor writes the build's manifest
	// (build.Manifest as JSON), even when the build fails: it is kept
	// beside the run's log, for the phase timeline and each customizer's
	// duration and exit code.
	ManifestPath string
}

// LocalFile is a verified local copy of a downloaded file.
type LocalFile struct {
	Path   string // absolute
	SHA256 string
	Size   int64
}

// Result is what a build produced: one output per distribute target
// (several may name the same file; goldsmith copies what it keeps), all of
// one image.
type Result struct {
	Outputs          []build.Output
	OSType           string // Linux or Windows
	HyperVGeneration string // V1 or V2
}
