package armtemplate

import (
	"fmt"
	"strconv"
	"unicode"
)

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokLBracket
	tokRBracket
	tokLParen
	tokRParen
	tokComma
	tokDot
	tokString
	tokInt
	tokIdent
)

func (k tokenKind) String() string {
	switch k {
	case tokEOF:
		return "end of expression"
	case tokLBracket:
		return "'['"
	case tokRBracket:
		return "']'"
	case tokLParen:
		return "'('"
	case tokRParen:
		return "')'"
	case tokComma:
		return "','"
	case tokDot:
		return "'.'"
	case tokString:
		return "string"
	case tokInt:
		return "number"
	case tokIdent:
		return "name"
	}
	return "token"
}

type token struct {
	kind tokenKind
	text string // identifier name or decoded string literal
	num  int64
	col  int // 1-based column in the JSON string
}

func (t token) describe() string {
	switch t.kind {
	case tokIdent:
		return fmt.Sprintf("name '%s'", t.text)
	case tokString:
		return fmt.Sprintf("string '%s'", t.text)
	case tokInt:
		return fmt.Sprintf("number %d", t.num)
	}
	return t.kind.String()
}

// tokenize splits the inside of an expression (without its outer brackets)
// into tokens. startCol is the column of the first rune of src.
func tokenize(src string, startCol int) ([]token, error) {
	rs := []rune(src)
	var toks []token
	for i := 0; i < len(rs); {
		r := rs[i]
		col := startCol + i
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			i++
		case r == '[':
			toks = append(toks, token{kind: tokLBracket, col: col})
			i++
		case r == ']':
			toks = append(toks, token{kind: tokRBracket, col: col})
			i++
		case r == '(':
			toks = append(toks, token{kind: tokLParen, col: col})
			i++
		case r == ')':
			toks = append(toks, token{kind: tokRParen, col: col})
			i++
		case r == ',':
			toks = append(toks, token{kind: tokComma, col: col})
			i++
		case r == '.':
			toks = append(toks, token{kind: tokDot, col: col})
			i++
		case r == '\'':
			// Strings are single-quoted; a doubled quote is a literal quote.
			var buf []rune
			j := i + 1
			closed := false
			for j < len(rs) {
				if rs[j] == '\'' {
					if j+1 < len(rs) && rs[j+1] == '\'' {
						buf = append(buf, '\'')
						j += 2
						continue
					}
					closed = true
					j++
					break
				}
				buf = append(buf, rs[j])
				j++
			}
			if !closed {
				return nil, &exprError{col: col, msg: "string literal is not closed: add a ' (write '' for a quote inside a string)"}
			}
			toks = append(toks, token{kind: tokString, text: string(buf), col: col})
			i = j
		case r == '-' || isDigit(r):
			j := i
			if r == '-' {
				j++
				if j >= len(rs) || !isDigit(rs[j]) {
					return nil, &exprError{col: col, msg: "'-' must be followed by digits"}
				}
			}
			for j < len(rs) && isDigit(rs[j]) {
				j++
			}
			if j+1 < len(rs) && rs[j] == '.' && isDigit(rs[j+1]) {
				return nil, &exprError{col: col, msg: "decimal numbers are not supported in ARM expressions; use json('1.5') for a decimal value"}
			}
			n, err := strconv.ParseInt(string(rs[i:j]), 10, 64)
			if err != nil {
				return nil, &exprError{col: col, msg: fmt.Sprintf("number %s is out of range for a 64-bit integer", string(rs[i:j]))}
			}
			toks = append(toks, token{kind: tokInt, num: n, col: col})
			i = j
		case r == '_' || unicode.IsLetter(r):
			j := i + 1
			for j < len(rs) && (rs[j] == '_' || unicode.IsLetter(rs[j]) || isDigit(rs[j])) {
				j++
			}
			toks = append(toks, token{kind: tokIdent, text: string(rs[i:j]), col: col})
			i = j
		case r == '"':
			return nil, &exprError{col: col, msg: "strings in ARM expressions use single quotes, not double quotes"}
		default:
			return nil, &exprError{col: col, msg: fmt.Sprintf("unexpected character %q", r)}
		}
	}
	toks = append(toks, token{kind: tokEOF, col: startCol + len(rs)})
	return toks, nil
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }
