package armtemplate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// parameter returns a parameter's value, resolving it on first use. A
// failure is reported once, at the parameter, and later uses get
// errReported.
func (ev *evaluator) parameter(name string) (any, error) {
	s, ok := ev.params[strings.ToLower(name)]
	if !ok {
		return nil, &exprError{msg: fmt.Sprintf("parameter '%s' is not declared in the template's parameters", name)}
	}
	switch s.state {
	case 1:
		return nil, ev.cycle("parameter", s.name)
	case 2:
		return s.val, s.err
	}
	s.state = 1
	ev.resolving = append(ev.resolving, "parameter '"+s.name+"'")
	v, err := ev.resolveParameter(s)
	ev.resolving = ev.resolving[:len(ev.resolving)-1]
	if err != nil {
		ev.report("parameters"+keyPath(s.name), err)
		v, err = nil, errReported
	}
	s.val, s.err, s.state = v, err, 2
	return v, err
}

// resolveAllParameters resolves every declared parameter, as ARM does, so
// a missing value is reported even if nothing uses it.
func (ev *evaluator) resolveAllParameters() {
	for _, k := range sortedSlotKeys(ev.params) {
		_, _ = ev.parameter(k)
	}
}

func sortedSlotKeys(m map[string]*slot) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (ev *evaluator) resolveParameter(s *slot) (any, error) {
	decl, ok := s.decl.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("parameter '%s' must be declared as an object with a 'type'", s.name)
	}
	typ := ""
	if t, ok := lookupKey(decl, "type"); ok {
		ts, isStr := t.(string)
		if !isStr {
			return nil, fmt.Errorf("parameter '%s' has a non-string type %s", s.name, describeValue(t))
		}
		typ = strings.ToLower(ts)
	} else if _, ok := lookupKey(decl, "$ref"); !ok {
		return nil, fmt.Errorf("parameter '%s' has no 'type'", s.name)
	}
	lk := strings.ToLower(s.name)
	var v any
	switch given, isGiven := ev.given[lk]; {
	case ev.failed[lk]:
		return nil, errReported
	case isGiven:
		v = given
	default:
		def, hasDef := lookupKey(decl, "defaultValue")
		if !hasDef {
			if n, _ := lookupKey(decl, "nullable"); n == true {
				return nil, nil
			}
			return nil, fmt.Errorf("parameter '%s' has no value: give it in --parameters or a defaultValue", s.name)
		}
		env := ev.rootEnv()
		env.inDefault = true
		var ok bool
		if v, ok = ev.walk(def, "parameters"+keyPath(s.name)+".defaultValue", env); !ok {
			return nil, errReported
		}
	}
	if u, ok := v.(Unknown); ok {
		return u, nil // its type and constraints are checked at deployment
	}
	v, err := convertParameter(s.name, typ, v)
	if err != nil {
		return nil, err
	}
	return v, checkConstraints(s.name, typ, v, decl)
}

// convertParameter checks a value against the declared type, converting
// text that clearly means the declared type (values typed on a command
// line arrive as strings).
func convertParameter(name, typ string, v any) (any, error) {
	if v == nil {
		return nil, nil // ARM accepts null for any type
	}
	bad := func(want string) error {
		return fmt.Errorf("parameter '%s' is declared as %s, but its value is %s", name, want, describeValue(v))
	}
	switch typ {
	case "":
		return v, nil // a "$ref" type: not checked offline
	case "string", "securestring":
		if _, ok := v.(string); !ok {
			return nil, bad("a string")
		}
	case "int":
		switch x := v.(type) {
		case int64:
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return nil, bad("an int")
			}
			return n, nil
		default:
			return nil, bad("an int")
		}
	case "bool":
		switch x := v.(type) {
		case bool:
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
			return nil, bad("a bool")
		default:
			return nil, bad("a bool")
		}
	case "object", "secureobject":
		if s, ok := v.(string); ok {
			if parsed, err := decodeJSONValue([]byte(s)); err == nil {
				if m, ok := parsed.(map[string]any); ok {
					return m, nil
				}
			}
		}
		if _, ok := v.(map[string]any); !ok {
			return nil, bad("an object")
		}
	case "array":
		if s, ok := v.(string); ok {
			if parsed, err := decodeJSONValue([]byte(s)); err == nil {
				if a, ok := parsed.([]any); ok {
					return a, nil
				}
			}
		}
		if _, ok := v.([]any); !ok {
			return nil, bad("an array")
		}
	default:
		return nil, fmt.Errorf("parameter '%s' has unknown type '%s' (use string, securestring, int, bool, object, secureObject or array)", name, typ)
	}
	return v, nil
}

