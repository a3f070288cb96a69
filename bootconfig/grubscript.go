package bootconfig

import (
	"fmt"
	"strings"
)

// A parser for the GRUB script language as grub.cfg files use it (GRUB's
// grub-core/script: bash-like words, quoting and $variables; if/elif/else,
// function, menuentry and submenu blocks). Loops are not parsed: a config
// with one is refused.

// wordPart is a piece of a word: literal text or a variable reference.
type wordPart struct {
	text   string // literal text, or the variable's name
	isVar  bool
	quoted bool // inside double quotes: the value is not split into words
}

type word struct {
	parts []wordPart
	plain bool // no quotes and no variables: may be a keyword or a brace
}

func (w word) literal() string {
	var b strings.Builder
	for _, p := range w.parts {
		if p.isVar {
			b.WriteString("$" + p.text)
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

func (w word) is(kw string) bool { return w.plain && w.literal() == kw }

type token struct {
	word    word
	newline bool // a ";" or a line end
	line    int
}

// lexGrub splits a GRUB script into words and separators.
func lexGrub(src string) ([]token, error) {
	var toks []token
	line := 1
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n' || c == ';':
			toks = append(toks, token{newline: true, line: line})
			if c == '\n' {
				line++
			}
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r':
			i++
			continue
		case c == '\\' && i+1 < len(src) && src[i+1] == '\n':
			i += 2
			line++
			continue
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		}
		// A word: runs until unquoted blank, newline or ';'.
		startLine := line
		w := word{plain: true}
		lit := func(s string, quoted bool) {
			if n := len(w.parts); n > 0 && !w.parts[n-1].isVar && w.parts[n-1].quoted == quoted {
				w.parts[n-1].text += s
				return
			}
			w.parts = append(w.parts, wordPart{text: s, quoted: quoted})
		}
	word:
		for i < len(src) {
			c := src[i]
			switch c {
			case ' ', '\t', '\r', '\n', ';':
				break word
			case '\\':
				w.plain = false
				if i+1 >= len(src) {
					return nil, fmt.Errorf("line %d: backslash at end of file", line)
				}
				if src[i+1] == '\n' {
					line++
				} else {
					lit(string(src[i+1]), false)
				}
				i += 2
			case '\'':
				w.plain = false
				end := strings.IndexByte(src[i+1:], '\'')
				if end < 0 {
					return nil, fmt.Errorf("line %d: unterminated single quote", line)
				}
				s := src[i+1 : i+1+end]
				line += strings.Count(s, "\n")
				lit(s, true) // even when empty: '' is an (empty) argument
				i += end + 2
			case '"':
				w.plain = false
				lit("", true) // "" is an (empty) argument
				i++
				closed := false
				for i < len(src) {
					c := src[i]
					if c == '"' {
						i++
						closed = true
						break
					}
					if c == '\\' && i+1 < len(src) && strings.IndexByte("$\"\\\n", src[i+1]) >= 0 {
						if src[i+1] == '\n' {
							line++
						} else {
							lit(string(src[i+1]), true)
						}
						i += 2
						continue
					}
					if c == '$' {
						if name, n, ok := varRef(src[i:]); ok {
							w.parts = append(w.parts, wordPart{text: name, isVar: true, quoted: true})
							i += n
							continue
						}
					}
					if c == '\n' {
						line++
					}
					lit(string(c), true)
					i++
				}
				if !closed {
					return nil, fmt.Errorf("line %d: unterminated double quote", startLine)
				}
			case '$':
				if name, n, ok := varRef(src[i:]); ok {
					w.plain = false
					w.parts = append(w.parts, wordPart{text: name, isVar: true})
					i += n
					continue
				}
				lit("$", false)
				i++
			default:
				lit(string(c), false)
				i++
			}
		}
		toks = append(toks, token{word: w, line: startLine})
	}
	return toks, nil
}

// varRef parses $name, ${name} or a special $?, $#, $@, $*, $N.
func varRef(s string) (name string, n int, ok bool) {
	if len(s) < 2 {
		return "", 0, false
	}
	if s[1] == '{' {
		end := strings.IndexByte(s, '}')
		if end < 3 {
			return "", 0, false
		}
		return s[2:end], end + 1, true
	}
	if strings.IndexByte("?#@*", s[1]) >= 0 {
		return s[1:2], 2, true
	}
	j := 1
	for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
		j++
	}
	if j == 1 {
		return "", 0, false
	}
	return s[1:j], j, true
}

