package armtemplate

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults used when a Context field is empty. goldsmith has no Azure
// subscription, so ids are placeholders that still have the right shape.
const (
	DefaultSubscriptionID = "00000000-0000-0000-0000-000000000000"
	DefaultTenantID       = "00000000-0000-0000-0000-000000000000"
	DefaultResourceGroup  = "goldsmith"
	DefaultLocation       = "eastus" // a real region: templates often look locations up in maps
	DefaultDeploymentName = "goldsmith"
)

// ImageTemplateType is the resource type of an Azure VM Image Builder template.
const ImageTemplateType = "Microsoft.VirtualMachineImages/imageTemplates"

// Context is the deployment scope a template is evaluated in: what
// resourceGroup(), subscription(), deployment() and parameters() return.
type Context struct {
	SubscriptionID string
	ResourceGroup  string
	Location       string
	DeploymentName string
	TenantID       string
	// Parameters are the values given for the template's parameters, by
	// name (case-insensitive), as plain JSON values; see ParseParameterFile.
	Parameters map[string]any
	// Now is what utcNow() returns; the zero value means the current time.
	Now time.Time
}

func (c Context) withDefaults() Context {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&c.SubscriptionID, DefaultSubscriptionID)
	def(&c.TenantID, DefaultTenantID)
	def(&c.ResourceGroup, DefaultResourceGroup)
	def(&c.Location, DefaultLocation)
	def(&c.DeploymentName, DefaultDeploymentName)
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	return c
}

// IsDeploymentTemplate reports whether doc looks like an ARM deployment
// template rather than a bare image template.
func IsDeploymentTemplate(doc map[string]any) bool {
	if s, ok := doc["$schema"].(string); ok && strings.Contains(strings.ToLower(s), "deploymenttemplate") {
		return true
	}
	switch doc["resources"].(type) {
	case []any, map[string]any:
	default:
		return false
	}
	for _, k := range []string{"parameters", "variables", "contentVersion"} {
		if _, ok := doc[k]; ok {
			return true
		}
	}
	return false
}

// slot holds one parameter or variable, resolved at most once.
type slot struct {
	name     string
	decl     any            // parameter declaration or variable value
	copySpec map[string]any // for variables defined in a top-level copy block
	copyPath string
	state    int // 0 unresolved, 1 resolving, 2 resolved
	val      any
	err      error
}

// evaluator evaluates one template (nested inline templates get their own).
type evaluator struct {
	info      envInfo
	doc       map[string]any
	params    map[string]*slot // keyed by lower-case name
	vars      map[string]*slot
	given     map[string]any // supplied parameter values, keyed by lower-case name
	failed    map[string]bool
	resolving []string // names being resolved, to describe cycles
	sink      *errorSink
	prefix    string // path of this template inside the outermost one
	filter    func(resourceType string) bool
	depth     int
	out       []Resource
}

func newEvaluator(doc map[string]any, ctx Context, sink *errorSink, prefix string, filter func(string) bool, depth int) *evaluator {
	ctx = ctx.withDefaults()
	ev := &evaluator{
		doc:    doc,
		sink:   sink,
		prefix: prefix,
		filter: filter,
		depth:  depth,
		params: map[string]*slot{},
		vars:   map[string]*slot{},
		given:  map[string]any{},
		failed: map[string]bool{},
	}
	cv, _ := field(doc, "contentVersion").(string)
	ev.info = envInfo{ctx: ctx, now: ctx.Now, contentVersion: cv}

	switch ps := field(doc, "parameters").(type) {
	case nil:
	case map[string]any:
		for _, e := range sortedEntries(ps) {
			ev.params[strings.ToLower(e.key)] = &slot{name: e.key, decl: e.val}
		}
	default:
		ev.report("parameters", fmt.Errorf("'parameters' must be an object, not %s", describeValue(ps)))
	}
	for _, e := range sortedEntries(normalize(ctx.Parameters).(map[string]any)) {
		lk := strings.ToLower(e.key)
		if _, ok := ev.params[lk]; !ok {
			ev.report("parameters", fmt.Errorf("parameter '%s' was given but the template does not declare it", e.key))
			continue
		}
		ev.given[lk] = e.val
	}

	switch vs := field(doc, "variables").(type) {
	case nil:
	case map[string]any:
		for _, e := range sortedEntries(vs) {
			if strings.EqualFold(e.key, "copy") {
				ev.addCopyVariables(e.val)
				continue
			}
			ev.vars[strings.ToLower(e.key)] = &slot{name: e.key, decl: e.val}
		}
	default:
		ev.report("variables", fmt.Errorf("'variables' must be an object, not %s", describeValue(vs)))
	}
	return ev
}

