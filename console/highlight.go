package console

import (
	"html/template"
	"strings"
)

// highlightJSON marks up JSON text (already indented) for the page: keys,
// strings, numbers, literals and punctuation each in a span of their class.
// It is done here rather than by a browser library so the source reads
// highlighted without JavaScript. Text that is not JSON is escaped as it is.
func highlightJSON(src string) template.HTML {
	var b strings.Builder
	b.Grow(len(src) * 2)
	span := func(class, text string) {
		b.WriteString(`<span class="j-`)
		b.WriteString(class)
		b.WriteString(`">`)
		b.WriteString(template.HTMLEscapeString(text))
		b.WriteString(`</span>`)
	}
	for i := 0; i < len(src); {
		ch := src[i]
		switch {
		case ch == '"':
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(src))
			// A string followed by a colon is a key.
			k := j
			for k < len(src) && (src[k] == ' ' || src[k] == '\t') {
				k++
			}
			if k < len(src) && src[k] == ':' {
				span("key", src[i:j])
			} else {
				span("str", src[i:j])
			}
			i = j
		case ch == '-' || ch >= '0' && ch <= '9':
			j := i + 1
			for j < len(src) && strings.IndexByte("0123456789.eE+-", src[j]) >= 0 {
				j++
			}
			span("num", src[i:j])
			i = j
		case strings.HasPrefix(src[i:], "true") || strings.HasPrefix(src[i:], "false") || strings.HasPrefix(src[i:], "null"):
			n := 4
			if src[i] == 'f' {
				n = 5
			}
			span("lit", src[i:i+n])
			i += n
		case strings.IndexByte("{}[],:", ch) >= 0:
			span("p", src[i:i+1])
			i++
		default:
			// Whitespace, or text that is not JSON: up to the next token.
			j := i + 1
			for j < len(src) && strings.IndexByte("\"-0123456789tfn{}[],:", src[j]) < 0 {
				j++
			}
			b.WriteString(template.HTMLEscapeString(src[i:j]))
			i = j
		}
	}
	return template.HTML(b.String())
}
