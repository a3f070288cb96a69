package arm

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/template"
)

// aibVersion checks the api-version of an AIB request and picks the error
// envelope it answers in.
func aibVersion(rq *request) bool {
	if err := checkAPIVersion(famAIB, rq.version, resource.TypeImageTemplate, ""); err != nil {
		writeError(rq.w, err, wrapped)
		return false
	}
	rq.aib, _ = template.LookupAPIVersion(rq.version)
	switch {
	case rq.aib.WrappedErrors:
		rq.env = wrapped
	case !rq.aib.PowerShell:
		rq.env = flat2018
	default:
		rq.env = flat
	}
	return true
}

func (s *Server) identityLookup(rq *request) identityLookup {
	return func(id string) (string, string) {
		r, err := s.svc.GetResource(rq.ctx, id)
		if err != nil {
			return "", ""
		}
		p, _ := r.Properties["principalId"].(string)
		c, _ := r.Properties["clientId"].(string)
		return p, c
	}
}

func (s *Server) renderTemplate(rq *request, t resource.ImageTemplate) map[string]any {
	return renderTemplate(t, rq.aib, s.identityLookup(rq))
}

// lro sets the headers of an accepted long-running operation.
func (s *Server) lro(rq *request, op resource.Operation, asyncOp, location bool) {
	h := rq.w.Header()
	if asyncOp {
		h.Set("Azure-AsyncOperation", rq.abs(op.ID))
	}
	if location {
		h.Set("Location", rq.abs(resultsPath(op)))
	}
	h.Set("Retry-After", strconv.Itoa(s.retryAfter))
}

// resultsPath is the operationresults path of an operation (the Location
// URL), next to its status resource.
func resultsPath(op resource.Operation) string {
	return strings.Replace(op.ID, "/operations/", "/operationresults/", 1)
}

func (s *Server) imageTemplates(rq *request, p armPath) {
	if !aibVersion(rq) {
		return
	}
	if !rq.aib.Triggers && strings.EqualFold(p.types[len(p.types)-1], "triggers") {
		writeError(rq.w, errorf(resource.KindBadRequest, "NoRegisteredProviderFound",
			"Triggers exist from api-version 2022-07-01 on, not in %s.", rq.version), rq.env)
		return
	}
	if !rq.aib.IdentityRequired && p.types[len(p.types)-1] == "cancel" {
		writeError(rq.w, errorf(resource.KindBadRequest, "NoRegisteredProviderFound",
			"Cancel exists from api-version 2020-02-14 on, not in %s.", rq.version), rq.env)
		return
	}
	if len(p.names) == 0 { // list
		if rq.r.Method != http.MethodGet {
			methodNotAllowed(rq)
			return
		}
		pg, err := s.page(rq)
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		list, next, err := s.svc.ListTemplates(rq.ctx, p.scope(), pg)
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		items := renderAll(list, func(t resource.ImageTemplate) map[string]any { return s.renderTemplate(rq, t) })
		s.writeList(rq, items, next)
		return
	}
	if p.group == "" {
		s.noRoute(rq)
		return
	}
	tmplID := p.id()
	tmplID.Types, tmplID.Names = tmplID.Types[:1], tmplID.Names[:1]
	switch sub := p.types[len(p.types)-1]; {
	case len(p.types) == 1:
		s.imageTemplate(rq, p)
	case sub == "run" || sub == "cancel":
		if rq.r.Method != http.MethodPost || len(p.types) != 2 {
			methodNotAllowed(rq)
			return
		}
		var op resource.Operation
		var err error
		if sub == "run" {
			op, err = s.svc.StartRun(rq.ctx, tmplID.String())
		} else {
			op, err = s.svc.CancelRun(rq.ctx, tmplID.String())
		}
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		s.lro(rq, op, true, true)
		rq.w.WriteHeader(http.StatusAccepted)
	case sub == "runOutputs":
		s.runOutputs(rq, p, tmplID.String())
	case sub == "triggers":
		s.triggers(rq, p, tmplID.String())
	default:
		s.noRoute(rq)
	}
}

func (s *Server) imageTemplate(rq *request, p armPath) {
	id := p.id()
	switch rq.r.Method {
	case http.MethodGet:
		t, err := s.svc.GetTemplate(rq.ctx, id.String())
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		writeJSON(rq.w, http.StatusOK, s.renderTemplate(rq, t))
	case http.MethodPut:
		body, err := readBody(rq)
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		t, op, err := s.svc.CreateTemplate(rq.ctx, id, body, rq.version)
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		s.lro(rq, op, true, false)
		writeJSON(rq.w, http.StatusCreated, s.renderTemplate(rq, t))
	case http.MethodPatch:
		body, err := readBody(rq)
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		t, err := s.svc.UpdateTemplate(rq.ctx, id.String(), body, rq.version)
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		writeJSON(rq.w, http.StatusOK, s.renderTemplate(rq, t))
	case http.MethodDelete:
		op, err := s.svc.DeleteTemplate(rq.ctx, id.String())
		if resource.IsNotFound(err) {
			rq.w.WriteHeader(http.StatusNoContent)
			return
		}
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		s.lro(rq, op, true, true)
		rq.w.WriteHeader(http.StatusAccepted)
	default:
		methodNotAllowed(rq)
	}
}

