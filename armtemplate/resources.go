package armtemplate

import (
	"fmt"
	"strings"
)

// Resource is one resource of an evaluated template.
type Resource struct {
	// Path locates the resource in the template: "resources[2]",
	// "resources[0].resources[1]" for a nested child, or
	// "resources[3].properties.template.resources[0]" inside an inline
	// nested deployment.
	Path string
	// CopyIndex is the iteration of the resource's copy loop, or -1 when
	// the resource has no copy loop.
	CopyIndex int
	// Type and Name are the full forms: a nested child's type and name are
	// prefixed with its parent's.
	Type       string
	APIVersion string
	Name       string
	// Body is the resource object with every expression evaluated, as
	// encoding/json would decode it (numbers are float64), except that a
	// value only a live deployment knows is an Unknown. ARM-only keys
	// "condition", "copy" and nested "resources" are removed (children are
	// returned as Resources of their own) and "type" and "name" hold the
	// full forms. A nested deployment's properties.template is left as
	// written, since its resources are returned separately.
	Body map[string]any
	// Warnings are what could not be checked offline about the resource
	// itself (a condition only a live deployment can decide).
	Warnings []*Error
}

const deploymentsType = "Microsoft.Resources/deployments"

// maxDeploymentDepth bounds nested inline deployments.
const maxDeploymentDepth = 10

// Evaluate evaluates a deployment template and returns all of its
// resources whose condition holds, with copy loops expanded. On error it
// returns the resources that evaluated cleanly and an ErrorList naming
// every problem found.
func Evaluate(doc map[string]any, ctx Context) ([]Resource, error) {
	return evaluate(doc, ctx, nil)
}

// ImageTemplates is like Evaluate but returns only the image templates
// (type Microsoft.VirtualMachineImages/imageTemplates). Other resources
// are only evaluated as far as needed to find those (conditions and copy
// loops of parents and nested deployments), so their reference() calls
// do not get in the way.
func ImageTemplates(doc map[string]any, ctx Context) ([]Resource, error) {
	return evaluate(doc, ctx, func(t string) bool {
		// The 2018 previews' examples name the type by its namespace alone.
		return strings.EqualFold(t, ImageTemplateType) || strings.EqualFold(t, "Microsoft.VirtualMachineImages")
	})
}

func evaluate(doc map[string]any, ctx Context, filter func(string) bool) ([]Resource, error) {
	sink := &errorSink{}
	norm, _ := normalize(doc).(map[string]any)
	if norm == nil {
		norm = map[string]any{}
	}
	ev := newEvaluator(norm, ctx, sink, "", filter, 0)
	ev.run()
	return ev.out, sink.err()
}

func (ev *evaluator) run() {
	ev.resolveAllParameters()
	ev.resourceList(field(ev.doc, "resources"), "resources", nil, ev.rootEnv())
}

type parentResource struct{ typ, name string }

// resourceList evaluates a "resources" array (or a languageVersion 2.0
// object of symbolic names).
func (ev *evaluator) resourceList(v any, path string, parent *parentResource, env exprEnv) {
	switch list := v.(type) {
	case nil:
	case []any:
		for i, r := range list {
			ev.resource(r, fmt.Sprintf("%s[%d]", path, i), parent, env)
		}
	case map[string]any:
		for _, e := range sortedEntries(list) {
			ev.resource(e.val, path+keyPath(e.key), parent, env)
		}
	default:
		ev.report(path, fmt.Errorf("'resources' must be an array, not %s", describeValue(v)))
	}
}

func (ev *evaluator) resource(v any, path string, parent *parentResource, env exprEnv) {
	r, ok := v.(map[string]any)
	if !ok {
		ev.report(path, fmt.Errorf("a resource must be an object, not %s", describeValue(v)))
		return
	}
	if existing, _ := field(r, "existing").(bool); existing {
		return // a reference to a resource deployed elsewhere
	}
	tv, ok := ev.walk(field(r, "type"), path+".type", env)
	if !ok {
		return
	}
	typ, isStr := tv.(string)
	if !isStr || typ == "" {
		ev.report(path, fmt.Errorf("resource has no 'type' string"))
		return
	}
	short := parent != nil && !strings.Contains(typ, "/")
	if short {
		typ = parent.typ + "/" + typ
	}
	wanted := ev.filter == nil || ev.filter(typ)
	isDeployment := strings.EqualFold(typ, deploymentsType)
	children, _ := field(r, "resources").([]any)
	if !wanted && !isDeployment && len(children) == 0 {
		return
	}

	cv, hasCopy := lookupKey(r, "copy")
	if !hasCopy {
		ev.instance(r, path, typ, short, parent, -1, wanted, isDeployment, env)
		return
	}
	spec, ok := cv.(map[string]any)
	if !ok {
		ev.report(path+".copy", fmt.Errorf("a resource 'copy' must be an object with 'name' and 'count'"))
		return
	}
	name, _ := spec["name"].(string)
	countV, has := spec["count"]
	if !has {
		ev.report(path+".copy", fmt.Errorf("copy loop '%s' has no 'count'", name))
		return
	}
	n, ok := ev.evalCount(countV, path+".copy.count", env)
	if !ok {
		return
	}
	for i := int64(0); i < n; i++ {
		ev.instance(r, path, typ, short, parent, int(i), wanted, isDeployment,
			env.with(loop{name: name, index: i, resource: true}))
	}
}

