package armtemplate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// fnSpec describes one template function. Exactly one of fn and lazy is
// set; lazy functions (if, and, or, coalesce) evaluate arguments on demand
// so that an untaken branch may hold something invalid offline, as in ARM.
type fnSpec struct {
	name             string // canonical spelling, for messages
	minArgs, maxArgs int    // maxArgs < 0: no upper limit
	fn               func(env evalEnv, args []any) (any, error)
	lazy             func(env evalEnv, n int, arg func(int) (any, error)) (any, error)
}

// liveFunctions need Azure to answer (resource state, secrets, regions).
var liveFunctions = map[string]bool{
	"reference": true, "references": true, "pickzones": true, "providers": true,
	"managementgroup": true, "managementgroupresourceid": true, "deployer": true,
}

var lambdaFunctions = map[string]bool{
	"filter": true, "map": true, "reduce": true, "sort": true, "toobject": true,
	"groupby": true, "mapvalues": true, "lambda": true, "lambdavariables": true,
}

// functions is the table of supported functions keyed by lower-case name.
var functions = map[string]fnSpec{
	// Template values.
	"parameters": {name: "parameters", minArgs: 1, maxArgs: 1, fn: fnParameters},
	"variables":  {name: "variables", minArgs: 1, maxArgs: 1, fn: fnVariables},
	"copyindex":  {name: "copyIndex", minArgs: 0, maxArgs: 2, fn: fnCopyIndex},

	// Literals.
	"true":  {name: "true", fn: func(evalEnv, []any) (any, error) { return true, nil }},
	"false": {name: "false", fn: func(evalEnv, []any) (any, error) { return false, nil }},
	"null":  {name: "null", fn: func(evalEnv, []any) (any, error) { return nil, nil }},

	// Conversions.
	"string": {name: "string", minArgs: 1, maxArgs: 1, fn: fnString},
	"int":    {name: "int", minArgs: 1, maxArgs: 1, fn: fnInt},
	"bool":   {name: "bool", minArgs: 1, maxArgs: 1, fn: fnBool},
	"json":   {name: "json", minArgs: 1, maxArgs: 1, fn: fnJSON},
	"array":  {name: "array", minArgs: 1, maxArgs: 1, fn: fnArray},

	// Strings.
	"concat":               {name: "concat", minArgs: 1, maxArgs: -1, fn: fnConcat},
	"format":               {name: "format", minArgs: 1, maxArgs: -1, fn: fnFormat},
	"tolower":              {name: "toLower", minArgs: 1, maxArgs: 1, fn: fnToLower},
	"toupper":              {name: "toUpper", minArgs: 1, maxArgs: 1, fn: fnToUpper},
	"trim":                 {name: "trim", minArgs: 1, maxArgs: 1, fn: fnTrim},
	"replace":              {name: "replace", minArgs: 3, maxArgs: 3, fn: fnReplace},
	"split":                {name: "split", minArgs: 2, maxArgs: 2, fn: fnSplit},
	"join":                 {name: "join", minArgs: 2, maxArgs: 2, fn: fnJoin},
	"substring":            {name: "substring", minArgs: 1, maxArgs: 3, fn: fnSubstring},
	"indexof":              {name: "indexOf", minArgs: 2, maxArgs: 2, fn: fnIndexOf},
	"lastindexof":          {name: "lastIndexOf", minArgs: 2, maxArgs: 2, fn: fnLastIndexOf},
	"startswith":           {name: "startsWith", minArgs: 2, maxArgs: 2, fn: fnStartsWith},
	"endswith":             {name: "endsWith", minArgs: 2, maxArgs: 2, fn: fnEndsWith},
	"padleft":              {name: "padLeft", minArgs: 2, maxArgs: 3, fn: fnPadLeft},
	"base64":               {name: "base64", minArgs: 1, maxArgs: 1, fn: fnBase64},
	"base64tostring":       {name: "base64ToString", minArgs: 1, maxArgs: 1, fn: fnBase64ToString},
	"base64tojson":         {name: "base64ToJson", minArgs: 1, maxArgs: 1, fn: fnBase64ToJSON},
	"datauri":              {name: "dataUri", minArgs: 1, maxArgs: 1, fn: fnDataURI},
	"datauritostring":      {name: "dataUriToString", minArgs: 1, maxArgs: 1, fn: fnDataURIToString},
	"uri":                  {name: "uri", minArgs: 2, maxArgs: 2, fn: fnURI},
	"uricomponent":         {name: "uriComponent", minArgs: 1, maxArgs: 1, fn: fnURIComponent},
	"uricomponenttostring": {name: "uriComponentToString", minArgs: 1, maxArgs: 1, fn: fnURIComponentToString},
	"guid":                 {name: "guid", minArgs: 1, maxArgs: -1, fn: fnGUID},
	"uniquestring":         {name: "uniqueString", minArgs: 1, maxArgs: -1, fn: fnUniqueString},
	"newguid":              {name: "newGuid", minArgs: 0, maxArgs: 0, fn: fnNewGUID},

	// Arrays and objects.
	"length":       {name: "length", minArgs: 1, maxArgs: 1, fn: fnLength},
	"empty":        {name: "empty", minArgs: 1, maxArgs: 1, fn: fnEmpty},
	"contains":     {name: "contains", minArgs: 2, maxArgs: 2, fn: fnContains},
	"first":        {name: "first", minArgs: 1, maxArgs: 1, fn: fnFirst},
	"last":         {name: "last", minArgs: 1, maxArgs: 1, fn: fnLast},
	"take":         {name: "take", minArgs: 2, maxArgs: 2, fn: fnTake},
	"skip":         {name: "skip", minArgs: 2, maxArgs: 2, fn: fnSkip},
	"union":        {name: "union", minArgs: 1, maxArgs: -1, fn: fnUnion},
	"intersection": {name: "intersection", minArgs: 1, maxArgs: -1, fn: fnIntersection},
	"createarray":  {name: "createArray", minArgs: 0, maxArgs: -1, fn: fnCreateArray},
	"createobject": {name: "createObject", minArgs: 0, maxArgs: -1, fn: fnCreateObject},
	"range":        {name: "range", minArgs: 2, maxArgs: 2, fn: fnRange},
	"items":        {name: "items", minArgs: 1, maxArgs: 1, fn: fnItems},
	"objectkeys":   {name: "objectKeys", minArgs: 1, maxArgs: 1, fn: fnObjectKeys},
	"shallowmerge": {name: "shallowMerge", minArgs: 1, maxArgs: 1, fn: fnShallowMerge},
	"flatten":      {name: "flatten", minArgs: 1, maxArgs: 1, fn: fnFlatten},
	"tryget":       {name: "tryGet", minArgs: 2, maxArgs: -1, fn: fnTryGet},
	"coalesce":     {name: "coalesce", minArgs: 1, maxArgs: -1, lazy: lazyCoalesce},

	// Logic and comparison.
	"if":              {name: "if", minArgs: 3, maxArgs: 3, lazy: lazyIf},
	"and":             {name: "and", minArgs: 2, maxArgs: -1, lazy: lazyAnd},
	"or":              {name: "or", minArgs: 2, maxArgs: -1, lazy: lazyOr},
	"not":             {name: "not", minArgs: 1, maxArgs: 1, fn: fnNot},
	"equals":          {name: "equals", minArgs: 2, maxArgs: 2, fn: fnEquals},
	"less":            {name: "less", minArgs: 2, maxArgs: 2, fn: compareFn(func(c int) bool { return c < 0 })},
	"lessorequals":    {name: "lessOrEquals", minArgs: 2, maxArgs: 2, fn: compareFn(func(c int) bool { return c <= 0 })},
	"greater":         {name: "greater", minArgs: 2, maxArgs: 2, fn: compareFn(func(c int) bool { return c > 0 })},
	"greaterorequals": {name: "greaterOrEquals", minArgs: 2, maxArgs: 2, fn: compareFn(func(c int) bool { return c >= 0 })},

	// Numbers.
	"add": {name: "add", minArgs: 2, maxArgs: 2, fn: arith(func(a, b int64) (int64, error) { return checked(a, b, '+') })},
	"sub": {name: "sub", minArgs: 2, maxArgs: 2, fn: arith(func(a, b int64) (int64, error) { return checked(a, b, '-') })},
	"mul": {name: "mul", minArgs: 2, maxArgs: 2, fn: arith(func(a, b int64) (int64, error) { return checked(a, b, '*') })},
	"div": {name: "div", minArgs: 2, maxArgs: 2, fn: arith(func(a, b int64) (int64, error) { return checked(a, b, '/') })},
	"mod": {name: "mod", minArgs: 2, maxArgs: 2, fn: arith(func(a, b int64) (int64, error) { return checked(a, b, '%') })},
	"min": {name: "min", minArgs: 1, maxArgs: -1, fn: minMax(func(a, b int64) bool { return a < b })},
	"max": {name: "max", minArgs: 1, maxArgs: -1, fn: minMax(func(a, b int64) bool { return a > b })},

	// Deployment scope.
	"resourceid":             {name: "resourceId", minArgs: 2, maxArgs: -1, fn: fnResourceID},
	"subscriptionresourceid": {name: "subscriptionResourceId", minArgs: 2, maxArgs: -1, fn: fnSubscriptionResourceID},
	"tenantresourceid":       {name: "tenantResourceId", minArgs: 2, maxArgs: -1, fn: fnTenantResourceID},
	"extensionresourceid":    {name: "extensionResourceId", minArgs: 3, maxArgs: -1, fn: fnExtensionResourceID},
	"resourcegroup":          {name: "resourceGroup", minArgs: 0, maxArgs: 0, fn: fnResourceGroup},
	"subscription":           {name: "subscription", minArgs: 0, maxArgs: 0, fn: fnSubscription},
	"tenant":                 {name: "tenant", minArgs: 0, maxArgs: 0, fn: fnTenant},
	"deployment":             {name: "deployment", minArgs: 0, maxArgs: 0, fn: fnDeployment},
	"environment":            {name: "environment", minArgs: 0, maxArgs: 0, fn: fnEnvironment},

	// Dates.
	"utcnow":            {name: "utcNow", minArgs: 0, maxArgs: 1, fn: fnUtcNow},
	"datetimeadd":       {name: "dateTimeAdd", minArgs: 2, maxArgs: 3, fn: fnDateTimeAdd},
	"datetimetoepoch":   {name: "dateTimeToEpoch", minArgs: 1, maxArgs: 1, fn: fnDateTimeToEpoch},
	"datetimefromepoch": {name: "dateTimeFromEpoch", minArgs: 1, maxArgs: 1, fn: fnDateTimeFromEpoch},
}

