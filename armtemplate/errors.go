package armtemplate

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one problem found while evaluating a template.
type Error struct {
	// Path is the JSON path of the offending value inside the template,
	// e.g. "resources[0].properties.customize[2].scriptUri".
	Path string
	// Column is the 1-based column inside the JSON string where an
	// expression problem was found ('[' is column 1); 0 when not applicable.
	Column int
	// Msg says what is wrong.
	Msg string
	// Err is the underlying cause, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Column > 0 {
		fmt.Fprintf(&b, " (at column %d of the expression)", e.Column)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorList holds every problem found in one evaluation, so a user can fix
// all mistakes in one go. It is returned as the error of Evaluate.
type ErrorList []*Error

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As and errors.Is look at each problem.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// errReported marks a failure whose cause was already added to the error
// list (a missing parameter, a broken variable), so that each use of it does
// not report the same problem again.
var errReported = errors.New("depends on a value that failed to evaluate")

// exprError is an error inside an expression; col is 1-based in the
// JSON string.
type exprError struct {
	col int
	msg string
	err error
}

func (e *exprError) Error() string { return e.msg }
func (e *exprError) Unwrap() error { return e.err }

// errorSink collects errors for one Evaluate call, dropping exact
// duplicates (the same mistake in every iteration of a copy loop).
type errorSink struct {
	list ErrorList
	seen map[string]bool
	// conditions are resources' conditions only a live deployment can
	// decide, by the path of the condition.
	conditions []*Error
}

func (s *errorSink) add(e *Error) {
	key := fmt.Sprintf("%s\x00%d\x00%s", e.Path, e.Column, e.Msg)
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	if s.seen[key] {
		return
	}
	s.seen[key] = true
	s.list = append(s.list, e)
}

// addErr records err found at path, unless it was already reported.
func (s *errorSink) addErr(path string, err error) {
	if errors.Is(err, errReported) {
		return
	}
	var ee *exprError
	if errors.As(err, &ee) {
		s.add(&Error{Path: path, Column: ee.col, Msg: ee.msg, Err: ee.err})
		return
	}
	var te *Error
	if errors.As(err, &te) {
		s.add(te)
		return
	}
	s.add(&Error{Path: path, Msg: err.Error(), Err: err})
}

func (s *errorSink) err() error {
	if len(s.list) == 0 {
		return nil
	}
	return s.list
}

// warn records something about the resource at path that could not be
// decided offline.
func (ev *evaluator) warn(path, msg string) {
	ev.sink.conditions = append(ev.sink.conditions, &Error{Path: ev.prefix + path, Msg: msg})
}

// takeWarnings returns the undecided conditions of the resource at path and
// of every resource (or nested deployment) around it.
func (ev *evaluator) takeWarnings(path string) []*Error {
	var out []*Error
	for _, w := range ev.sink.conditions {
		base := strings.TrimSuffix(w.Path, ".condition")
		if path == base || strings.HasPrefix(path, base+".") || strings.HasPrefix(path, base+"[") {
			out = append(out, w)
		}
	}
	return out
}
