package runner

// Distribution: every target of a finished build is published at once
// (each in its own goroutine, by Records.Publish). Each target gets a
// runOutput. When some targets fail, the run is PartiallySucceeded (Failed
// when all do) with a message naming each failed target and why, and the
// build outputs the failed targets need are kept so the distribution can be
// retried without building again.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/disk"
	"github.com/goldsmith-dev/goldsmith/distribute"
	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

// target is one distribute target on its way to publication.
type target struct {
	dist template.Distributor
	out  build.Output
	// the image's, from the build's result
	osType, hyperVGeneration string
	src                      *distribute.Source
	err                      error
	published                resource.Published
	kept                     bool // succeeded in an earlier attempt
}

// distribute publishes a finished build's outputs and ends the run; the
// targets whose output is in unusable (by lower-case runOutputName) fail
// with its error. With retry, only the targets whose runOutput has not
// succeeded are published.
func (r *Runner) distribute(ctx context.Context, job jobs.Job, runID string, res Result, unusable map[string]error, log io.Writer, retry bool) error {
	var t resource.ImageTemplate
	var run resource.Run
	prev := map[string]resource.Resource{}
	err := r.st.View(ctx, func(tx *store.Tx) error {
		var tp *resource.ImageTemplate
		var err error
		if run, tp, err = r.records.Run(ctx, tx, runID); err != nil {
			return err
		}
		if tp == nil {
			return fmt.Errorf("image template %s: %w", run.TemplateID, store.ErrNotFound)
		}
		t = *tp
		if !retry {
			return nil
		}
		outs, err := r.records.RunOutputs(ctx, tx, t.ID)
		for _, o := range outs {
			prev[strings.ToLower(o.Name)] = o
		}
		return err
	})
	if err != nil {
		return err
	}
	byName := map[string]build.Output{}
	for _, o := range res.Outputs {
		byName[strings.ToLower(o.RunOutputName)] = o
	}
	sources := map[string]*distribute.Source{}
	var targets []*target
	var wg sync.WaitGroup
	for _, d := range t.Template.Properties.Distribute {
		tg := &target{dist: d, osType: res.OSType, hyperVGeneration: res.HyperVGeneration}
		targets = append(targets, tg)
		if p, ok := prev[strings.ToLower(d.RunOutputName)]; ok && p.Properties["provisioningState"] == resource.StateSucceeded {
			tg.kept = true
			continue
		}
		o, ok := byName[strings.ToLower(d.RunOutputName)]
		switch {
		case !ok:
			tg.err = fmt.Errorf("the build produced no output for %s", d.RunOutputName)
			continue
		case unusable[strings.ToLower(d.RunOutputName)] != nil:
			tg.err = unusable[strings.ToLower(d.RunOutputName)]
			continue
		}
		tg.out = o
		format := o.Format
		if format == "" {
			format = "raw"
		}
		key := strings.ToLower(o.SHA256) + "/" + o.Format
		if sources[key] == nil {
			sources[key] = distribute.NewSource(o.Path, o.SHA256, format, o.Size)
			// The Executor hashed the file it wrote (Output.SHA256); kept
			// outputs of a retry may be copies nobody hashed.
			sources[key].Trusted = !retry
		}
		tg.src = sources[key]
		logf(log, "goldsmith: distributing %s (%s) from %s", d.RunOutputName, d.Type, o.Path)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			tg.published, tg.err = r.records.Publish(ctx, t, run, resource.Publication{Target: d, Output: o, Source: tg.src,
				OSType: tg.osType, HyperVGeneration: tg.hyperVGeneration, Logf: func(format string, args ...any) { logf(log, format, args...) }})
			if tg.err == nil {
				logf(log, "goldsmith: distributed %s to %s%s in %s", d.RunOutputName, tg.published.ArtifactID, tg.published.ArtifactURI, time.Since(start).Round(time.Millisecond))
			}
		}()
	}
	wg.Wait()
	kept, keptDir, err := r.keepOutputs(ctx, run, targets)
	if err != nil {
		logf(log, "goldsmith: could not keep the outputs of the failed targets for a retry: %v", err)
	}
	for _, tg := range targets {
		if !tg.kept && tg.err != nil {
			logf(log, "goldsmith: distributing %s failed: %v", tg.dist.RunOutputName, tg.err)
		}
	}
	ctx = context.WithoutCancel(ctx)
	r.syncLog(ctx, run.ID)
	err = r.st.Update(ctx, func(tx *store.Tx) error {
		cur, _, err := r.records.Run(ctx, tx, run.ID)
		switch {
		case err != nil:
			return err
		case cur.State == resource.RunCanceling:
			return r.finishTx(ctx, tx, job, run.ID, resource.RunEnd{State: resource.RunCanceled, Message: "The run was canceled during Distributing."})
		case !cur.Active():
			return nil
		}
		if len(kept) == 0 && run.KeptDir != "" && run.KeptDir != keptDir {
			old := run.KeptDir
			tx.AfterCommit(func() { r.removeFiles(old) })
		}
		return r.finishTx(ctx, tx, job, run.ID, outcome(t.ID, run.RunID, targets, kept, keptDir))
	})
	if err != nil && keptDir != "" && keptDir != run.KeptDir {
		r.removeFiles(keptDir)
	}
	return err
}