// Argument helpers: each names the 1-based argument position on failure.

func argString(args []any, i int) (string, error) {
	if s, ok := args[i].(string); ok {
		return s, nil
	}
	return "", fmt.Errorf("argument %d must be a string, not %s", i+1, describeValue(args[i]))
}

func argInt(args []any, i int) (int64, error) {
	if n, ok := args[i].(int64); ok {
		return n, nil
	}
	return 0, fmt.Errorf("argument %d must be an integer, not %s", i+1, describeValue(args[i]))
}

func argBool(v any, i int) (bool, error) {
	if b, ok := v.(bool); ok {
		return b, nil
	}
	return false, fmt.Errorf("argument %d must be a bool, not %s", i+1, describeValue(v))
}

func argArray(args []any, i int) ([]any, error) {
	if a, ok := args[i].([]any); ok {
		return a, nil
	}
	return nil, fmt.Errorf("argument %d must be an array, not %s", i+1, describeValue(args[i]))
}

func argObject(args []any, i int) (map[string]any, error) {
	if m, ok := args[i].(map[string]any); ok {
		return m, nil
	}
	return nil, fmt.Errorf("argument %d must be an object, not %s", i+1, describeValue(args[i]))
}

func checkLen(s string) (string, error) {
	if len(s) > maxStringLen {
		return "", fmt.Errorf("result is longer than %d bytes", maxStringLen)
	}
	return s, nil
}

