package console

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
	"github.com/goldsmith-dev/goldsmith/internal/httpstream"
	"github.com/goldsmith-dev/goldsmith/resource"
)

// phaseBar is one phase on the timeline.
type phaseBar struct {
	Name     string
	Seconds  float64
	Offset   float64 // seconds from the run's start
	Current  bool
	Measured bool // the seconds come from the build's manifest
}

// outputRow is one output of a run.
type outputRow struct {
	Name, Type, Format, SHA256, State, ArtifactID, Download string
	Size                                                    int64
}

// failure is what the top of a failed run's page says.
type failure struct {
	Message    string
	Customizer *build.ManifestStep
	LastLines  []string
}

type runData struct {
	Run          runRow
	TemplateLink string
	Timeline     []phaseBar
	Total        float64
	Steps        []build.ManifestStep
	Validators   []build.ManifestStep
	Outputs      []outputRow
	Failure      *failure
	Manifest     *build.Manifest
	// The log as the page shows it without JavaScript: its last lines.
	LogTail    string
	LogSize    int64
	LogSkipped bool
	LogLink    string
}

// logTailBytes is how much of the end of the log a page carries; the rest
// is a link away (a build log can have 100k lines).
const logTailBytes = 64 << 10

// runPage shows one run; its "live" block (state, failure, timeline,
// customizers, outputs) is what the script refreshes while it runs.
func (c *Console) runPage(rq *request, templateID, runID string) {
	r, err := c.svc.GetRun(rq.ctx, templateID, runID)
	if err != nil {
		if resource.IsNotFound(err) {
			c.notFound(rq, resource.AsError(err).Message)
		} else {
			c.serverError(rq, "read run", err)
		}
		return
	}
	d := runData{Run: c.runRow(r), TemplateLink: templateLink(r.TemplateID), LogLink: runLink(r) + "/log"}
	if d.Manifest, err = c.svc.RunManifest(r); err != nil {
		c.log.Warn("console: run manifest", "run", r.ID, "err", err)
	}
	d.Timeline, d.Total = c.timeline(r, d.Manifest)
	if m := d.Manifest; m != nil {
		d.Steps, d.Validators = m.Steps, m.Validators
	}
	d.Outputs = c.outputs(rq, r, d.Manifest)
	tail, size, skipped := c.logTail(r)
	d.LogTail, d.LogSize, d.LogSkipped = tail, size, skipped
	if r.State == resource.RunFailed || r.State == resource.RunPartiallySucceeded {
		f := &failure{Message: r.Message}
		for i, s := range d.Steps {
			if s.ExitCode != 0 || s.Error != "" {
				f.Customizer = &d.Steps[i]
			}
		}
		lines := strings.Split(strings.TrimRight(tail, "\n"), "\n")
		f.LastLines = lines[max(0, len(lines)-15):]
		d.Failure = f
	}
	title := "Run " + strconv.Itoa(r.Number) + " of " + d.Run.Template.Name
	c.show(rq, "run", "overview", title, r.Active(), d)
}

// timeline lays out the phases the run went through: when each began comes
// from the run's record (live while it runs); how long each took, once the
// build has ended, from its manifest.
func (c *Console) timeline(r resource.Run, m *build.Manifest) ([]phaseBar, float64) {
	end := c.now()
	if r.EndTime != nil {
		end = *r.EndTime
	}
	measured := map[string]float64{}
	if m != nil {
		for _, p := range m.Phases {
			measured[p.Phase.RunSubState()] += p.Seconds
		}
	}
	starts := append([]resource.RunPhase{{Name: string(build.PhaseQueued), Start: r.StartTime}}, r.Phases...)
	var bars []phaseBar
	for i, p := range starts {
		stop := end
		if i+1 < len(starts) {
			stop = starts[i+1].Start
		}
		b := phaseBar{Name: p.Name, Seconds: stop.Sub(p.Start).Seconds(), Offset: p.Start.Sub(r.StartTime).Seconds(),
			Current: i == len(starts)-1 && r.Active()}
		if s, ok := measured[p.Name]; ok && !b.Current {
			b.Seconds, b.Measured = s, true
			delete(measured, p.Name) // a phase entered twice keeps the manifest's total once
		}
		bars = append(bars, b)
	}
	total := end.Sub(r.StartTime).Seconds()
	for _, b := range bars {
		total = max(total, b.Offset+b.Seconds)
	}
	return bars, total
}

