package armtemplate

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

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