// renderNested renders a runOutput or trigger.
func (s *Server) renderNested(rq *request, r resource.Resource) map[string]any {
	props := map[string]any{}
	for k, v := range r.Properties {
		props[k] = v
	}
	if uri, ok := props["artifactUri"].(string); ok {
		if !rq.aib.PowerShell { // 2018-02-01-preview has artifactId only
			delete(props, "artifactUri")
		} else {
			props["artifactUri"] = s.blobURL(rq, uri)
		}
	}
	m := map[string]any{"id": r.ID, "name": r.Name, "type": r.Type, "properties": props}
	if rq.aib.WrappedErrors {
		m["systemData"] = r.SystemData
	}
	return m
}

// blobURL turns a stored artifactUri into an expiring download link: the
// object store's presigned URL, or goldsmith's own signed URL (see
// resource.Service.ArtifactLink). A link that cannot be made renders empty
// and is logged.
func (s *Server) blobURL(rq *request, uri string) string {
	l, err := s.svc.ArtifactLink(rq.ctx, uri, s.blobTTL)
	if err != nil {
		s.log.Warn("make an artifactUri link", "uri", uri, "err", err)
		return ""
	}
	if l.Rel != "" {
		return s.signBlobURL(rq, l.Rel)
	}
	return l.URL
}

func (s *Server) runOutputs(rq *request, p armPath, tmplID string) {
	if rq.r.Method != http.MethodGet || len(p.types) != 2 {
		methodNotAllowed(rq)
		return
	}
	if p.item() {
		r, err := s.svc.GetRunOutput(rq.ctx, tmplID, p.names[1])
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		writeJSON(rq.w, http.StatusOK, s.renderNested(rq, r))
		return
	}
	s.listNested(rq, tmplID, s.svc.ListRunOutputs)
}

// listNested answers a paged list of a template's runOutputs or triggers.
func (s *Server) listNested(rq *request, tmplID string, list func(context.Context, string, resource.Page) ([]resource.Resource, string, error)) {
	pg, err := s.page(rq)
	if err != nil {
		writeError(rq.w, err, rq.env)
		return
	}
	found, next, err := list(rq.ctx, tmplID, pg)
	if err != nil {
		writeError(rq.w, err, rq.env)
		return
	}
	items := renderAll(found, func(r resource.Resource) map[string]any { return s.renderNested(rq, r) })
	s.writeList(rq, items, next)
}

func (s *Server) triggers(rq *request, p armPath, tmplID string) {
	if len(p.types) != 2 {
		s.noRoute(rq)
		return
	}
	if !p.item() {
		if rq.r.Method != http.MethodGet {
			methodNotAllowed(rq)
			return
		}
		s.listNested(rq, tmplID, s.svc.ListTriggers)
		return
	}
	name := p.names[1]
	switch rq.r.Method {
	case http.MethodGet:
		r, err := s.svc.GetTrigger(rq.ctx, tmplID, name)
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		writeJSON(rq.w, http.StatusOK, s.renderNested(rq, r))
	case http.MethodPut:
		body, err := readBody(rq)
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		props, _ := body["properties"].(map[string]any)
		r, created, err := s.svc.PutTrigger(rq.ctx, tmplID, name, props, rq.version)
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(rq.w, status, s.renderNested(rq, r))
	case http.MethodDelete:
		op, deleted, err := s.svc.DeleteTrigger(rq.ctx, tmplID, name)
		if err != nil {
			writeError(rq.w, err, rq.env)
			return
		}
		if !deleted {
			rq.w.WriteHeader(http.StatusNoContent)
			return
		}
		s.lro(rq, op, false, true)
		rq.w.WriteHeader(http.StatusAccepted)
	default:
		methodNotAllowed(rq)
	}
}

