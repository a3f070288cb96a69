package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/goldsmith-dev/goldsmith/armtemplate"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

// newTemplateData is the create form, with what checking it found.
type newTemplateData struct {
	Source, Parameters                  string
	Sub, Group, Name, Location, Version string
	Groups                              []where
	Versions                            []string
	Problems                            []template.Problem
	Warnings                            []template.Problem
	// Checked says the form was checked and has no problems.
	Checked bool
	Error   string
}

// checked is a form that passed every check: what CreateTemplate gets.
type checked struct {
	id         resourceid.ID
	body       map[string]any
	apiVersion string
	location   string
}

// maxSource bounds a pasted or uploaded template.
const maxSource = 4 << 20

// newTemplate serves the create form (GET) and takes it (POST): action
// "check" only checks; "create" checks again and creates the template only
// when nothing is wrong, so a template with errors is never submitted. The
// script posts checks as the user types and asks for JSON.
func (c *Console) newTemplate(rq *request) {
	d := newTemplateData{Versions: template.APIVersions(), Location: template.DefaultLocation, Sub: c.defaultSubscription(rq)}
	if groups, err := c.groups(rq); err == nil {
		d.Groups = groups
	}
	switch rq.r.Method {
	case http.MethodGet, http.MethodHead:
		c.show(rq, "new", "new", "New image template", false, d)
		return
	case http.MethodPost:
	default:
		c.methodNotAllowed(rq)
		return
	}
	rq.r.Body = http.MaxBytesReader(rq.w, rq.r.Body, maxSource+(1<<20))
	f := func(name string) string { return strings.TrimSpace(formValue(rq.r, name)) }
	d.Source, d.Parameters = formValue(rq.r, "source"), formValue(rq.r, "parameters")
	d.Sub, d.Group, d.Name, d.Location, d.Version = f("subscription"), f("group"), f("name"), f("location"), f("apiVersion")
	if file, _, err := rq.r.FormFile("file"); err == nil {
		data, rerr := io.ReadAll(io.LimitReader(file, maxSource+1))
		file.Close()
		if rerr == nil && len(data) > 0 {
			d.Source = string(data)
		}
	}
	ok := c.check(rq, &d)
	wantJSON := strings.Contains(rq.r.Header.Get("Accept"), "application/json")
	if formValue(rq.r, "action") != "create" || ok == nil {
		status := http.StatusOK
		if ok == nil {
			status = http.StatusUnprocessableEntity
		}
		if wantJSON {
			rq.w.Header().Set("Content-Type", "application/json")
			rq.w.WriteHeader(status)
			_ = json.NewEncoder(rq.w).Encode(map[string]any{"ok": ok != nil, "problems": d.Problems, "warnings": d.Warnings, "name": d.Name})
			return
		}
		p := page{Title: "New image template", Nav: "new", CSRF: rq.session.CSRF, Who: rq.caller.Name, Data: d}
		c.render(rq.w, status, "new", p)
		return
	}
	if err := c.ensureGroup(rq, ok.id, ok.location); err != nil {
		d.Error = resource.AsError(err).Message
		c.render(rq.w, http.StatusConflict, "new", page{Title: "New image template", Nav: "new", CSRF: rq.session.CSRF, Who: rq.caller.Name, Data: d})
		return
	}
	t, _, err := c.svc.CreateTemplate(rq.ctx, ok.id, ok.body, ok.apiVersion)
	if err != nil {
		e := resource.AsError(err)
		d.Error = e.Message
		for _, det := range e.Details {
			d.Problems = append(d.Problems, template.Problem{Code: det.Code, Target: det.Target, Message: det.Message})
		}
		c.render(rq.w, http.StatusConflict, "new", page{Title: "New image template", Nav: "new", CSRF: rq.session.CSRF, Who: rq.caller.Name, Data: d})
		return
	}
	http.Redirect(rq.w, rq.r, templateLink(t.ID), http.StatusSeeOther)
}