func checkConstraints(name, typ string, v any, decl map[string]any) error {
	if v == nil {
		return nil
	}
	if av, ok := lookupKey(decl, "allowedValues"); ok {
		allowed, isArr := av.([]any)
		if !isArr {
			return fmt.Errorf("parameter '%s': allowedValues must be an array", name)
		}
		values := []any{v}
		if arr, isArr := v.([]any); isArr && typ == "array" {
			values = arr // every element of an array must be allowed
		}
		for _, x := range values {
			if !allowedContains(allowed, x) {
				return fmt.Errorf("parameter '%s': value %s is not one of allowedValues %s", name, quoteValue(x), listValues(allowed))
			}
		}
	}
	if n, ok := v.(int64); ok {
		if mv, has := lookupKey(decl, "minValue"); has {
			if m, isInt := mv.(int64); isInt && n < m {
				return fmt.Errorf("parameter '%s': value %d is less than minValue %d", name, n, m)
			}
		}
		if mv, has := lookupKey(decl, "maxValue"); has {
			if m, isInt := mv.(int64); isInt && n > m {
				return fmt.Errorf("parameter '%s': value %d is greater than maxValue %d", name, n, m)
			}
		}
	}
	length := -1
	switch x := v.(type) {
	case string:
		length = len([]rune(x))
	case []any:
		length = len(x)
	}
	if length >= 0 {
		if mv, has := lookupKey(decl, "minLength"); has {
			if m, isInt := mv.(int64); isInt && int64(length) < m {
				return fmt.Errorf("parameter '%s': length %d is less than minLength %d", name, length, m)
			}
		}
		if mv, has := lookupKey(decl, "maxLength"); has {
			if m, isInt := mv.(int64); isInt && int64(length) > m {
				return fmt.Errorf("parameter '%s': length %d is greater than maxLength %d", name, length, m)
			}
		}
	}
	return nil
}

// allowedContains matches strings case-insensitively: rejecting a value
// Azure would accept is worse than accepting one it would reject.
func allowedContains(allowed []any, v any) bool {
	for _, a := range allowed {
		if deepEqual(a, v) {
			return true
		}
		as, ok1 := a.(string)
		vs, ok2 := v.(string)
		if ok1 && ok2 && strings.EqualFold(as, vs) {
			return true
		}
	}
	return false
}

func quoteValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return scalarString(v)
}

func listValues(vs []any) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = scalarString(v)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func decodeJSONValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return normalize(v), nil
}

// ParseParameterFile reads parameter values for Context.Parameters. It
// accepts the ARM parameter-file format
//
//	{"$schema": "...deploymentParameters.json#", "contentVersion": "1.0.0.0",
//	 "parameters": {"name": {"value": ...}}}
//
// the same "parameters" object without the envelope ({"name": {"value": ...}}),
// and a bare object of values ({"name": ...}) when no entry looks like a
// {"value": ...} wrapper. Key Vault references cannot be resolved offline
// and are reported by parameter name.
func ParseParameterFile(data []byte) (map[string]any, error) {
	v, err := decodeJSONValue(data)
	if err != nil {
		return nil, fmt.Errorf("parameter file is not valid JSON: %w", err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("parameter file must hold a JSON object, not %s", describeValue(v))
	}
	_, hasSchema := doc["$schema"]
	_, hasVersion := doc["contentVersion"]
	params, hasParams := doc["parameters"].(map[string]any)
	var entries map[string]any
	switch {
	case hasSchema || hasVersion:
		if !hasParams {
			if _, present := doc["parameters"]; present {
				return nil, fmt.Errorf("parameter file: 'parameters' must be an object")
			}
			return map[string]any{}, nil
		}
		entries = params
	case hasParams && len(doc) == 1 && allWrapped(params) && len(params) > 0:
		entries = params
	default:
		wrapped, bare := 0, 0
		for _, e := range doc {
			if isWrapped(e) {
				wrapped++
			} else {
				bare++
			}
		}
		if wrapped > 0 && bare > 0 {
			return nil, fmt.Errorf("parameter file mixes {\"value\": ...} entries with bare values; use one form")
		}
		if bare > 0 {
			return plainMap(doc), nil
		}
		entries = doc
	}
	out := make(map[string]any, len(entries))
	var errs []string
	for _, e := range sortedEntries(entries) {
		m, ok := e.val.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Sprintf("parameter '%s' must be an object like {\"value\": ...}", e.key))
			continue
		}
		if _, ok := m["reference"]; ok {
			errs = append(errs, fmt.Sprintf("parameter '%s' is a Key Vault reference, which needs a live Azure deployment; give its value directly", e.key))
			continue
		}
		val, ok := m["value"]
		if !ok {
			errs = append(errs, fmt.Sprintf("parameter '%s' has no \"value\"", e.key))
			continue
		}
		out[e.key] = plainJSON(val)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("parameter file: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// isWrapped reports whether v is a parameter-file entry: an object with
// "value" or "reference" and nothing but those and "metadata".
func isWrapped(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	_, hasValue := m["value"]
	_, hasRef := m["reference"]
	if !hasValue && !hasRef {
		return false
	}
	for k := range m {
		if k != "value" && k != "reference" && k != "metadata" {
			return false
		}
	}
	return true
}

func allWrapped(m map[string]any) bool {
	for _, v := range m {
		if !isWrapped(v) {
			return false
		}
	}
	return true
}

func plainMap(m map[string]any) map[string]any {
	return plainJSON(m).(map[string]any)
}