// outcome is how a distribution ends the run of template templateID: the
// targets attempted now get their runOutputs, and the run succeeds, partly
// succeeds or fails by how many targets failed.
func outcome(templateID, runID string, targets []*target, kept []resource.KeptOutput, keptDir string) resource.RunEnd {
	dist := &resource.Distribution{Kept: kept, KeptDir: keptDir}
	var failed []string
	for _, tg := range targets {
		if tg.kept {
			continue
		}
		if tg.err != nil {
			failed = append(failed, fmt.Sprintf("%s (%s): %v", tg.dist.RunOutputName, tg.dist.Type, tg.err))
		}
		dist.Outputs = append(dist.Outputs, resource.RunOutput{Name: tg.dist.RunOutputName, Type: tg.dist.Type, Succeeded: tg.err == nil,
			Published: tg.published})
	}
	end := resource.RunEnd{State: resource.RunSucceeded, Distribution: dist}
	switch {
	case len(failed) == len(targets):
		end.State = resource.RunFailed
		end.Message = fmt.Sprintf("Failed in distributing %d images out of total %d: %s", len(failed), len(targets), strings.Join(failed, "; "))
		end.Error = &resource.OperationError{Code: "InternalOperationError", Message: end.Message}
	case len(failed) > 0:
		end.State = resource.RunPartiallySucceeded
		end.Message = fmt.Sprintf("Failed in distributing %d images out of total %d: %s", len(failed), len(targets), strings.Join(failed, "; "))
	}
	if len(kept) > 0 {
		end.Message += " The build outputs are kept: retry the distribution without building again (POST /goldsmith/v1" + templateID + "/runs/" + runID + "/distribute)."
	}
	return end
}

// keepOutputs keeps (hard links, or copies) the outputs failed targets
// need, so the distribution can be retried after the run's scratch space
// is gone. Outputs kept by an earlier attempt stay where they are.
func (r *Runner) keepOutputs(ctx context.Context, run resource.Run, targets []*target) ([]resource.KeptOutput, string, error) {
	dir := path.Join("kept", run.RunID)
	var kept []resource.KeptOutput
	for _, tg := range targets {
		if tg.err == nil || tg.kept || tg.out.Path == "" {
			continue
		}
		o := tg.out
		rel := r.rel(o.Path)
		if !strings.HasPrefix(rel, dir+"/") {
			format := o.Format
			if format == "" {
				format = "raw"
			}
			rel = path.Join(dir, resource.SafeName(o.RunOutputName)+"."+format)
			dst := r.abs(rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return kept, dir, err
			}
			if err := os.Link(o.Path, dst); err != nil {
				if _, statErr := os.Stat(o.Path); statErr != nil {
					continue // nothing to keep
				}
				if err := disk.CopySparse(ctx, dst, o.Path); err != nil {
					return kept, dir, err
				}
			}
		}
		kept = append(kept, resource.KeptOutput{RunOutputName: o.RunOutputName, Path: rel, Format: o.Format, SHA256: o.SHA256, Size: o.Size,
			OSType: tg.osType, HyperVGeneration: tg.hyperVGeneration})
	}
	if len(kept) == 0 {
		return nil, "", nil
	}
	return kept, dir, nil
}