// check runs the checks `goldsmith template validate` and the service run
// on the form: the file's form (resource, deployment with parameters, bare
// properties), the name, the location and the template itself. It returns
// what to create, or nil with d.Problems saying why not.
func (c *Console) check(rq *request, d *newTemplateData) *checked {
	add := func(target, format string, args ...any) {
		d.Problems = append(d.Problems, template.Problem{Code: template.CodeInvalidTemplate, Target: target, Message: fmt.Sprintf(format, args...)})
	}
	switch {
	case d.Sub == "":
		add("subscription", "choose a subscription")
	case !rq.caller.CanUse(d.Sub):
		add("subscription", "%s may not use subscription %s", rq.caller.Name, d.Sub)
	}
	if d.Group == "" {
		add("resourceGroup", "choose a resource group")
	}
	if strings.TrimSpace(d.Source) == "" {
		add("", "paste or upload the template's JSON")
		return nil
	}
	var params map[string]any
	if strings.TrimSpace(d.Parameters) != "" {
		var err error
		if params, err = armtemplate.ParseParameterFile([]byte(d.Parameters)); err != nil {
			add("parameters", "%v", err)
			return nil
		}
	}
	docs, err := template.Documents([]byte(d.Source), template.LoadOptions{Parameters: params, SubscriptionID: d.Sub,
		ResourceGroup: d.Group, Location: d.Location})
	var inv *template.InvalidError
	var syn *template.SyntaxError
	switch {
	case errors.As(err, &inv):
		d.Problems = append(d.Problems, inv.Problems...)
		return nil
	case errors.As(err, &syn):
		d.Problems = append(d.Problems, template.Problem{Code: template.CodeInvalidJSON, Message: "the JSON is malformed at " + syn.Error()})
		return nil
	case err != nil:
		add("", "%v", err)
		return nil
	case len(docs) != 1:
		add("resources", "the deployment template holds %d image templates; create them one at a time", len(docs))
		return nil
	}
	doc := docs[0]
	version := d.Version
	if version == "" {
		version = doc.APIVersion
	}
	if version == "" {
		version = template.LatestAPIVersion()
	}
	if d.Name == "" {
		d.Name = doc.Name[strings.LastIndex(doc.Name, "/")+1:]
	}
	if d.Name == "" {
		add("name", "the file names no template: give it a name")
	} else if err := resource.CheckTemplateName(d.Name, version); err != nil {
		add("name", "%s", resource.AsError(err).Message)
	}
	body := doc.Body
	loc, _ := body["location"].(string)
	if loc == "" {
		loc = d.Location
		body["location"] = loc
	}
	if !c.svc.Regions().Has(resource.NormalizeLocation(loc)) {
		add("location", "goldsmith does not serve the region %q; it serves %s", loc, strings.Join(c.svc.Regions().Names(), ", "))
	}
	// What the service validates: the body as it would be PUT, named by the URL.
	parsed := make(map[string]any, len(body))
	for k, v := range body {
		switch strings.ToLower(k) {
		case "apiversion", "name", "id":
		default:
			parsed[k] = v
		}
	}
	parsed["name"] = d.Name
	_, warns, err := template.Parse(parsed, template.Options{APIVersion: version})
	d.Warnings = append(doc.Warnings, warns...)
	if errors.As(err, &inv) {
		d.Problems = append(d.Problems, inv.Problems...)
	} else if err != nil {
		add("", "%v", err)
	}
	if len(d.Problems) > 0 {
		return nil
	}
	d.Checked = true
	return &checked{id: resourceid.ID{Subscription: d.Sub, ResourceGroup: d.Group, Namespace: "Microsoft.VirtualMachineImages",
		Types: []string{"imageTemplates"}, Names: []string{d.Name}}, body: body, apiVersion: version, location: loc}
}

// ensureGroup creates the template's resource group when it does not exist
// (as `az group create` would), in the template's location.
func (c *Console) ensureGroup(rq *request, id resourceid.ID, loc string) error {
	if _, err := c.svc.GetResourceGroup(rq.ctx, id.Subscription, id.ResourceGroup); err == nil || !resource.IsNotFound(err) {
		return err
	}
	_, _, err := c.svc.PutResourceGroup(rq.ctx, id.Subscription, id.ResourceGroup, resource.Input{Location: resource.NormalizeLocation(loc)})
	return err
}

// groups lists the resource groups the caller may use.
func (c *Console) groups(rq *request) ([]where, error) {
	var out []where
	err := c.st.View(rq.ctx, func(tx *store.Tx) error {
		docs, err := tx.List(rq.ctx, store.Query{Type: resource.TypeResourceGroup})
		if err != nil {
			return err
		}
		for _, doc := range docs {
			p, err := resourceid.Parse(doc.ID)
			if err != nil || !rq.caller.CanUse(p.Subscription) {
				continue
			}
			out = append(out, where{Sub: p.Subscription, Group: p.ResourceGroup})
		}
		return nil
	})
	return out, err
}

// defaultSubscription is the subscription the form starts with: the
// caller's first, else the one most groups are in, else the offline default.
func (c *Console) defaultSubscription(rq *request) string {
	if len(rq.caller.Subscriptions) > 0 {
		return rq.caller.Subscriptions[0]
	}
	groups, _ := c.groups(rq)
	count := map[string]int{}
	for _, g := range groups {
		count[g.Sub]++
	}
	best := ""
	for s, n := range count {
		if n > count[best] || n == count[best] && s < best {
			best = s
		}
	}
	if best == "" {
		return template.DefaultSubscriptionID
	}
	return best
}