// instance evaluates one copy of a resource.
func (ev *evaluator) instance(r map[string]any, path, typ string, short bool, parent *parentResource, copyIndex int, wanted, isDeployment bool, env exprEnv) {
	if cond, has := lookupKey(r, "condition"); has {
		c, ok := ev.walk(cond, path+".condition", env)
		if !ok {
			return
		}
		if u, ok := c.(Unknown); ok {
			// Whether it is deployed only ARM knows: check it as if it were.
			ev.warn(path+".condition", fmt.Sprintf("the condition depends on %s, which only a live deployment knows; the resource is checked as if it were deployed", u.Source))
			c = true
		}
		b, isBool := c.(bool)
		if !isBool {
			ev.report(path+".condition", fmt.Errorf("condition must be a bool, not %s", describeValue(c)))
			return
		}
		if !b {
			return
		}
	}
	// A bad name still lets the body be evaluated, so that all of the
	// resource's mistakes are reported together.
	nv, nameOK := ev.walk(field(r, "name"), path+".name", env)
	name, isStr := nv.(string)
	if u, ok := nv.(Unknown); ok {
		// A nested deployment's parameter from reference() is known when
		// that deployment starts; offline the name stays unknown.
		name, isStr = u.String(), true
	}
	if nameOK && (!isStr || name == "") {
		ev.report(path+".name", fmt.Errorf("resource name must be a non-empty string, not %s", describeValue(nv)))
		nameOK = false
	}
	if short {
		name = parent.name + "/" + name
	}

	if wanted {
		rest := make(map[string]any, len(r))
		for k, v := range r {
			switch strings.ToLower(k) {
			case "condition", "copy", "resources", "type", "name":
				continue
			}
			rest[k] = v
		}
		var template any
		if isDeployment {
			template = detachTemplate(rest)
		}
		body, ok := ev.walk(rest, path, env)
		if ok && nameOK {
			m := body.(map[string]any)
			m["type"], m["name"] = typ, name
			if u, ok := nv.(Unknown); ok {
				m["name"] = u
			}
			if template != nil {
				m["properties"].(map[string]any)["template"] = template
			}
			api, _ := field(m, "apiVersion").(string)
			ev.out = append(ev.out, Resource{
				Path:       ev.prefix + path,
				CopyIndex:  copyIndex,
				Type:       typ,
				APIVersion: api,
				Name:       name,
				Body:       plainJSON(m).(map[string]any),
				Warnings:   ev.takeWarnings(ev.prefix + path),
			})
		}
	}
	if !nameOK {
		return
	}
	if isDeployment {
		ev.nestedDeployment(r, path, name, env)
	}
	if children, ok := lookupKey(r, "resources"); ok {
		ev.resourceList(children, path+".resources", &parentResource{typ: typ, name: name}, env)
	}
}

// detachTemplate takes properties.template out of a deployment body copy
// so it is not evaluated in the parent's scope; it returns the template.
func detachTemplate(body map[string]any) any {
	props, ok := body["properties"].(map[string]any)
	if !ok {
		return nil // (a differently-cased "properties" is left to evaluate)
	}
	t, ok := props["template"]
	if !ok {
		return nil
	}
	cp := make(map[string]any, len(props))
	for k, v := range props {
		if k != "template" {
			cp[k] = v
		}
	}
	body["properties"] = cp
	return t
}

