package armtemplate

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

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
