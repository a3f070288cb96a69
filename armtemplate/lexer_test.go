package armtemplate

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func renderTokens(toks []token) string {
	var parts []string
	for _, t := range toks {
		switch t.kind {
		case tokIdent:
			parts = append(parts, fmt.Sprintf("id:%s@%d", t.text, t.col))
		case tokString:
			parts = append(parts, fmt.Sprintf("str:%q@%d", t.text, t.col))
		case tokInt:
			parts = append(parts, fmt.Sprintf("int:%d@%d", t.num, t.col))
		case tokEOF:
			parts = append(parts, fmt.Sprintf("EOF@%d", t.col))
		default:
			parts = append(parts, fmt.Sprintf("%s@%d", t.kind, t.col))
		}
	}
	return strings.Join(parts, " ")
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"", "EOF@2"},
		{"foo()", "id:foo@2 '('@5 ')'@6 EOF@7"},
		{"a.b[0]", "id:a@2 '.'@3 id:b@4 '['@5 int:0@6 ']'@7 EOF@8"},
		{"f('it''s', -12, 34)", `id:f@2 '('@3 str:"it's"@4 ','@11 int:-12@13 ','@16 int:34@18 ')'@20 EOF@21`},
		{"  x ( )  ", "id:x@4 '('@6 ')'@8 EOF@11"},
		{"''", `str:""@2 EOF@4`},
		{"'a]b['", `str:"a]b["@2 EOF@8`},
		{"_x1", "id:_x1@2 EOF@5"},
		{"'é' x", `str:"é"@2 id:x@6 EOF@7`},
	}
	for _, tt := range tests {
		toks, err := tokenize(tt.in, 2)
		if err != nil {
			t.Errorf("tokenize(%q): %v", tt.in, err)
			continue
		}
		if got := renderTokens(toks); got != tt.want {
			t.Errorf("tokenize(%q)\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
}

func TestTokenizeErrors(t *testing.T) {
	tests := []struct {
		in  string
		col int
		msg string
	}{
		{"concat('abc", 9, "not closed"},
		{"f(1.5)", 4, "decimal numbers"},
		{"f(-x)", 4, "'-' must be followed by digits"},
		{`f("x")`, 4, "single quotes"},
		{"a + b", 4, "unexpected character '+'"},
		{"f(99999999999999999999)", 4, "out of range"},
	}
	for _, tt := range tests {
		_, err := tokenize(tt.in, 2)
		var ee *exprError
		if !errors.As(err, &ee) {
			t.Errorf("tokenize(%q): want exprError, got %v", tt.in, err)
			continue
		}
		if ee.col != tt.col || !strings.Contains(ee.msg, tt.msg) {
			t.Errorf("tokenize(%q): got col %d %q, want col %d containing %q", tt.in, ee.col, ee.msg, tt.col, tt.msg)
		}
	}
}
