package armtemplate

import (
	"fmt"
	"math"
	"strings"
)

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
