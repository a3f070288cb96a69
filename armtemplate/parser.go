package armtemplate

import (
	"fmt"
	"strings"
)

// node is one element of a parsed expression.
type node interface{ column() int }

type strLit struct {
	val string
	col int
}

type intLit struct {
	val int64
	col int
}

// callExpr is a function call; name keeps the spelling used in the template.
type callExpr struct {
	name string
	args []node
	col  int
}

// memberExpr is property access: x.name.
type memberExpr struct {
	x    node
	name string
	col  int
}

// indexExpr is element access: x[idx].
type indexExpr struct {
	x   node
	idx node
	col int
}

func (n *strLit) column() int     { return n.col }
func (n *intLit) column() int     { return n.col }
func (n *callExpr) column() int   { return n.col }
func (n *memberExpr) column() int { return n.col }
func (n *indexExpr) column() int  { return n.col }

// maxNesting bounds parser recursion so hostile input cannot exhaust the
// stack; real templates nest a dozen levels at most.
const maxNesting = 256

// classify tells whether a JSON string is an ARM expression. It returns the
// literal value for plain strings (with a leading "[[" unescaped to "[") and
// the expression text otherwise.
func classify(s string) (literal string, isExpr bool) {
	if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if s[1] == '[' {
			return s[1:], false
		}
		return s, true
	}
	return s, false
}

// parseExpression parses a complete "[...]" expression string.
func parseExpression(s string) (node, error) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, &exprError{col: 1, msg: "an expression must start with '[' and end with ']'"}
	}
	inner := s[1 : len(s)-1]
	toks, err := tokenize(inner, 2)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if p.peek().kind == tokEOF {
		return nil, &exprError{col: 1, msg: "empty expression '[]'; write '[[]' for a literal string starting with '['"}
	}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, &exprError{col: t.col, msg: fmt.Sprintf("unexpected %s after the end of the expression", t.describe())}
	}
	return n, nil
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *parser) expect(k tokenKind, context string) (token, error) {
	t := p.next()
	if t.kind != k {
		return t, &exprError{col: t.col, msg: fmt.Sprintf("expected %s %s, found %s", k, context, t.describe())}
	}
	return t, nil
}

func (p *parser) expr(depth int) (node, error) {
	if depth > maxNesting {
		return nil, &exprError{col: p.peek().col, msg: fmt.Sprintf("expression is nested more than %d levels deep", maxNesting)}
	}
	n, err := p.primary(depth)
	if err != nil {
		return nil, err
	}
	for {
		switch t := p.peek(); t.kind {
		case tokDot:
			p.next()
			name, err := p.expect(tokIdent, "(a property name) after '.'")
			if err != nil {
				return nil, err
			}
			n = &memberExpr{x: n, name: name.text, col: name.col}
		case tokLBracket:
			p.next()
			idx, err := p.expr(depth + 1)
			if err != nil {
				return nil, err
			}
			if _, err := p.expect(tokRBracket, "to close the index"); err != nil {
				return nil, err
			}
			n = &indexExpr{x: n, idx: idx, col: t.col}
		default:
			return n, nil
		}
	}
}

func (p *parser) primary(depth int) (node, error) {
	t := p.next()
	switch t.kind {
	case tokString:
		return &strLit{val: t.text, col: t.col}, nil
	case tokInt:
		return &intLit{val: t.num, col: t.col}, nil
	case tokIdent:
		name := t.text
		// A namespaced user-defined function: ns.func(...).
		if p.peek().kind == tokDot && p.pos+2 < len(p.toks) &&
			p.toks[p.pos+1].kind == tokIdent && p.toks[p.pos+2].kind == tokLParen {
			p.next()
			name += "." + p.next().text
		}
		if p.peek().kind != tokLParen {
			switch strings.ToLower(name) {
			case "true", "false", "null":
				return nil, &exprError{col: t.col, msg: fmt.Sprintf("'%s' is a function in ARM expressions: write %s()", name, strings.ToLower(name))}
			}
			return nil, &exprError{col: t.col, msg: fmt.Sprintf("'%s' must be followed by '(': only function calls, strings and numbers can start an expression", name)}
		}
		p.next()
		var args []node
		if p.peek().kind == tokRParen {
			p.next()
			return &callExpr{name: name, col: t.col}, nil
		}
		for {
			a, err := p.expr(depth + 1)
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			sep := p.next()
			if sep.kind == tokRParen {
				break
			}
			if sep.kind != tokComma {
				return nil, &exprError{col: sep.col, msg: fmt.Sprintf("expected ',' or ')' in the arguments of '%s', found %s", name, sep.describe())}
			}
		}
		return &callExpr{name: name, args: args, col: t.col}, nil
	case tokEOF:
		return nil, &exprError{col: t.col, msg: "expression ends too early: a value is missing"}
	}
	return nil, &exprError{col: t.col, msg: fmt.Sprintf("expected a function call, string or number, found %s", t.describe())}
}
