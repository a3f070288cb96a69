package arm

import (
	"errors"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/internal/httpstream"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/template"
)

// goldsmith serves goldsmith's own endpoints, under /goldsmith/v1. They
// need the same bearer token as the ARM API but no api-version, and answer
// errors in ARM's wrapped envelope.
//
//	GET /goldsmith/v1/{templateId}/runs
//	    The template's runs, oldest first: {"value":[{runId, number, state,
//	    subState, message, startTime, endTime, startedBy, logUrl}]}. {templateId} is the
//	    template's resource id, e.g. /subscriptions/{s}/resourceGroups/{rg}/
//	    providers/Microsoft.VirtualMachineImages/imageTemplates/{name}.
//	GET /goldsmith/v1/{templateId}/runs/{runId}
//	    One run; {runId} "latest" is the newest.
//	GET /goldsmith/v1/{templateId}/runs/{runId}/log[?follow=true]
//	    The run's customization.log (kept in the staging resource group,
//	    text/plain). With follow=true the answer streams: it stays open,
//	    sending lines as the build writes them, and ends when the run ends.
//	    Headers X-Goldsmith-Run-Id and X-Goldsmith-Run-State describe the run.
//	POST /goldsmith/v1/{templateId}/runs/{runId}/distribute
//	    Retries the distribution of a run whose targets partly or wholly
//	    failed, from the build outputs goldsmith kept, without building
//	    again (202 with Azure-AsyncOperation and Location, as a run).
//	GET /goldsmith/v1/workers
//	    The processes on the job queue's database, from their heartbeats:
//	    {"value":[{name, node, capacity, running, lastHeartbeat, alive}]};
//	    capacity is how many jobs each runs at once (0: an API-only node).
//	GET /goldsmith/v1/blobs/{path}?sv=1&sp=r&se=…&sig=…
//	    Downloads a file of a staging group (a runOutput's artifactUri for
//	    VHD outputs, a staged file); supports Range requests. A signed URL
//	    (as runOutputs hand out, like an Azure SAS) needs no bearer token;
//	    a wrong or expired signature answers 403.
//	GET /goldsmith/v1/{imageId or imageVersionId}/disk[?region=R]
//	    Downloads the disk behind a managed image or gallery image version
//	    (its copy in region R; default the resource's own region), with
//	    headers X-Goldsmith-Disk-Format (qcow2 or raw), X-Goldsmith-Disk-SHA256
//	    and X-Goldsmith-Disk-Virtual-Size; supports Range requests.
func (s *Server) goldsmith(rq *request, segs []string) {
	if n := len(segs); n >= 3 && rq.r.Method == http.MethodPost && strings.EqualFold(segs[n-1], "distribute") && strings.EqualFold(segs[n-3], "runs") {
		s.retryDistribution(rq, segs)
		return
	}
	if rq.r.Method != http.MethodGet && rq.r.Method != http.MethodHead {
		methodNotAllowed(rq)
		return
	}
	if len(segs) == 1 && strings.EqualFold(segs[0], "workers") {
		ws, err := s.svc.Workers(rq.ctx)
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		writeJSON(rq.w, http.StatusOK, map[string]any{"value": ws})
		return
	}
	if len(segs) >= 2 && strings.EqualFold(segs[0], "blobs") {
		s.blob(rq, segs[1:])
		return
	}
	if n := len(segs); n >= 2 && strings.EqualFold(segs[n-1], "disk") {
		s.disk(rq, "/"+strings.Join(segs[:n-1], "/"))
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
		items := renderAll(runs, func(r resource.Run) map[string]any { return s.renderRun(rq, r) })
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
		"message": r.Message, "startTime": r.StartTime, "startedBy": r.StartedBy,
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
	if err := httpstream.Copy(rq.w, rd); err != nil && rq.ctx.Err() == nil {
		s.log.Warn("stream run log", "template", templateID, "run", runID, "err", err)
	}
}

// blobPath checks a blob path: a file of a staging group.
func blobPath(segs []string) (string, bool) {
	rel := path.Clean(strings.Join(segs, "/"))
	if strings.HasPrefix(rel, "..") || strings.Contains(rel, "/../") || !strings.HasPrefix(rel, "staging/") {
		return rel, false
	}
	return rel, true
}

// blob serves a file under the data directory's staging/.
func (s *Server) blob(rq *request, segs []string) {
	rel, ok := blobPath(segs)
	if !ok {
		writeError(rq.w, errorf(resource.KindNotFound, "BlobNotFound", "The blob '%s' does not exist.", rel), wrapped)
		return
	}
	serveFile(rq, filepath.Join(s.svc.DataDir(), filepath.FromSlash(rel)), rel)
}

func serveFile(rq *request, p, name string) {
	f, err := os.Open(p)
	if err != nil {
		writeError(rq.w, errorf(resource.KindNotFound, "BlobNotFound", "The blob '%s' does not exist.", name), wrapped)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		writeError(rq.w, errorf(resource.KindNotFound, "BlobNotFound", "The blob '%s' does not exist.", name), wrapped)
		return
	}
	rq.w.Header().Set("Content-Type", "application/octet-stream")
	rq.w.Header().Set("Accept-Ranges", "bytes")
	http.ServeContent(rq.w, rq.r, st.Name(), st.ModTime(), f)
}

// signedBlob answers a request for a blob that carries a signature instead
// of a bearer token; it returns false for any other request.
func (s *Server) signedBlob(w http.ResponseWriter, r *http.Request) bool {
	segs, err := splitPath(r.URL)
	if err != nil || len(segs) < 4 || !strings.EqualFold(segs[0], "goldsmith") || !strings.EqualFold(segs[1], "v1") ||
		!strings.EqualFold(segs[2], "blobs") || !blob.Signed(r.URL.Query()) {
		return false
	}
	rq := &request{w: w, r: r, ctx: r.Context(), base: s.base(r)}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(rq)
		return true
	}
	rel, ok := blobPath(segs[3:])
	if err := s.svc.BlobSigner().Verify(rel, r.URL.Query(), time.Now()); err != nil || !ok {
		if err == nil {
			err = errors.New("not a blob path")
		}
		writeError(w, &resource.Error{Kind: resource.KindForbidden, Code: "AuthenticationFailed",
			Message: "Server failed to authenticate the request: " + err.Error() + ". Read the runOutput again for a fresh artifactUri."}, wrapped)
		return true
	}
	serveFile(rq, filepath.Join(s.svc.DataDir(), filepath.FromSlash(rel)), rel)
	return true
}