// nestedDeployment evaluates the resources of an inline nested template.
// With the default "outer" scope its expressions see the parent's
// parameters and variables; with "inner" scope it is a template of its
// own, given the deployment's parameters.
func (ev *evaluator) nestedDeployment(r map[string]any, path, name string, env exprEnv) {
	props, _ := field(r, "properties").(map[string]any)
	tmpl, ok := field(props, "template").(map[string]any)
	if !ok {
		return // templateLink: the template is elsewhere
	}
	tpath := path + ".properties.template"
	if ev.filter != nil && !mightContain(field(tmpl, "resources"), "", ev.filter) {
		return // nothing wanted inside: do not evaluate its parameters
	}
	if ev.depth >= maxDeploymentDepth {
		ev.report(tpath, fmt.Errorf("nested deployments go deeper than %d levels", maxDeploymentDepth))
		return
	}
	scope := "outer"
	if opts, ok := field(props, "expressionEvaluationOptions").(map[string]any); ok {
		sv, ok := ev.walk(field(opts, "scope"), path+".properties.expressionEvaluationOptions.scope", env)
		if s, isStr := sv.(string); ok && isStr {
			scope = strings.ToLower(s)
		}
	}
	if scope != "inner" {
		ev.resourceList(field(tmpl, "resources"), tpath+".resources", nil, env)
		return
	}

	ctx := ev.info.ctx
	ctx.DeploymentName = name
	ctx.Parameters = map[string]any{}
	for _, field := range []struct {
		key string
		dst *string
	}{{"resourceGroup", &ctx.ResourceGroup}, {"subscriptionId", &ctx.SubscriptionID}} {
		if v, has := lookupKey(r, field.key); has {
			if s, ok := ev.walk(v, path+"."+field.key, env); ok {
				if str, isStr := s.(string); isStr && str != "" {
					*field.dst = str
				}
			}
		}
	}
	failed := map[string]bool{}
	if ps, ok := field(props, "parameters").(map[string]any); ok {
		for _, e := range sortedEntries(ps) {
			ppath := path + ".properties.parameters" + keyPath(e.key)
			if raw, isObj := e.val.(map[string]any); isObj {
				if _, isRef := raw["reference"]; isRef {
					ev.report(ppath, fmt.Errorf("parameter '%s' is a Key Vault reference, which needs a live Azure deployment", e.key))
					failed[strings.ToLower(e.key)] = true
					continue
				}
			}
			// The entry itself may be an expression yielding {"value": ...}.
			ev2, ok := ev.walk(e.val, ppath, env)
			if !ok {
				failed[strings.ToLower(e.key)] = true
				continue
			}
			if u, ok := ev2.(Unknown); ok {
				ctx.Parameters[e.key] = u
				continue
			}
			entry, isObj := ev2.(map[string]any)
			v, hasValue := lookupKey(entry, "value")
			if !isObj || !hasValue {
				ev.report(ppath, fmt.Errorf("a nested deployment parameter must be an object like {\"value\": ...}, not %s", describeValue(ev2)))
				failed[strings.ToLower(e.key)] = true
				continue
			}
			ctx.Parameters[e.key] = v
		}
	}
	child := newEvaluator(tmpl, ctx, ev.sink, ev.prefix+tpath+".", ev.filter, ev.depth+1)
	for k := range failed {
		if _, declared := child.params[k]; declared {
			child.failed[k] = true
		}
	}
	child.run()
	ev.out = append(ev.out, child.out...)
}

// field reads an object key case-insensitively, as ARM does; nil when absent.
func field(m map[string]any, key string) any {
	v, _ := lookupKey(m, key)
	return v
}

// mightContain reports whether a resources list could hold a resource the
// filter wants, judging by literal types; a computed type counts as maybe.
func mightContain(list any, parentType string, filter func(string) bool) bool {
	var items []any
	switch l := list.(type) {
	case []any:
		items = l
	case map[string]any:
		for _, e := range sortedEntries(l) {
			items = append(items, e.val)
		}
	}
	for _, item := range items {
		r, ok := item.(map[string]any)
		if !ok {
			continue
		}
		raw, _ := field(r, "type").(string)
		typ, isExpr := classify(raw)
		if isExpr {
			return true
		}
		if parentType != "" && !strings.Contains(typ, "/") {
			typ = parentType + "/" + typ
		}
		if filter(typ) {
			return true
		}
		if strings.EqualFold(typ, deploymentsType) {
			props, _ := field(r, "properties").(map[string]any)
			tmpl, _ := field(props, "template").(map[string]any)
			if mightContain(field(tmpl, "resources"), "", filter) {
				return true
			}
		}
		if mightContain(field(r, "resources"), typ, filter) {
			return true
		}
	}
	return false
}
