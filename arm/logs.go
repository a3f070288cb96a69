package arm

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/resourceid"
)

// goldsmith serves goldsmith's own endpoints, under /goldsmith/v1. They
// need the same bearer token as the ARM API but no api-version, and answer
// errors in ARM's wrapped envelope.
//
//	GET /goldsmith/v1/{templateId}/runs
//	    The template's runs, oldest first: {"value":[{runId, number, state,
//	    subState, message, startTime, endTime, logUrl}]}. {templateId} is the
//	    template's resource id, e.g. /subscriptions/{s}/resourceGroups/{rg}/
//	    providers/Microsoft.VirtualMachineImages/imageTemplates/{name}.
//	GET /goldsmith/v1/{templateId}/runs/{runId}
//	    One run; {runId} "latest" is the newest.
//	GET /goldsmith/v1/{templateId}/runs/{runId}/log[?follow=true]
//	    The run's customization.log (kept in the staging resource group,
//	    text/plain). With follow=true the answer streams: it stays open,
//	    sending lines as the build writes them, and ends when the run ends.
//	    Headers X-Goldsmith-Run-Id and X-Goldsmith-Run-State describe the run.
//	GET /goldsmith/v1/blobs/{path}
//	    Downloads an artifact (a runOutput's artifactUri for VHD outputs,
//	    the disks behind images and gallery versions) or a staged file;
//	    supports Range requests.
func (s *Server) goldsmith(rq *request, segs []string) {
	if rq.r.Method != http.MethodGet && rq.r.Method != http.MethodHead {
		methodNotAllowed(rq)
		return
	}
	if len(segs) >= 2 && strings.EqualFold(segs[0], "blobs") {
		s.blob(rq, segs[1:])
		return
	}
	// {templateId}/runs[/{runId}[/log]]
	i := -1
	for j, seg := range segs {
		if strings.EqualFold(seg, "runs") {
			i = j
		}
	}
	if i < 0 {
		s.noRoute(rq)
		return
	}
	id, err := resourceid.ParseAs("/"+strings.Join(segs[:i], "/"), resourceid.Kind{Type: resource.TypeImageTemplate, NeedsGroup: true,
		Example: "/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.VirtualMachineImages/imageTemplates/{name}"})
	if err != nil {
		writeError(rq.w, errorf(resource.KindBadRequest, "InvalidResourceId", "%v", err), wrapped)
		return
	}
	rest := segs[i+1:]
	switch {
	case len(rest) == 0:
		runs, err := s.svc.ListRuns(rq.ctx, id.String())
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		items := make([]any, len(runs))
		for k, r := range runs {
			items[k] = s.renderRun(rq, r)
		}
		writeJSON(rq.w, http.StatusOK, map[string]any{"value": items})
	case len(rest) == 1:
		r, err := s.svc.GetRun(rq.ctx, id.String(), rest[0])
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		writeJSON(rq.w, http.StatusOK, s.renderRun(rq, r))
	case len(rest) == 2 && strings.EqualFold(rest[1], "log"):
		s.runLog(rq, id.String(), rest[0])
	default:
		s.noRoute(rq)
	}
}

func (s *Server) renderRun(rq *request, r resource.Run) map[string]any {
	m := map[string]any{
		"id": r.ID, "runId": r.RunID, "number": r.Number, "state": r.State, "subState": r.SubState,
		"message": r.Message, "startTime": r.StartTime,
		"logUrl": rq.base + "/goldsmith/v1" + r.TemplateID + "/runs/" + r.RunID + "/log",
	}
	if r.EndTime != nil {
		m["endTime"] = *r.EndTime
	}
	return m
}

func (s *Server) runLog(rq *request, templateID, runID string) {
	follow := rq.r.URL.Query().Get("follow")
	streaming := follow == "true" || follow == "1"
	rd, run, err := s.svc.LogReader(rq.ctx, templateID, runID, streaming)
	if err != nil {
		writeError(rq.w, err, wrapped)
		return
	}
	defer rd.Close()
	h := rq.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Goldsmith-Run-Id", run.RunID)
	h.Set("X-Goldsmith-Run-State", run.State)
	h.Set("Cache-Control", "no-store")
	if streaming {
		h.Set("X-Content-Type-Options", "nosniff")
	}
	rq.w.WriteHeader(http.StatusOK)
	if rq.r.Method == http.MethodHead {
		return
	}
	flusher, _ := rq.w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := rd.Read(buf)
		if n > 0 {
			if _, werr := rq.w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && rq.ctx.Err() == nil {
				s.log.Warn("stream run log", "template", templateID, "run", runID, "err", err)
			}
			return
		}
	}
}

// blob serves a file under the data directory's artifacts/ or staging/.
func (s *Server) blob(rq *request, segs []string) {
	rel := path.Clean(strings.Join(segs, "/"))
	if strings.HasPrefix(rel, "..") || strings.Contains(rel, "/../") ||
		!(strings.HasPrefix(rel, "artifacts/") || strings.HasPrefix(rel, "staging/")) {
		writeError(rq.w, errorf(resource.KindNotFound, "BlobNotFound", "The blob '%s' does not exist.", rel), wrapped)
		return
	}
	p := filepath.Join(s.svc.DataDir(), filepath.FromSlash(rel))
	f, err := os.Open(p)
	if err != nil {
		writeError(rq.w, errorf(resource.KindNotFound, "BlobNotFound", "The blob '%s' does not exist.", rel), wrapped)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		writeError(rq.w, errorf(resource.KindNotFound, "BlobNotFound", "The blob '%s' does not exist.", rel), wrapped)
		return
	}
	rq.w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(rq.w, rq.r, st.Name(), st.ModTime(), f)
}
