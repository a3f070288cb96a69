package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/template"
)

// redistributeHandler runs a retried distribution (queued by
// Queue.Redistribute) from the run's kept build outputs, without building;
// an interruption ends the run as a run's does.
type redistributeHandler struct{ runHandler }

func (h redistributeHandler) Work(ctx context.Context, job jobs.Job) error {
	r := h.r
	run, t, log, err := r.load(ctx, job)
	if err != nil || log == nil {
		return err
	}
	defer log.Close()
	logf(log, "goldsmith: retrying the distribution of run %s from its kept build outputs", run.RunID)
	types := map[string]template.DistributeType{}
	for _, d := range t.Template.Properties.Distribute {
		types[strings.ToLower(d.RunOutputName)] = d.Type
	}
	var res Result
	gone := map[string]error{}
	for _, k := range run.Kept {
		o := build.Output{RunOutputName: k.RunOutputName, Type: types[strings.ToLower(k.RunOutputName)], Path: r.abs(k.Path), Format: k.Format,
			SHA256: k.SHA256, Size: k.Size}
		res.OSType, res.HyperVGeneration = k.OSType, k.HyperVGeneration // one image: the same for every output
		if _, err := os.Stat(o.Path); err != nil {
			gone[strings.ToLower(k.RunOutputName)] = fmt.Errorf("the kept build output is gone (%v): run the template again", err)
		}
		res.Outputs = append(res.Outputs, o)
	}
	err = r.distribute(ctx, job, run.ID, res, gone, log, true)
	if err != nil && !stopped(ctx) {
		end := resource.RunEnd{State: resource.RunFailed, Message: "goldsmith failed to retry the distribution: " + err.Error()}
		if ferr := r.finish(ctx, job, run.ID, end); ferr != nil {
			return errors.Join(err, ferr)
		}
	}
	return err
}
