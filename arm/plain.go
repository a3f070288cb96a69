package arm

import (
	"net/http"

	"github.com/goldsmith-dev/goldsmith/resource"
)

// renderPlain renders a resource group, image, gallery, definition,
// version or identity.
func renderPlain(r resource.Resource) map[string]any {
	m := map[string]any{"id": r.ID, "name": r.Name, "type": r.Type}
	if r.Location != "" {
		m["location"] = r.Location
	}
	if len(r.Tags) > 0 || r.Type == resource.TypeResourceGroup {
		tags := r.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		m["tags"] = tags
	}
	if r.ManagedBy != "" {
		m["managedBy"] = r.ManagedBy
	}
	if r.Properties != nil {
		m["properties"] = r.Properties
	}
	return m
}

func (s *Server) groups(rq *request, p armPath, item bool) {
	if err := checkAPIVersion(famResources, rq.version, resource.TypeResourceGroup, ""); err != nil {
		writeError(rq.w, err, wrapped)
		return
	}
	if !item {
		if rq.r.Method != http.MethodGet {
			methodNotAllowed(rq)
			return
		}
		pg, err := s.page(rq)
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		list, next, err := s.svc.ListResourceGroups(rq.ctx, p.sub, pg)
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		items := renderAll(list, renderPlain)
		s.writeList(rq, items, next)
		return
	}
	switch rq.r.Method {
	case http.MethodGet, http.MethodHead:
		g, err := s.svc.GetResourceGroup(rq.ctx, p.sub, p.group)
		if rq.r.Method == http.MethodHead {
			status := http.StatusNoContent
			if resource.IsNotFound(err) {
				status = http.StatusNotFound
			} else if err != nil {
				status = http.StatusInternalServerError
			}
			rq.w.WriteHeader(status)
			return
		}
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		writeJSON(rq.w, http.StatusOK, renderPlain(g))
	case http.MethodPut:
		in, err := readInput(rq)
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		g, created, err := s.svc.PutResourceGroup(rq.ctx, p.sub, p.group, in)
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(rq.w, status, renderPlain(g))
	case http.MethodDelete:
		op, err := s.svc.DeleteResourceGroup(rq.ctx, p.sub, p.group)
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		s.lro(rq, op, false, true)
		rq.w.WriteHeader(http.StatusAccepted)
	default:
		methodNotAllowed(rq)
	}
}

// plain serves images, galleries, definitions, versions and identities.
func (s *Server) plain(rq *request, p armPath, fam family) {
	if err := checkAPIVersion(fam, rq.version, p.ns+"/"+p.types[0], ""); err != nil {
		writeError(rq.w, err, wrapped)
		return
	}
	if !p.item() {
		if rq.r.Method != http.MethodGet {
			methodNotAllowed(rq)
			return
		}
		typ, ok := resource.CanonicalType(p.ns + "/" + joinTypes(p.types))
		if !ok {
			s.noRoute(rq)
			return
		}
		pg, err := s.page(rq)
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		list, next, err := s.svc.ListResources(rq.ctx, typ, p.scope(), pg)
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		items := renderAll(list, renderPlain)
		s.writeList(rq, items, next)
		return
	}
	if p.group == "" {
		s.noRoute(rq)
		return
	}
	id := p.id()
	switch rq.r.Method {
	case http.MethodGet:
		r, err := s.svc.GetResource(rq.ctx, id.String())
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		writeJSON(rq.w, http.StatusOK, renderPlain(r))
	case http.MethodPut:
		in, err := readInput(rq)
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		r, created, err := s.svc.PutResource(rq.ctx, id, in)
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(rq.w, status, renderPlain(r))
	case http.MethodDelete:
		deleted, err := s.svc.DeleteResource(rq.ctx, id)
		if err != nil {
			writeError(rq.w, err, wrapped)
			return
		}
		if !deleted {
			rq.w.WriteHeader(http.StatusNoContent)
			return
		}
		rq.w.WriteHeader(http.StatusOK)
	default:
		methodNotAllowed(rq)
	}
}

func joinTypes(types []string) string {
	out := ""
	for i, t := range types {
		if i > 0 {
			out += "/"
		}
		out += t
	}
	return out
}