// outputs joins the build's outputs (format, size, sha256) with the
// template's runOutputs (where each went); runOutputs belong to the
// template's latest run only.
func (c *Console) outputs(rq *request, r resource.Run, m *build.Manifest) []outputRow {
	var rows []outputRow
	index := map[string]int{}
	if m != nil {
		for _, o := range m.Outputs {
			index[o.RunOutputName] = len(rows)
			rows = append(rows, outputRow{Name: o.RunOutputName, Type: string(o.Type), Format: o.Format, SHA256: o.SHA256, Size: o.Size})
		}
	}
	latest, err := c.svc.GetRun(rq.ctx, r.TemplateID, "latest")
	if err != nil || latest.RunID != r.RunID || r.Active() {
		return rows
	}
	outs, _, err := c.svc.ListRunOutputs(rq.ctx, r.TemplateID, resource.Page{})
	if err != nil {
		return rows
	}
	for _, o := range outs {
		i, ok := index[o.Name]
		if !ok {
			i = len(rows)
			rows = append(rows, outputRow{Name: o.Name})
		}
		row := &rows[i]
		row.State, _ = o.Properties["provisioningState"].(string)
		row.ArtifactID, _ = o.Properties["artifactId"].(string)
		if uri, _ := o.Properties["artifactUri"].(string); uri != "" {
			row.Download = c.blobURL(rq.ctx, uri)
		}
	}
	return rows
}

// blobURL turns a stored artifactUri into an expiring download link, valid
// an hour: the object store's presigned URL, or the API's signed download
// link (a relative URL: the page and the API share the origin).
func (c *Console) blobURL(ctx context.Context, uri string) string {
	l, err := c.svc.ArtifactLink(ctx, uri, time.Hour)
	if err != nil || l.Rel == "" {
		return l.URL
	}
	q := c.svc.BlobSigner().Sign(l.Rel, c.now().Add(time.Hour))
	return "/goldsmith/v1/blobs/" + l.Rel + "?" + q.Encode()
}

// logTail reads the end of the run's log: at most logTailBytes, from a
// line start.
func (c *Console) logTail(r resource.Run) (tail string, size int64, skipped bool) {
	f, err := os.Open(filepath.Join(c.svc.DataDir(), filepath.FromSlash(r.LogPath)))
	if err != nil {
		return "", 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", 0, false
	}
	size = st.Size()
	from := max(0, size-logTailBytes)
	buf := make([]byte, size-from)
	n, _ := f.ReadAt(buf, from)
	buf = buf[:n]
	if from > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return string(buf), from + int64(n), from > 0
}

// runLog serves the run's log as text: all of it, or with follow=1 from
// byte offset on, streamed as the build writes it until the run ends.
func (c *Console) runLog(rq *request, templateID, runID string) {
	q := rq.r.URL.Query()
	follow := q.Get("follow") == "1"
	rd, _, err := c.svc.LogReader(rq.ctx, templateID, runID, follow)
	if err != nil {
		if resource.IsNotFound(err) {
			c.notFound(rq, resource.AsError(err).Message)
		} else {
			c.serverError(rq, "read log", err)
		}
		return
	}
	defer rd.Close()
	if off, err := strconv.ParseInt(q.Get("offset"), 10, 64); err == nil && off > 0 {
		if _, err := io.CopyN(io.Discard, rd, off); err != nil && !errors.Is(err, io.EOF) {
			return
		}
	}
	h := rq.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	rq.w.WriteHeader(http.StatusOK)
	_ = httpstream.Copy(rq.w, rd) // a broken log read ends the stream; the page shows what came
}