// Template values.

func fnParameters(env evalEnv, args []any) (any, error) {
	name, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	return env.parameter(name)
}

func fnVariables(env evalEnv, args []any) (any, error) {
	name, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	return env.variable(name)
}

func fnCopyIndex(env evalEnv, args []any) (any, error) {
	// copyIndex(), copyIndex(offset), copyIndex('loop'), copyIndex('loop', offset)
	var loop string
	var offset int64
	named := false
	for i, a := range args {
		switch v := a.(type) {
		case string:
			if i != 0 {
				return nil, fmt.Errorf("argument %d must be an integer offset, not %s", i+1, describeValue(a))
			}
			loop, named = v, true
		case int64:
			if i != len(args)-1 {
				return nil, fmt.Errorf("argument %d must be the loop name (a string), not %s", i+1, describeValue(a))
			}
			offset = v
		default:
			return nil, fmt.Errorf("argument %d must be a loop name or an integer offset, not %s", i+1, describeValue(a))
		}
	}
	idx, err := env.copyIndex(loop, named)
	if err != nil {
		return nil, err
	}
	return checked(idx, offset, '+')
}

// Conversions.

func fnString(_ evalEnv, args []any) (any, error) {
	return checkLen(scalarString(args[0]))
}

func fnInt(_ evalEnv, args []any) (any, error) {
	switch v := args[0].(type) {
	case int64:
		return v, nil
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 9e18 {
			return nil, fmt.Errorf("%v is not an integer", v)
		}
		return int64(v), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("cannot convert string '%s' to an integer", v)
		}
		return n, nil
	}
	return nil, fmt.Errorf("cannot convert %s to an integer", describeValue(args[0]))
}