func (ev *evaluator) addCopyVariables(v any) {
	list, ok := v.([]any)
	if !ok {
		ev.report("variables.copy", fmt.Errorf("a variables 'copy' block must be an array of {name, count, input} objects"))
		return
	}
	for i, item := range list {
		path := fmt.Sprintf("variables.copy[%d]", i)
		spec, ok := item.(map[string]any)
		name, _ := spec["name"].(string)
		if !ok || name == "" {
			ev.report(path, fmt.Errorf("a variable copy entry needs a literal 'name', a 'count' and an 'input'"))
			continue
		}
		ev.vars[strings.ToLower(name)] = &slot{name: name, copySpec: spec, copyPath: path}
	}
}

// report records an error at a path relative to this template.
func (ev *evaluator) report(path string, err error) {
	ev.sink.addErr(ev.prefix+path, err)
}

// loop is one active copy loop.
type loop struct {
	name     string
	index    int64
	resource bool
}

// exprEnv is the evalEnv for one place in the template.
type exprEnv struct {
	ev        *evaluator
	loops     []loop
	inDefault bool
}

func (e exprEnv) parameter(name string) (any, error) { return e.ev.parameter(name) }
func (e exprEnv) variable(name string) (any, error)  { return e.ev.variable(name) }

func (e exprEnv) info() *envInfo {
	i := e.ev.info
	i.inDefault = e.inDefault
	return &i
}

func (e exprEnv) copyIndex(name string, named bool) (int64, error) {
	for i := len(e.loops) - 1; i >= 0; i-- {
		l := e.loops[i]
		if named && strings.EqualFold(l.name, name) || !named && l.resource {
			return l.index, nil
		}
	}
	if named {
		return 0, &exprError{msg: fmt.Sprintf("copyIndex('%s'): there is no copy loop named '%s' around this value", name, name)}
	}
	if len(e.loops) > 0 {
		return e.loops[len(e.loops)-1].index, nil
	}
	return 0, &exprError{msg: "copyIndex() can only be used inside a copy loop"}
}

func (e exprEnv) with(l loop) exprEnv {
	loops := make([]loop, len(e.loops), len(e.loops)+1)
	copy(loops, e.loops)
	e.loops = append(loops, l)
	return e
}

func (ev *evaluator) rootEnv() exprEnv { return exprEnv{ev: ev} }

func (ev *evaluator) cycle(kind, name string) error {
	chain := append(append([]string{}, ev.resolving...), kind+" '"+name+"'")
	start := 0
	for i, c := range chain {
		if c == kind+" '"+name+"'" {
			start = i
			break
		}
	}
	return &exprError{msg: fmt.Sprintf("%s '%s' depends on itself: %s", kind, name, strings.Join(chain[start:], " -> "))}
}

func (ev *evaluator) variable(name string) (any, error) {
	s, ok := ev.vars[strings.ToLower(name)]
	if !ok {
		return nil, &exprError{msg: fmt.Sprintf("variable '%s' is not defined", name)}
	}
	switch s.state {
	case 1:
		return nil, ev.cycle("variable", s.name)
	case 2:
		return s.val, s.err
	}
	s.state = 1
	ev.resolving = append(ev.resolving, "variable '"+s.name+"'")
	var ok2 bool
	if s.copySpec != nil {
		s.val, ok2 = ev.expandCopy(s.copySpec, s.copyPath, ev.rootEnv())
	} else {
		s.val, ok2 = ev.walk(s.decl, "variables"+keyPath(s.name), ev.rootEnv())
	}
	ev.resolving = ev.resolving[:len(ev.resolving)-1]
	if !ok2 {
		s.val, s.err = nil, errReported
	}
	s.state = 2
	return s.val, s.err
}

// evalString evaluates a JSON string value: an expression if it is one,
// else the literal (with a leading "[[" unescaped).
func evalString(s string, env evalEnv) (any, error) {
	lit, isExpr := classify(s)
	if !isExpr {
		return lit, nil
	}
	n, err := parseExpression(s)
	if err != nil {
		return nil, err
	}
	return evalNode(env, n)
}

