package armtemplate

import (
	"encoding/json"
	"fmt"
	"math"
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