func fnBool(_ evalEnv, args []any) (any, error) {
	switch v := args[0].(type) {
	case bool:
		return v, nil
	case int64:
		return v != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("cannot convert string '%s' to a bool: use 'true' or 'false'", v)
	}
	return nil, fmt.Errorf("cannot convert %s to a bool", describeValue(args[0]))
}

func fnJSON(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("argument is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("argument has text after the JSON value")
	}
	return normalize(v), nil
}

func fnArray(_ evalEnv, args []any) (any, error) {
	if a, ok := args[0].([]any); ok {
		return a, nil
	}
	return []any{args[0]}, nil
}

// Strings.

func fnConcat(_ evalEnv, args []any) (any, error) {
	if _, ok := args[0].([]any); ok {
		var out []any
		for i, a := range args {
			if a == nil {
				continue
			}
			arr, ok := a.([]any)
			if !ok {
				return nil, fmt.Errorf("argument %d must be an array like the first one, not %s", i+1, describeValue(a))
			}
			out = append(out, arr...)
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	}
	var b strings.Builder
	for i, a := range args {
		switch a.(type) {
		case []any, map[string]any:
			return nil, fmt.Errorf("argument %d is %s, but the first argument is a string: concatenate strings with strings and arrays with arrays", i+1, describeValue(a))
		}
		b.WriteString(scalarString(a))
		if b.Len() > maxStringLen {
			return nil, fmt.Errorf("result is longer than %d bytes", maxStringLen)
		}
	}
	return b.String(), nil
}

func fnFormat(_ evalEnv, args []any) (any, error) {
	f, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	return formatComposite(f, args[1:])
}

func fnToLower(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	return strings.ToLower(s), err
}

func fnToUpper(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	return strings.ToUpper(s), err
}

func fnTrim(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	return strings.TrimSpace(s), err
}

func fnReplace(_ evalEnv, args []any) (any, error) {
	var s [3]string
	for i := range s {
		var err error
		if s[i], err = argString(args, i); err != nil {
			return nil, err
		}
	}
	if s[1] == "" {
		return nil, fmt.Errorf("the text to replace (argument 2) must not be empty")
	}
	if n := strings.Count(s[0], s[1]); n > 0 && len(s[2]) > len(s[1]) &&
		len(s[0])+n*(len(s[2])-len(s[1])) > maxStringLen {
		return nil, fmt.Errorf("result is longer than %d bytes", maxStringLen)
	}
	return strings.ReplaceAll(s[0], s[1], s[2]), nil
}

func fnSplit(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	var seps []string
	switch d := args[1].(type) {
	case string:
		seps = []string{d}
	case []any:
		for _, e := range d {
			es, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("delimiters must be strings, not %s", describeValue(e))
			}
			seps = append(seps, es)
		}
	default:
		return nil, fmt.Errorf("argument 2 must be a string or an array of strings, not %s", describeValue(args[1]))
	}
	var out []any
	start := 0
	for i := 0; i < len(s); {
		matched := ""
		for _, sep := range seps {
			if sep != "" && strings.HasPrefix(s[i:], sep) {
				matched = sep
				break
			}
		}
		if matched == "" {
			i++
			continue
		}
		out = append(out, s[start:i])
		i += len(matched)
		start = i
	}
	return append(out, s[start:]), nil
}

func fnJoin(_ evalEnv, args []any) (any, error) {
	arr, err := argArray(args, 0)
	if err != nil {
		return nil, err
	}
	sep, err := argString(args, 1)
	if err != nil {
		return nil, err
	}
	parts := make([]string, len(arr))
	for i, e := range arr {
		switch e.(type) {
		case []any, map[string]any:
			return nil, fmt.Errorf("element %d is %s; only strings, numbers and bools can be joined", i, describeValue(e))
		}
		parts[i] = scalarString(e)
	}
	return checkLen(strings.Join(parts, sep))
}

func fnSubstring(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	rs := []rune(s)
	start := int64(0)
	if len(args) > 1 {
		if start, err = argInt(args, 1); err != nil {
			return nil, err
		}
	}
	if start < 0 || start > int64(len(rs)) {
		return nil, fmt.Errorf("start index %d is outside the string of length %d", start, len(rs))
	}
	length := int64(len(rs)) - start
	if len(args) > 2 {
		if length, err = argInt(args, 2); err != nil {
			return nil, err
		}
	}
	if length < 0 || start+length > int64(len(rs)) {
		return nil, fmt.Errorf("length %d from index %d goes past the end of the string of length %d", length, start, len(rs))
	}
	return string(rs[start : start+length]), nil
}

// runeIndex converts a byte offset in s to a character offset.
func runeIndex(s string, byteIdx int) int64 {
	if byteIdx < 0 {
		return -1
	}
	return int64(len([]rune(s[:byteIdx])))
}