var plainKey = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$-]*$`)

// keyPath renders an object key as a path step.
func keyPath(k string) string {
	if plainKey.MatchString(k) {
		return "." + k
	}
	return "['" + strings.ReplaceAll(k, "'", "''") + "']"
}

func joinPath(base, step string) string {
	if base == "" {
		return strings.TrimPrefix(step, ".")
	}
	return base + step
}

// walk evaluates every expression inside v, recording errors at their
// paths. ok is false if anything failed.
func (ev *evaluator) walk(v any, path string, env exprEnv) (any, bool) {
	switch v := v.(type) {
	case string:
		r, err := evalString(v, env)
		if err != nil {
			ev.report(path, err)
			return nil, false
		}
		return r, true
	case []any:
		out := make([]any, len(v))
		ok := true
		for i, e := range v {
			var eok bool
			out[i], eok = ev.walk(e, fmt.Sprintf("%s[%d]", path, i), env)
			ok = ok && eok
		}
		return out, ok
	case map[string]any:
		out := make(map[string]any, len(v))
		ok := true
		for _, e := range sortedEntries(v) {
			if strings.EqualFold(e.key, "copy") && isPropertyCopy(e.val) {
				for i, spec := range e.val.([]any) {
					m := spec.(map[string]any)
					name, _ := m["name"].(string)
					arr, aok := ev.expandCopy(m, fmt.Sprintf("%s[%d]", joinPath(path, keyPath(e.key)), i), env)
					out[name] = arr
					ok = ok && aok
				}
				continue
			}
			key, kok := ev.walkKey(e.key, joinPath(path, keyPath(e.key)), env)
			var eok bool
			out[key], eok = ev.walk(e.val, joinPath(path, keyPath(e.key)), env)
			ok = ok && eok && kok
		}
		return out, ok
	}
	return v, true
}

// walkKey evaluates a property name. ARM evaluates expressions in names
// too: templates key userAssignedIdentities by
// "[parameters('identityId')]". The value must be a string.
func (ev *evaluator) walkKey(key, path string, env exprEnv) (string, bool) {
	if !strings.HasPrefix(key, "[") || !strings.HasSuffix(key, "]") || strings.HasPrefix(key, "[[") {
		r, _ := evalString(key, env) // unescapes "[[" like a value
		if s, isStr := r.(string); isStr {
			return s, true
		}
		return key, true
	}
	r, err := evalString(key, env)
	if err != nil {
		ev.report(path, err)
		return key, false
	}
	s, isStr := r.(string)
	if u, ok := r.(Unknown); ok {
		return u.String(), true // see UnknownKey
	}
	if !isStr {
		ev.report(path, fmt.Errorf("a property name expression must give a string, not %s", describeValue(r)))
		return key, false
	}
	return s, true
}

// isPropertyCopy tells a property (or variable) copy block - an array of
// {name, count, input} - from ordinary data.
func isPropertyCopy(v any) bool {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return false
	}
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := m["name"].(string); !ok {
			return false
		}
		if _, ok := m["input"]; !ok {
			return false
		}
	}
	return true
}

// maxCopyCount is ARM's limit on copy loop iterations.
const maxCopyCount = 800

// evalCount evaluates a copy loop's count.
func (ev *evaluator) evalCount(v any, path string, env exprEnv) (int64, bool) {
	c, ok := ev.walk(v, path, env)
	if !ok {
		return 0, false
	}
	if u, ok := c.(Unknown); ok {
		ev.report(path, fmt.Errorf("copy count comes from %s, which only a live deployment knows, so the loop cannot be expanded offline", u.Source))
		return 0, false
	}
	n, isInt := c.(int64)
	if s, isStr := c.(string); isStr {
		if v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			n, isInt = v, true
		}
	}
	if !isInt {
		ev.report(path, fmt.Errorf("copy count must be an integer, not %s", describeValue(c)))
		return 0, false
	}
	if n < 0 || n > maxCopyCount {
		ev.report(path, fmt.Errorf("copy count %d must be between 0 and %d", n, maxCopyCount))
		return 0, false
	}
	return n, true
}

// expandCopy evaluates a {name, count, input} block into an array.
func (ev *evaluator) expandCopy(spec map[string]any, path string, env exprEnv) ([]any, bool) {
	name, _ := spec["name"].(string)
	countV, has := spec["count"]
	if !has {
		ev.report(path, fmt.Errorf("copy block '%s' has no 'count'", name))
		return nil, false
	}
	n, ok := ev.evalCount(countV, path+".count", env)
	if !ok {
		return nil, false
	}
	out := make([]any, n)
	for i := int64(0); i < n; i++ {
		var eok bool
		out[i], eok = ev.walk(spec["input"], path+".input", env.with(loop{name: name, index: i}))
		if !eok {
			return nil, false
		}
	}
	return out, true
}