// Statements of the parsed script.
type (
	stmt interface{ pos() int }

	command struct {
		words []word
		line  int
	}
	ifStmt struct {
		clauses []ifClause // if and elifs
		orElse  []stmt     // nil without else
		line    int
	}
	ifClause struct {
		cond, body []stmt
	}
	funcStmt struct {
		name string
		body []stmt
		line int
	}
	menuStmt struct {
		submenu bool
		args    []word
		body    []stmt
		line    int
	}
)

func (c *command) pos() int  { return c.line }
func (s *ifStmt) pos() int   { return s.line }
func (s *funcStmt) pos() int { return s.line }
func (s *menuStmt) pos() int { return s.line }

type parser struct {
	toks []token
	i    int
}

// parseGrub parses a whole script.
func parseGrub(src string) ([]stmt, error) {
	toks, err := lexGrub(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	list, end, err := p.list()
	if err != nil {
		return nil, err
	}
	if end != "" {
		return nil, fmt.Errorf("line %d: unexpected %q", p.toks[p.i].line, end)
	}
	return list, nil
}

var terminators = map[string]bool{"then": true, "elif": true, "else": true, "fi": true, "}": true, "do": true, "done": true}

// list parses statements up to a terminator keyword (returned, not
// consumed) or the end ("").
func (p *parser) list() ([]stmt, string, error) {
	var out []stmt
	for {
		for p.i < len(p.toks) && p.toks[p.i].newline {
			p.i++
		}
		if p.i >= len(p.toks) {
			return out, "", nil
		}
		t := p.toks[p.i]
		if t.word.plain && terminators[t.word.literal()] {
			return out, t.word.literal(), nil
		}
		s, err := p.statement()
		if err != nil {
			return nil, "", err
		}
		out = append(out, s)
	}
}

func (p *parser) expect(kw string) error {
	for p.i < len(p.toks) && p.toks[p.i].newline {
		p.i++
	}
	if p.i >= len(p.toks) || !p.toks[p.i].word.is(kw) {
		line := 0
		if p.i < len(p.toks) {
			line = p.toks[p.i].line
		} else if len(p.toks) > 0 {
			line = p.toks[len(p.toks)-1].line
		}
		return fmt.Errorf("line %d: expected %q", line, kw)
	}
	p.i++
	return nil
}

func (p *parser) statement() (stmt, error) {
	t := p.toks[p.i]
	first := t.word
	switch {
	case first.is("if"):
		p.i++
		s := &ifStmt{line: t.line}
		for {
			cond, _, err := p.list()
			if err != nil {
				return nil, err
			}
			if err := p.expect("then"); err != nil {
				return nil, err
			}
			body, end, err := p.list()
			if err != nil {
				return nil, err
			}
			s.clauses = append(s.clauses, ifClause{cond: cond, body: body})
			p.i++ // the terminator
			switch end {
			case "elif":
				continue
			case "else":
				orElse, _, err := p.list()
				if err != nil {
					return nil, err
				}
				if orElse == nil {
					orElse = []stmt{}
				}
				s.orElse = orElse
				if err := p.expect("fi"); err != nil {
					return nil, err
				}
			case "fi":
			default:
				return nil, fmt.Errorf("line %d: if without fi", t.line)
			}
			return s, nil
		}
	case first.is("function"):
		p.i++
		if p.i >= len(p.toks) || p.toks[p.i].newline {
			return nil, fmt.Errorf("line %d: function without a name", t.line)
		}
		name := p.toks[p.i].word.literal()
		p.i++
		body, err := p.block()
		if err != nil {
			return nil, err
		}
		return &funcStmt{name: name, body: body, line: t.line}, nil
	case first.is("menuentry") || first.is("submenu"):
		p.i++
		var args []word
		for p.i < len(p.toks) && !p.toks[p.i].newline && !p.toks[p.i].word.is("{") {
			args = append(args, p.toks[p.i].word)
			p.i++
		}
		body, err := p.block()
		if err != nil {
			return nil, err
		}
		return &menuStmt{submenu: first.is("submenu"), args: args, body: body, line: t.line}, nil
	case first.is("for") || first.is("while") || first.is("until") || first.is("{"):
		return nil, fmt.Errorf("line %d: %q is not supported", t.line, first.literal())
	}
	c := &command{line: t.line}
	// A "}" word closes a block even on the command's line ("{ linux /k }").
	for p.i < len(p.toks) && !p.toks[p.i].newline && !p.toks[p.i].word.is("}") {
		c.words = append(c.words, p.toks[p.i].word)
		p.i++
	}
	return c, nil
}

// block parses "{ list }".
func (p *parser) block() ([]stmt, error) {
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	body, _, err := p.list()
	if err != nil {
		return nil, err
	}
	return body, p.expect("}")
}
