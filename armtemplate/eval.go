package armtemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// evalEnv is what expression evaluation needs from the template around it.
// It is an interface (not the concrete evaluator) so the function table can
// call back into template state without an initialization cycle.
type evalEnv interface {
	parameter(name string) (any, error)
	variable(name string) (any, error)
	copyIndex(loop string, named bool) (int64, error)
	info() *envInfo
}

// evalNode evaluates one parsed expression node.
func evalNode(env evalEnv, n node) (any, error) {
	switch n := n.(type) {
	case *strLit:
		return n.val, nil
	case *intLit:
		return n.val, nil
	case *memberExpr:
		x, err := evalNode(env, n.x)
		if err != nil {
			return nil, err
		}
		if u, ok := x.(Unknown); ok {
			return u, nil
		}
		v, err := property(x, n.name)
		if err != nil {
			return nil, &exprError{col: n.col, msg: err.Error()}
		}
		return v, nil
	case *indexExpr:
		x, err := evalNode(env, n.x)
		if err != nil {
			return nil, err
		}
		idx, err := evalNode(env, n.idx)
		if err != nil {
			return nil, err
		}
		if u, ok := x.(Unknown); ok {
			return u, nil
		}
		if u, ok := idx.(Unknown); ok {
			return u, nil
		}
		v, err := element(x, idx)
		if err != nil {
			return nil, &exprError{col: n.col, msg: err.Error()}
		}
		return v, nil
	case *callExpr:
		return evalCall(env, n)
	}
	return nil, fmt.Errorf("internal error: unknown expression node %T", n)
}

func evalCall(env evalEnv, c *callExpr) (any, error) {
	lname := strings.ToLower(c.name)
	fail := func(format string, a ...any) error {
		return &exprError{col: c.col, msg: fmt.Sprintf(format, a...)}
	}
	spec, ok := functions[lname]
	if !ok {
		switch {
		case strings.Contains(lname, "."):
			return nil, fail("user-defined function '%s' is not supported", c.name)
		case isDeployTime(lname):
			// Its arguments are still checked; its answer only a live
			// deployment knows.
			for _, a := range c.args {
				if _, err := evalNode(env, a); err != nil {
					return nil, err
				}
			}
			return Unknown{Source: c.name + "()"}, nil
		case lambdaFunctions[lname]:
			return nil, fail("function '%s' takes a lambda, and lambda functions are not supported offline", c.name)
		}
		return nil, fail("unknown ARM template function '%s'", c.name)
	}
	if len(c.args) < spec.minArgs || (spec.maxArgs >= 0 && len(c.args) > spec.maxArgs) {
		return nil, fail("function '%s' %s, but %d given", spec.name, arityText(spec), len(c.args))
	}
	var v any
	var err error
	if spec.lazy != nil {
		var unknown Unknown
		v, err = spec.lazy(env, len(c.args), func(i int) (any, error) {
			a, err := evalNode(env, c.args[i])
			if u, ok := a.(Unknown); ok && err == nil {
				unknown = u
				return nil, errUnknownArg
			}
			return a, err
		})
		if errors.Is(err, errUnknownArg) {
			return unknown, nil
		}
	} else {
		args := make([]any, len(c.args))
		for i, a := range c.args {
			if args[i], err = evalNode(env, a); err != nil {
				return nil, err
			}
		}
		if u, ok := unknownArg(lname, args); ok {
			return u, nil
		}
		v, err = spec.fn(env, args)
	}
	if err != nil {
		if errors.Is(err, errReported) {
			return nil, err
		}
		var ee *exprError
		if errors.As(err, &ee) {
			if ee.col == 0 {
				// A message that needs no function prefix (an undefined
				// variable); point it at this call.
				return nil, &exprError{col: c.col, msg: ee.msg, err: ee.err}
			}
			return nil, err
		}
		return nil, &exprError{col: c.col, msg: fmt.Sprintf("%s: %s", spec.name, err.Error()), err: err}
	}
	return v, nil
}