// signBlobURL turns a data-directory-relative staging path into a signed,
// expiring download URL.
func (s *Server) signBlobURL(rq *request, rel string) string {
	q := s.svc.BlobSigner().Sign(rel, time.Now().Add(s.blobTTL))
	return rq.base + "/goldsmith/v1/blobs/" + rel + "?" + q.Encode()
}

// disk serves the disk behind a managed image or gallery image version.
func (s *Server) disk(rq *request, id string) {
	f, err := s.svc.ArtifactFile(rq.ctx, id, rq.r.URL.Query().Get("region"))
	if err != nil {
		writeError(rq.w, err, wrapped)
		return
	}
	h := rq.w.Header()
	h.Set("X-Goldsmith-Disk-Format", f.Artifact.Format)
	h.Set("X-Goldsmith-Disk-SHA256", f.Artifact.SHA256)
	h.Set("X-Goldsmith-Disk-Region", f.Region)
	h.Set("X-Goldsmith-Disk-Virtual-Size", strconv.FormatInt(f.Artifact.VirtualSize, 10))
	if f.Object != nil {
		// A bucket region: redirect to a presigned GET of the object, so
		// the disk (GiBs) goes from the object store to the client, not
		// through goldsmith; the link expires like the VHD's.
		u, err := f.Object.PresignGet(rq.ctx, f.Artifact.SHA256, s.blobTTL)
		if err != nil {
			writeError(rq.w, errorf(resource.KindInternal, "InternalServerError", "%v", err), wrapped)
			return
		}
		http.Redirect(rq.w, rq.r, u.String(), http.StatusTemporaryRedirect)
		return
	}
	serveFile(rq, f.Path, id)
}

// retryDistribution is POST {templateId}/runs/{runId}/distribute.
func (s *Server) retryDistribution(rq *request, segs []string) {
	n := len(segs)
	id, err := resourceid.ParseAs("/"+strings.Join(segs[:n-3], "/"), resourceid.Kind{Type: resource.TypeImageTemplate, NeedsGroup: true,
		Example: "/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.VirtualMachineImages/imageTemplates/{name}"})
	if err != nil {
		writeError(rq.w, errorf(resource.KindBadRequest, "InvalidResourceId", "%v", err), wrapped)
		return
	}
	op, err := s.svc.RetryDistribution(rq.ctx, id.String(), segs[n-2])
	if err != nil {
		writeError(rq.w, err, wrapped)
		return
	}
	if rq.version == "" {
		rq.version = template.LatestAPIVersion() // for the operation URLs
	}
	s.lro(rq, op, true, true)
	rq.w.WriteHeader(http.StatusAccepted)
}