func fnIndexOf(_ evalEnv, args []any) (any, error) {
	if arr, ok := args[0].([]any); ok {
		for i, e := range arr {
			if deepEqual(e, args[1]) {
				return int64(i), nil
			}
		}
		return int64(-1), nil
	}
	s, sub, err := twoStrings(args)
	if err != nil {
		return nil, err
	}
	// ARM's indexOf is case-insensitive for strings.
	ls := strings.ToLower(s)
	return runeIndex(ls, strings.Index(ls, strings.ToLower(sub))), nil
}

func fnLastIndexOf(_ evalEnv, args []any) (any, error) {
	if arr, ok := args[0].([]any); ok {
		for i := len(arr) - 1; i >= 0; i-- {
			if deepEqual(arr[i], args[1]) {
				return int64(i), nil
			}
		}
		return int64(-1), nil
	}
	s, sub, err := twoStrings(args)
	if err != nil {
		return nil, err
	}
	ls := strings.ToLower(s)
	return runeIndex(ls, strings.LastIndex(ls, strings.ToLower(sub))), nil
}

func twoStrings(args []any) (string, string, error) {
	a, err := argString(args, 0)
	if err != nil {
		return "", "", err
	}
	b, err := argString(args, 1)
	return a, b, err
}

func fnStartsWith(_ evalEnv, args []any) (any, error) {
	s, p, err := twoStrings(args)
	return strings.HasPrefix(strings.ToLower(s), strings.ToLower(p)), err
}

func fnEndsWith(_ evalEnv, args []any) (any, error) {
	s, p, err := twoStrings(args)
	return strings.HasSuffix(strings.ToLower(s), strings.ToLower(p)), err
}

func fnPadLeft(_ evalEnv, args []any) (any, error) {
	var s string
	switch v := args[0].(type) {
	case string:
		s = v
	case int64:
		s = strconv.FormatInt(v, 10)
	default:
		return nil, fmt.Errorf("argument 1 must be a string or an integer, not %s", describeValue(args[0]))
	}
	total, err := argInt(args, 1)
	if err != nil {
		return nil, err
	}
	if total > 16384 {
		return nil, fmt.Errorf("total length %d is larger than the limit of 16384", total)
	}
	pad := " "
	if len(args) > 2 {
		if pad, err = argString(args, 2); err != nil {
			return nil, err
		}
		if len([]rune(pad)) != 1 {
			return nil, fmt.Errorf("the padding (argument 3) must be a single character, not '%s'", pad)
		}
	}
	if n := int64(len([]rune(s))); n < total {
		s = strings.Repeat(pad, int(total-n)) + s
	}
	return s, nil
}

func fnBase64(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	return base64.StdEncoding.EncodeToString([]byte(s)), err
}

func decodeBase64(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("argument is not valid base64: %v", err)
	}
	return string(b), nil
}

func fnBase64ToString(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	return decodeBase64(s)
}

func fnBase64ToJSON(env evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	d, err := decodeBase64(s)
	if err != nil {
		return nil, err
	}
	return fnJSON(env, []any{d})
}

func fnDataURI(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	return "data:text/plain;charset=utf8;base64," + base64.StdEncoding.EncodeToString([]byte(s)), err
}

func fnDataURIToString(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(s, "data:") {
		return nil, fmt.Errorf("'%s' is not a data URI", s)
	}
	comma := strings.IndexByte(s, ',')
	if comma < 0 {
		return nil, fmt.Errorf("data URI has no ',' before its data")
	}
	meta, data := s[5:comma], s[comma+1:]
	if strings.HasSuffix(meta, ";base64") {
		return decodeBase64(data)
	}
	return url.PathUnescape(data)
}

func fnURI(_ evalEnv, args []any) (any, error) {
	base, rel, err := twoStrings(args)
	if err != nil {
		return nil, err
	}
	b, err := url.Parse(base)
	if err != nil || !b.IsAbs() {
		return nil, fmt.Errorf("base '%s' is not an absolute URI", base)
	}
	r, err := url.Parse(rel)
	if err != nil {
		return nil, fmt.Errorf("'%s' is not a valid relative URI", rel)
	}
	return b.ResolveReference(r).String(), nil
}

// fnURIComponent escapes like .NET's Uri.EscapeDataString: everything but
// the RFC 3986 unreserved characters.
func fnURIComponent(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String(), nil
}

func fnURIComponentToString(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	out, err := url.PathUnescape(s)
	if err != nil {
		return nil, fmt.Errorf("'%s' is not validly escaped: %v", s, err)
	}
	return out, nil
}

