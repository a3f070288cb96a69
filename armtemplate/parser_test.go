package armtemplate

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// dump renders an AST compactly for comparison.
func dump(n node) string {
	switch n := n.(type) {
	case *strLit:
		return fmt.Sprintf("%q", n.val)
	case *intLit:
		return fmt.Sprint(n.val)
	case *callExpr:
		args := make([]string, len(n.args))
		for i, a := range n.args {
			args[i] = dump(a)
		}
		return n.name + "(" + strings.Join(args, ", ") + ")"
	case *memberExpr:
		return dump(n.x) + "." + n.name
	case *indexExpr:
		return dump(n.x) + "[" + dump(n.idx) + "]"
	}
	return "?"
}

func TestClassify(t *testing.T) {
	tests := []struct {
		in      string
		literal string
		isExpr  bool
	}{
		{"plain", "plain", false},
		{"[f()]", "[f()]", true},
		{"[[literal]", "[literal]", false},
		{"[[f()]", "[f()]", false},
		{"[not closed", "[not closed", false},
		{"not open]", "not open]", false},
		{"[]", "[]", true},
		{"[", "[", false},
		{"", "", false},
	}
	for _, tt := range tests {
		lit, isExpr := classify(tt.in)
		if isExpr != tt.isExpr || (!isExpr && lit != tt.literal) {
			t.Errorf("classify(%q) = %q, %v; want %q, %v", tt.in, lit, isExpr, tt.literal, tt.isExpr)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"[parameters('x')]", `parameters("x")`},
		{"[concat('a', 'b', 1)]", `concat("a", "b", 1)`},
		{"[resourceGroup().location]", `resourceGroup().location`},
		{"[variables('v')[0].name]", `variables("v")[0].name`},
		{"[variables('v')[copyIndex()]['key']]", `variables("v")[copyIndex()]["key"]`},
		{"[f(g(h(-1)))]", `f(g(h(-1)))`},
		{"[ 'str' ]", `"str"`},
		{"[environment().suffixes.storage]", `environment().suffixes.storage`},
		{"[ns.func(1)]", `ns.func(1)`},
		{"[createObject('a', createArray(1, 2))]", `createObject("a", createArray(1, 2))`},
	}
	for _, tt := range tests {
		n, err := parseExpression(tt.in)
		if err != nil {
			t.Errorf("parse(%q): %v", tt.in, err)
			continue
		}
		if got := dump(n); got != tt.want {
			t.Errorf("parse(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in  string
		col int
		msg string
	}{
		{"[]", 1, "empty expression"},
		{"[concat('a' 'b')]", 13, "expected ',' or ')'"},
		{"[concat('a',)]", 13, "expected a function call, string or number"},
		{"[concat('a'", 1, "must start with '['"},
		{"[concat('a']", 12, "expected ',' or ')' in the arguments of 'concat', found end of expression"},
		{"[concat(]", 9, "expression ends too early"},
		{"[parameters]", 2, "must be followed by '('"},
		{"[true]", 2, "write true()"},
		{"[f().]", 6, "a property name"},
		{"[f()[1]", 7, "expected ']' to close the index"},
		{"[f()[1 x]", 8, "expected ']'"},
		{"[f() g()]", 6, "after the end of the expression"},
		{"[parameters('a') ]extra]", 18, "unexpected ']'"},
	}
	for _, tt := range tests {
		_, err := parseExpression(tt.in)
		var ee *exprError
		if !errors.As(err, &ee) {
			t.Errorf("parse(%q): want a syntax error, got %v", tt.in, err)
			continue
		}
		if ee.col != tt.col || !strings.Contains(ee.msg, tt.msg) {
			t.Errorf("parse(%q): got column %d %q; want column %d containing %q", tt.in, ee.col, ee.msg, tt.col, tt.msg)
		}
	}
}

func TestParseNestingLimit(t *testing.T) {
	deep := "[" + strings.Repeat("f(", maxNesting+5) + strings.Repeat(")", maxNesting+5) + "]"
	if _, err := parseExpression(deep); err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("want nesting error, got %v", err)
	}
}