func arityText(s fnSpec) string {
	plural := func(n int) string {
		if n == 1 {
			return "1 argument"
		}
		return fmt.Sprintf("%d arguments", n)
	}
	switch {
	case s.maxArgs < 0:
		return "takes at least " + plural(s.minArgs)
	case s.minArgs == s.maxArgs:
		return "takes " + plural(s.minArgs)
	default:
		return fmt.Sprintf("takes %d to %s", s.minArgs, plural(s.maxArgs))
	}
}

// lookupKey finds key in an object: exactly first, then ignoring case,
// because ARM property names are case-insensitive.
func lookupKey(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for _, e := range sortedEntries(m) {
		if strings.EqualFold(e.key, key) {
			return e.val, true
		}
	}
	return nil, false
}

type entry struct {
	key string
	val any
}

// sortedEntries returns an object's entries sorted by key, for
// deterministic iteration.
func sortedEntries(m map[string]any) []entry {
	out := make([]entry, 0, len(m))
	for k, v := range m {
		out = append(out, entry{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func property(x any, name string) (any, error) {
	m, ok := x.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("cannot read property '%s' of %s", name, describeValue(x))
	}
	if v, ok := lookupKey(m, name); ok {
		return v, nil
	}
	keys := sortedKeys(m)
	if len(keys) == 0 {
		return nil, fmt.Errorf("property '%s' does not exist: the object is empty", name)
	}
	if len(keys) > 20 {
		keys = append(keys[:20], "...")
	}
	return nil, fmt.Errorf("property '%s' does not exist; available properties are %s", name, strings.Join(keys, ", "))
}

func element(x, idx any) (any, error) {
	switch x := x.(type) {
	case []any:
		i, ok := idx.(int64)
		if !ok {
			return nil, fmt.Errorf("an array index must be an integer, not %s", describeValue(idx))
		}
		if i < 0 || i >= int64(len(x)) {
			return nil, fmt.Errorf("index %d is out of range for an array of length %d", i, len(x))
		}
		return x[i], nil
	case map[string]any:
		k, ok := idx.(string)
		if !ok {
			return nil, fmt.Errorf("an object index must be a string, not %s", describeValue(idx))
		}
		return property(x, k)
	}
	return nil, fmt.Errorf("cannot index %s", describeValue(x))
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// describeValue names a value's type and, for scalars, shows it briefly.
func describeValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("string '%s'", v)
	case int64, float64, bool:
		return fmt.Sprintf("%s %v", typeName(v), v)
	}
	return "an " + typeName(v)
}

// normalize deep-copies a decoded JSON value into the evaluator's value
// model: integral numbers become int64, other numbers float64.
func normalize(v any) any {
	switch v := v.(type) {
	case nil, bool, string, int64, Unknown:
		return v
	case float64:
		if v == math.Trunc(v) && v >= -9.2e18 && v <= 9.2e18 {
			return int64(v)
		}
		return v
	case float32:
		return normalize(float64(v))
	case int:
		return int64(v)
	case int32:
		return int64(v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return normalize(f)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = normalize(e)
		}
		return out
	}
	// Other Go types (structs, typed maps): go through JSON.
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return fmt.Sprint(v)
	}
	return normalize(out)
}

// plainJSON converts an evaluated value to what encoding/json would decode:
// numbers as float64.
func plainJSON(v any) any {
	switch v := v.(type) {
	case int64:
		return float64(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = plainJSON(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = plainJSON(e)
		}
		return out
	}
	return v
}

// deepEqual compares two values the way ARM's equals() does: strings
// case-sensitively, numbers by value, arrays in order, objects by keys.
func deepEqual(a, b any) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case bool:
		bb, ok := b.(bool)
		return ok && a == bb
	case string:
		bs, ok := b.(string)
		return ok && a == bs
	case int64, float64:
		af, _ := toFloat(a)
		bf, ok := toFloat(b)
		return ok && af == bf
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return false
		}
		for i := range a {
			if !deepEqual(a[i], bs[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return false
		}
		for k, v := range a {
			w, ok := lookupKey(bm, k)
			if !ok || !deepEqual(v, w) {
				return false
			}
		}
		return true
	}
	return false
}

func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

// compactJSON renders a value as ARM's string() does for arrays and objects.
func compactJSON(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // ARM does not escape <, > and & in string()
	if err := enc.Encode(plainJSON(v)); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
