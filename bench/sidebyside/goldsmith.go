package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/template"
)

// goldsmithSide runs `goldsmith build` on goldsmith.json.
type goldsmithSide struct {
	exec     execer
	bin      string
	template string // goldsmith.json, written once per run
	dataDir  string
	accel    string
	vmSize   string
	version  string // the base image's exact catalog version
}

func (g goldsmithSide) Build(ctx context.Context, j job) (*buildRun, error) {
	r := &buildRun{Side: sideGoldsmith, Kind: j.Kind, Dir: j.Dir}
	params, err := goldsmithParameters(j.Work, j.CheckText, g.vmSize, g.version)
	if err != nil {
		return r, err
	}
	paramFile := filepath.Join(j.Dir, "parameters.json")
	if err := os.WriteFile(paramFile, params, 0o644); err != nil {
		return r, err
	}
	stdout, err := os.Create(filepath.Join(j.Dir, "build.json"))
	if err != nil {
		return r, err
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(j.Dir, "goldsmith.log"))
	if err != nil {
		return r, err
	}
	defer stderr.Close()
	outDir := filepath.Join(j.Dir, "out")
	start := time.Now()
	err = g.exec.Run(ctx, command{
		Path: g.bin,
		Args: []string{"build", g.template, "--parameters", paramFile, "--output-dir", outDir,
			"--data-dir", g.dataDir, "--accel", g.accel, "--output", "json"},
		Dir: j.Dir, Stdout: stdout, Stderr: stderr,
	})
	r.Seconds = time.Since(start).Seconds()
	m, merr := readManifest(filepath.Join(outDir, "manifest.json"))
	if m != nil {
		r.Manifest = filepath.Join(outDir, "manifest.json")
		for _, p := range m.Phases {
			r.Phases = append(r.Phases, phase{Name: string(p.Phase), Seconds: p.Seconds})
		}
		for _, s := range m.Steps {
			r.Steps = append(r.Steps, phase{Name: s.Name, Seconds: s.Seconds})
		}
		for _, o := range m.Outputs {
			if o.Type == template.DistributeVHD {
				r.Artifact, r.ArtifactBytes = o.Path, o.Size
			}
		}
	}
	switch {
	case err != nil:
		return r, fmt.Errorf("goldsmith build (log %s): %w", filepath.Join(outDir, "customization.log"), err)
	case merr != nil:
		return r, merr
	case m.Result != "Succeeded":
		return r, fmt.Errorf("goldsmith build: manifest says %s: %s", m.Result, m.Message)
	case r.Artifact == "":
		return r, fmt.Errorf("goldsmith build: no VHD in %s", r.Manifest)
	}
	return r, nil
}

func readManifest(path string) (*build.Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("goldsmith manifest: %w", err)
	}
	var m build.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("goldsmith manifest %s: %w", path, err)
	}
	return &m, nil
}