// operationStatus answers the Azure-AsyncOperation URL: always 200 with
// the operation's status (and error when it failed).
func (s *Server) operationStatus(rq *request, p armPath) {
	if !aibVersion(rq) {
		return
	}
	if rq.r.Method != http.MethodGet || !p.item() || len(p.names) != 2 || p.group != "" {
		methodNotAllowed(rq)
		return
	}
	op, err := s.svc.OperationByName(rq.ctx, p.sub, p.ns, p.names[0], p.names[1])
	if err != nil {
		writeError(rq.w, err, rq.env)
		return
	}
	if !op.Done() {
		rq.w.Header().Set("Retry-After", strconv.Itoa(s.retryAfter))
	}
	writeJSON(rq.w, http.StatusOK, renderOperation(op))
}

func renderOperation(op resource.Operation) map[string]any {
	m := map[string]any{"id": op.ID, "name": op.Name, "status": op.Status, "startTime": op.StartTime.UTC().Format(time.RFC3339Nano)}
	if op.EndTime != nil {
		m["endTime"] = op.EndTime.UTC().Format(time.RFC3339Nano)
		m["percentComplete"] = 100
	}
	if op.Error != nil {
		m["error"] = map[string]any{"code": op.Error.Code, "message": op.Error.Message}
	}
	return m
}

// operationResult answers a Location URL: 202 while the operation runs,
// 204 when it succeeded, and its error when it failed or was canceled.
func (s *Server) operationResult(rq *request, p armPath) {
	fam := famAIB
	if p.ns == "Microsoft.Resources" {
		fam = famResources
	}
	if fam == famAIB {
		if !aibVersion(rq) {
			return
		}
	} else if err := checkAPIVersion(fam, rq.version, resource.TypeResourceGroup, ""); err != nil {
		writeError(rq.w, err, wrapped)
		return
	}
	if rq.r.Method != http.MethodGet || !p.item() || len(p.names) != 2 || p.group != "" {
		methodNotAllowed(rq)
		return
	}
	op, err := s.svc.OperationByName(rq.ctx, p.sub, p.ns, p.names[0], p.names[1])
	if err != nil {
		writeError(rq.w, err, rq.env)
		return
	}
	switch op.Status {
	case resource.OpInProgress:
		rq.w.Header().Set("Location", rq.abs(resultsPath(op)))
		rq.w.Header().Set("Retry-After", strconv.Itoa(s.retryAfter))
		rq.w.WriteHeader(http.StatusAccepted)
	case resource.OpSucceeded:
		rq.w.WriteHeader(http.StatusNoContent)
	default:
		e := &resource.Error{Kind: resource.KindConflict, Code: "OperationFailed", Message: "The operation " + op.Status + "."}
		if op.Error != nil {
			e.Code, e.Message = op.Error.Code, op.Error.Message
		}
		writeError(rq.w, e, rq.env)
	}
}

// providerOperations answers GET /providers/Microsoft.VirtualMachineImages/operations.
func (s *Server) providerOperations(rq *request) {
	if !aibVersion(rq) {
		return
	}
	if rq.r.Method != http.MethodGet {
		methodNotAllowed(rq)
		return
	}
	type opDef struct{ name, resource, operation, description string }
	defs := []opDef{
		{"imageTemplates/read", "Image Templates", "Get Image Template", "Gets the image template"},
		{"imageTemplates/write", "Image Templates", "Create or Update Image Template", "Creates an image template, or updates its tags"},
		{"imageTemplates/delete", "Image Templates", "Delete Image Template", "Deletes the image template and its staging resource group"},
		{"imageTemplates/run/action", "Image Templates", "Run Image Template", "Builds the image the template describes"},
		{"imageTemplates/cancel/action", "Image Templates", "Cancel Image Template Run", "Cancels the template's run in progress"},
		{"imageTemplates/runOutputs/read", "Run Outputs", "Get Run Output", "Gets the outputs of the template's latest run"},
		{"imageTemplates/triggers/read", "Triggers", "Get Trigger", "Gets a trigger of the template"},
		{"imageTemplates/triggers/write", "Triggers", "Create or Update Trigger", "Creates or updates a trigger of the template"},
		{"imageTemplates/triggers/delete", "Triggers", "Delete Trigger", "Deletes a trigger of the template"},
		{"locations/operations/read", "Operations", "Get Operation", "Gets the status of an asynchronous operation"},
		{"register/action", "Image Builder", "Register Image Builder", "Registers the subscription for the Image Builder resource provider"},
	}
	items := make([]any, 0, len(defs))
	for _, d := range defs {
		op := map[string]any{
			"name":   "Microsoft.VirtualMachineImages/" + d.name,
			"origin": "user,system",
			"display": map[string]any{"provider": "Microsoft.VirtualMachineImages (goldsmith)", "resource": d.resource,
				"operation": d.operation, "description": d.description},
		}
		if rq.aib.IdentityRequired {
			op["isDataAction"] = false
		}
		items = append(items, op)
	}
	writeJSON(rq.w, http.StatusOK, map[string]any{"value": items})
}