func stringArgs(args []any) ([]string, error) {
	out := make([]string, len(args))
	for i := range args {
		s, err := argString(args, i)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func fnGUID(_ evalEnv, args []any) (any, error) {
	s, err := stringArgs(args)
	if err != nil {
		return nil, err
	}
	return armGUID(s...), nil
}

func fnUniqueString(_ evalEnv, args []any) (any, error) {
	s, err := stringArgs(args)
	if err != nil {
		return nil, err
	}
	return uniqueString(s...), nil
}

func fnNewGUID(env evalEnv, _ []any) (any, error) {
	if !env.info().inDefault {
		return nil, fmt.Errorf("newGuid() can only be used in a parameter's defaultValue")
	}
	return randomGUID()
}

// Arrays and objects.

func fnLength(_ evalEnv, args []any) (any, error) {
	switch v := args[0].(type) {
	case string:
		return int64(len([]rune(v))), nil
	case []any:
		return int64(len(v)), nil
	case map[string]any:
		return int64(len(v)), nil
	}
	return nil, fmt.Errorf("argument must be a string, array or object, not %s", describeValue(args[0]))
}

func fnEmpty(_ evalEnv, args []any) (any, error) {
	switch v := args[0].(type) {
	case nil:
		return true, nil
	case string:
		return v == "", nil
	case []any:
		return len(v) == 0, nil
	case map[string]any:
		return len(v) == 0, nil
	}
	return nil, fmt.Errorf("argument must be a string, array, object or null, not %s", describeValue(args[0]))
}

func fnContains(_ evalEnv, args []any) (any, error) {
	switch c := args[0].(type) {
	case string:
		switch args[1].(type) {
		case []any, map[string]any:
			return nil, fmt.Errorf("cannot look for %s in a string", describeValue(args[1]))
		}
		return strings.Contains(c, scalarString(args[1])), nil
	case []any:
		for _, e := range c {
			if deepEqual(e, args[1]) {
				return true, nil
			}
		}
		return false, nil
	case map[string]any:
		k, ok := args[1].(string)
		if !ok {
			return nil, fmt.Errorf("an object key must be a string, not %s", describeValue(args[1]))
		}
		_, found := lookupKey(c, k)
		return found, nil
	}
	return nil, fmt.Errorf("argument 1 must be a string, array or object, not %s", describeValue(args[0]))
}

func fnFirst(_ evalEnv, args []any) (any, error) {
	switch v := args[0].(type) {
	case string:
		rs := []rune(v)
		if len(rs) == 0 {
			return "", nil
		}
		return string(rs[0]), nil
	case []any:
		if len(v) == 0 {
			return nil, nil
		}
		return v[0], nil
	}
	return nil, fmt.Errorf("argument must be a string or an array, not %s", describeValue(args[0]))
}

func fnLast(_ evalEnv, args []any) (any, error) {
	switch v := args[0].(type) {
	case string:
		rs := []rune(v)
		if len(rs) == 0 {
			return "", nil
		}
		return string(rs[len(rs)-1]), nil
	case []any:
		if len(v) == 0 {
			return nil, nil
		}
		return v[len(v)-1], nil
	}
	return nil, fmt.Errorf("argument must be a string or an array, not %s", describeValue(args[0]))
}

func clampCount(n int64, length int) int {
	if n < 0 {
		return 0
	}
	if n > int64(length) {
		return length
	}
	return int(n)
}

func fnTake(_ evalEnv, args []any) (any, error) {
	n, err := argInt(args, 1)
	if err != nil {
		return nil, err
	}
	switch v := args[0].(type) {
	case string:
		rs := []rune(v)
		return string(rs[:clampCount(n, len(rs))]), nil
	case []any:
		return append([]any{}, v[:clampCount(n, len(v))]...), nil
	}
	return nil, fmt.Errorf("argument 1 must be a string or an array, not %s", describeValue(args[0]))
}

func fnSkip(_ evalEnv, args []any) (any, error) {
	n, err := argInt(args, 1)
	if err != nil {
		return nil, err
	}
	switch v := args[0].(type) {
	case string:
		rs := []rune(v)
		return string(rs[clampCount(n, len(rs)):]), nil
	case []any:
		return append([]any{}, v[clampCount(n, len(v)):]...), nil
	}
	return nil, fmt.Errorf("argument 1 must be a string or an array, not %s", describeValue(args[0]))
}

func fnUnion(_ evalEnv, args []any) (any, error) {
	switch args[0].(type) {
	case []any:
		var out []any
		for i := range args {
			arr, err := argArray(args, i)
			if err != nil {
				return nil, err
			}
			for _, e := range arr {
				if !containsValue(out, e) {
					out = append(out, e)
				}
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	case map[string]any:
		out := map[string]any{}
		for i := range args {
			m, err := argObject(args, i)
			if err != nil {
				return nil, err
			}
			out = mergeObjects(out, m)
		}
		return out, nil
	}
	return nil, fmt.Errorf("arguments must be all arrays or all objects, not %s", describeValue(args[0]))
}

// mergeObjects merges b into a copy of a; nested objects merge
// recursively, other values from b win, as ARM's union does.
func mergeObjects(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeObjects(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func containsValue(arr []any, v any) bool {
	for _, e := range arr {
		if deepEqual(e, v) {
			return true
		}
	}
	return false
}

func fnIntersection(_ evalEnv, args []any) (any, error) {
	switch first := args[0].(type) {
	case []any:
		rest := make([][]any, 0, len(args)-1)
		for i := 1; i < len(args); i++ {
			arr, err := argArray(args, i)
			if err != nil {
				return nil, err
			}
			rest = append(rest, arr)
		}
		out := []any{}
		for _, e := range first {
			in := !containsValue(out, e)
			for _, r := range rest {
				in = in && containsValue(r, e)
			}
			if in {
				out = append(out, e)
			}
		}
		return out, nil
	case map[string]any:
		rest := make([]map[string]any, 0, len(args)-1)
		for i := 1; i < len(args); i++ {
			m, err := argObject(args, i)
			if err != nil {
				return nil, err
			}
			rest = append(rest, m)
		}
		out := map[string]any{}
		for k, v := range first {
			in := true
			for _, r := range rest {
				w, ok := r[k]
				in = in && ok && deepEqual(v, w)
			}
			if in {
				out[k] = v
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("arguments must be all arrays or all objects, not %s", describeValue(args[0]))
}

func fnCreateArray(_ evalEnv, args []any) (any, error) {
	return append([]any{}, args...), nil
}

func fnCreateObject(_ evalEnv, args []any) (any, error) {
	if len(args)%2 != 0 {
		return nil, fmt.Errorf("arguments must come in key, value pairs, but %d were given", len(args))
	}
	out := make(map[string]any, len(args)/2)
	for i := 0; i < len(args); i += 2 {
		k, err := argString(args, i)
		if err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
		out[k] = args[i+1]
	}
	return out, nil
}

func fnRange(_ evalEnv, args []any) (any, error) {
	start, err := argInt(args, 0)
	if err != nil {
		return nil, err
	}
	count, err := argInt(args, 1)
	if err != nil {
		return nil, err
	}
	if count < 0 || count > 10000 {
		return nil, fmt.Errorf("count %d must be between 0 and 10000", count)
	}
	if start+count > math.MaxInt32 || start < math.MinInt32 {
		return nil, fmt.Errorf("start plus count must fit in a 32-bit integer")
	}
	out := make([]any, count)
	for i := range out {
		out[i] = start + int64(i)
	}
	return out, nil
}

func fnItems(_ evalEnv, args []any) (any, error) {
	m, err := argObject(args, 0)
	if err != nil {
		return nil, err
	}
	keys := sortedKeys(m)
	// ARM sorts items case-insensitively by key.
	sort.SliceStable(keys, func(i, j int) bool { return strings.ToLower(keys[i]) < strings.ToLower(keys[j]) })
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = map[string]any{"key": k, "value": m[k]}
	}
	return out, nil
}

func fnObjectKeys(_ evalEnv, args []any) (any, error) {
	m, err := argObject(args, 0)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, k := range sortedKeys(m) {
		out = append(out, k)
	}
	return out, nil
}

func fnShallowMerge(_ evalEnv, args []any) (any, error) {
	arr, err := argArray(args, 0)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("element %d must be an object, not %s", i, describeValue(e))
		}
		for k, v := range m {
			out[k] = v
		}
	}
	return out, nil
}

func fnFlatten(_ evalEnv, args []any) (any, error) {
	arr, err := argArray(args, 0)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for i, e := range arr {
		inner, ok := e.([]any)
		if !ok {
			return nil, fmt.Errorf("element %d must be an array, not %s", i, describeValue(e))
		}
		out = append(out, inner...)
	}
	return out, nil
}

func fnTryGet(_ evalEnv, args []any) (any, error) {
	cur := args[0]
	for _, k := range args[1:] {
		switch c := cur.(type) {
		case map[string]any:
			ks, ok := k.(string)
			if !ok {
				return nil, nil
			}
			cur, _ = lookupKey(c, ks)
		case []any:
			i, ok := k.(int64)
			if !ok || i < 0 || i >= int64(len(c)) {
				return nil, nil
			}
			cur = c[i]
		default:
			return nil, nil
		}
	}
	return cur, nil
}

func lazyCoalesce(_ evalEnv, n int, arg func(int) (any, error)) (any, error) {
	for i := 0; i < n; i++ {
		v, err := arg(i)
		if err != nil {
			return nil, err
		}
		if v != nil {
			return v, nil
		}
	}
	return nil, nil
}

// Logic.

func lazyIf(_ evalEnv, _ int, arg func(int) (any, error)) (any, error) {
	c, err := arg(0)
	if err != nil {
		return nil, err
	}
	b, err := argBool(c, 0)
	if err != nil {
		return nil, err
	}
	if b {
		return arg(1)
	}
	return arg(2)
}

func lazyAnd(_ evalEnv, n int, arg func(int) (any, error)) (any, error) {
	for i := 0; i < n; i++ {
		v, err := arg(i)
		if err != nil {
			return nil, err
		}
		b, err := argBool(v, i)
		if err != nil {
			return nil, err
		}
		if !b {
			return false, nil
		}
	}
	return true, nil
}

func lazyOr(_ evalEnv, n int, arg func(int) (any, error)) (any, error) {
	for i := 0; i < n; i++ {
		v, err := arg(i)
		if err != nil {
			return nil, err
		}
		b, err := argBool(v, i)
		if err != nil {
			return nil, err
		}
		if b {
			return true, nil
		}
	}
	return false, nil
}

func fnNot(_ evalEnv, args []any) (any, error) {
	b, err := argBool(args[0], 0)
	return !b, err
}

func fnEquals(_ evalEnv, args []any) (any, error) {
	return deepEqual(args[0], args[1]), nil
}

func compareFn(ok func(int) bool) func(evalEnv, []any) (any, error) {
	return func(_ evalEnv, args []any) (any, error) {
		if a, isNum := toFloat(args[0]); isNum {
			b, bNum := toFloat(args[1])
			if !bNum {
				return nil, fmt.Errorf("cannot compare %s with %s", describeValue(args[0]), describeValue(args[1]))
			}
			c := 0
			if a < b {
				c = -1
			} else if a > b {
				c = 1
			}
			return ok(c), nil
		}
		a, aStr := args[0].(string)
		b, bStr := args[1].(string)
		if !aStr || !bStr {
			return nil, fmt.Errorf("arguments must be two integers or two strings, not %s and %s", describeValue(args[0]), describeValue(args[1]))
		}
		return ok(strings.Compare(a, b)), nil
	}
}

// Numbers.

func arith(op func(a, b int64) (int64, error)) func(evalEnv, []any) (any, error) {
	return func(_ evalEnv, args []any) (any, error) {
		a, err := argInt(args, 0)
		if err != nil {
			return nil, err
		}
		b, err := argInt(args, 1)
		if err != nil {
			return nil, err
		}
		return op(a, b)
	}
}

// checked does 64-bit integer arithmetic, reporting overflow and division
// by zero instead of wrapping or panicking.
func checked(a, b int64, op byte) (int64, error) {
	overflow := fmt.Errorf("integer overflow in %d %c %d", a, op, b)
	switch op {
	case '+':
		r := a + b
		if (b > 0 && r < a) || (b < 0 && r > a) {
			return 0, overflow
		}
		return r, nil
	case '-':
		r := a - b
		if (b < 0 && r < a) || (b > 0 && r > a) {
			return 0, overflow
		}
		return r, nil
	case '*':
		if a == 0 || b == 0 {
			return 0, nil
		}
		r := a * b
		if r/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
			return 0, overflow
		}
		return r, nil
	case '/', '%':
		if b == 0 {
			return 0, fmt.Errorf("division by zero")
		}
		if a == math.MinInt64 && b == -1 {
			if op == '%' {
				return 0, nil
			}
			return 0, overflow
		}
		if op == '/' {
			return a / b, nil
		}
		return a % b, nil
	}
	return 0, fmt.Errorf("internal error: unknown operator %c", op)
}

func minMax(better func(a, b int64) bool) func(evalEnv, []any) (any, error) {
	return func(_ evalEnv, args []any) (any, error) {
		vals := args
		if len(args) == 1 {
			arr, ok := args[0].([]any)
			if !ok {
				return nil, fmt.Errorf("argument must be an array of integers or several integers, not %s", describeValue(args[0]))
			}
			vals = arr
		}
		if len(vals) == 0 {
			return nil, fmt.Errorf("needs at least one value")
		}
		var best int64
		for i := range vals {
			n, err := argInt(vals, i)
			if err != nil {
				return nil, err
			}
			if i == 0 || better(n, best) {
				best = n
			}
		}
		return best, nil
	}
}
