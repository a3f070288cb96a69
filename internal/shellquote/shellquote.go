// Package shellquote quotes words for a POSIX shell: the guest's commands over
// SSH, mmdebstrap's hooks, and commands written to logs.
package shellquote

import "strings"

// Quote returns s as one word for a POSIX shell. Words made only of
// characters no shell treats specially (letters, digits and -_./:,+@%) stay
// bare, so commands read well in logs; anything else, and the empty word, is
// single-quoted (a ' inside closes the quotes, is escaped, and reopens
// them). '=' is quoted because "a=b" in a command's first word is an
// assignment, and Quote cannot know the position.
func Quote(s string) string { return quote(s, "") }

// Join quotes each word and joins them with spaces into a command line.
// After the first word (the command) '=' stays bare: "--opt=value" is an
// argument there, never an assignment.
func Join(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if i == 0 {
			q[i] = Quote(w)
		} else {
			q[i] = quote(w, "=")
		}
	}
	return strings.Join(q, " ")
}

func quote(s, alsoBare string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !bare(r) && !strings.ContainsRune(alsoBare, r) }) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func bare(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:,+@%", r)
}
