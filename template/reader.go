package template

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goldsmith-dev/goldsmith/armtemplate"
)

// object reads one JSON object of a template, enforcing the apiVersion's
// property names and casing, and records every problem with its path.
type object struct {
	rep  *report
	ver  APIVersion
	path string
	m    map[string]any
	used map[string]bool
}

func newObject(rep *report, ver APIVersion, path string, m map[string]any) *object {
	return &object{rep: rep, ver: ver, path: path, m: m, used: map[string]bool{}}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// lookup finds a property. Before 2024-02-01, AIB matched names
// case-insensitively; from then on a wrongly cased name is an error.
func (o *object) lookup(name string) (any, string, bool) {
	if v, ok := o.m[name]; ok {
		o.used[name] = true
		return v, join(o.path, name), true
	}
	for k, v := range o.m {
		if strings.EqualFold(k, name) {
			o.used[k] = true
			p := join(o.path, k)
			if o.ver.StrictCase {
				o.rep.errorf(CodeInvalidTemplate, p, "property %q must be spelled %q: property names are case-sensitive from api-version 2024-02-01", k, name)
				return nil, p, false
			}
			return v, p, true
		}
	}
	return nil, join(o.path, name), false
}

// notIn marks a property the apiVersion does not have: AIB ignores it, so
// goldsmith warns instead of failing.
func (o *object) notIn(name, since string) {
	if _, p, ok := o.lookup(name); ok {
		o.rep.warnf(p, "property %q is not part of api-version %s (it arrived in %s) and is ignored", name, o.ver.Name, since)
	}
}

// done warns about properties nobody read.
func (o *object) done() {
	var unknown []string
	for k := range o.m {
		if !o.used[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		o.rep.warnf(join(o.path, k), "unknown property %q is ignored", k)
	}
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64, int, int64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func (o *object) wrongType(p string, want string, v any) {
	o.rep.errorf(CodeInvalidTemplate, p, "must be %s, not %s", want, typeName(v))
}

func (o *object) str(name string) (string, string) {
	v, p, ok := o.lookup(name)
	if !ok || v == nil {
		return "", p
	}
	if u, isUnknown := v.(armtemplate.Unknown); isUnknown {
		return u.String(), p // present, value unknown (see parse)
	}
	s, isStr := v.(string)
	if !isStr {
		o.wrongType(p, "a string", v)
	}
	return s, p
}

// has reports whether a property is present (and not null).
func (o *object) has(name string) bool {
	v, _, ok := o.lookup(name)
	return ok && v != nil
}

func (o *object) boolean(name string) bool {
	v, p, ok := o.lookup(name)
	if !ok || v == nil {
		return false
	}
	switch b := v.(type) {
	case bool:
		return b
	case string:
		// AIB's front end converts "true"/"false"; ARM parameters of type
		// string often carry them.
		if parsed, err := strconv.ParseBool(b); err == nil {
			o.rep.warnf(p, "%q is a string; use the boolean %t", b, parsed)
			return parsed
		}
	}
	o.wrongType(p, "a boolean (true or false)", v)
	return false
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(n), 10, 32)
		return int(i), err == nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
			return 0, false
		}
		return int(n), true
	case int:
		return n, true
	case int64:
		return int(n), n >= math.MinInt32 && n <= math.MaxInt32
	}
	return 0, false
}

func (o *object) integer(name string) (int, string, bool) {
	v, p, ok := o.lookup(name)
	if !ok || v == nil {
		return 0, p, false
	}
	if s, isStr := v.(string); isStr {
		// As for booleans: "30" from a string-typed ARM parameter is accepted.
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32); err == nil {
			o.rep.warnf(p, "%q is a string; use the number %d", s, n)
			return int(n), p, true
		}
	}
	i, isInt := toInt(v)
	if !isInt {
		o.wrongType(p, "an integer", v)
		return 0, p, false
	}
	return i, p, true
}

func (o *object) strings(name string) ([]string, string) {
	v, p, ok := o.lookup(name)
	if !ok || v == nil {
		return nil, p
	}
	arr, isArr := v.([]any)
	if !isArr {
		o.wrongType(p, "an array of strings", v)
		return nil, p
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			o.wrongType(fmt.Sprintf("%s[%d]", p, i), "a string", e)
			continue
		}
		out = append(out, s)
	}
	return out, p
}

func (o *object) ints(name string) ([]int, string) {
	v, p, ok := o.lookup(name)
	if !ok || v == nil {
		return nil, p
	}
	arr, isArr := v.([]any)
	if !isArr {
		o.wrongType(p, "an array of integers", v)
		return nil, p
	}
	out := make([]int, 0, len(arr))
	for i, e := range arr {
		if str, isStr := e.(string); isStr {
			if n, err := strconv.Atoi(strings.TrimSpace(str)); err == nil {
				o.rep.warnf(fmt.Sprintf("%s[%d]", p, i), "%q is a string; use the number %d", str, n)
				out = append(out, n)
				continue
			}
		}
		n, isInt := toInt(e)
		if !isInt {
			o.wrongType(fmt.Sprintf("%s[%d]", p, i), "an integer", e)
			continue
		}
		out = append(out, n)
	}
	return out, p
}

func (o *object) tags(name string) map[string]string {
	v, p, ok := o.lookup(name)
	if !ok || v == nil {
		return nil
	}
	m, isObj := v.(map[string]any)
	if !isObj {
		o.wrongType(p, "an object of string values", v)
		return nil
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		s, isStr := e.(string)
		if !isStr {
			o.wrongType(join(p, k), "a string", e)
			continue
		}
		out[k] = s
	}
	return out
}

// child returns a nested object, or nil when absent.
func (o *object) child(name string) *object {
	v, p, ok := o.lookup(name)
	if !ok || v == nil {
		return nil
	}
	m, isObj := v.(map[string]any)
	if !isObj {
		o.wrongType(p, "an object", v)
		return nil
	}
	return newObject(o.rep, o.ver, p, m)
}

// children returns the objects of an array property.
func (o *object) children(name string) ([]*object, string, bool) {
	v, p, ok := o.lookup(name)
	if !ok || v == nil {
		return nil, p, false
	}
	arr, isArr := v.([]any)
	if !isArr {
		o.wrongType(p, "an array", v)
		return nil, p, true
	}
	out := make([]*object, 0, len(arr))
	for i, e := range arr {
		ep := fmt.Sprintf("%s[%d]", p, i)
		m, isObj := e.(map[string]any)
		if !isObj {
			o.wrongType(ep, "an object", e)
			continue
		}
		out = append(out, newObject(o.rep, o.ver, ep, m))
	}
	return out, p, true
}

// oneOf matches a discriminator value case-insensitively (AIB accepts both
// "managedImage" and "ManagedImage") and returns its canonical spelling.
func oneOf[T ~string](v string, allowed ...T) (T, bool) {
	i := slices.IndexFunc(allowed, func(a T) bool { return strings.EqualFold(string(a), v) })
	if i < 0 {
		return "", false
	}
	return allowed[i], true
}
