package customize

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/goldsmith-dev/goldsmith/template"
)

// Kind says which part of the template a step comes from, in the words
// messages use ("customizer 3/5 ..."). It is not a phase of the run: those
// are build.Phase.
type Kind string

const (
	KindCustomizer Kind = "customizer"
	KindValidator  Kind = "validator"
	KindGeneralize Kind = "generalize"
)

// StepError is the failure of one customizer or in-VM validator. Its message
// is written to read well as AIB's lastRunStatus.message, e.g.
//
//	customizer 3/5 "install-web" (Shell) failed with exit code 100: last output: E: Unable to locate package nginxx
type StepError struct {
	Kind     Kind
	Index    int // 1-based
	Total    int
	Name     string
	Type     template.CustomizerType
	ExitCode int      // -1 when the step did not end with an exit code
	Tail     []string // the step's last output lines (up to TailLines)
	Hint     string   // what the user can probably do about it, if known
	Err      error    // cause when the step did not end with an exit code
}

// Lines of Tail that Error includes; the full Tail is in the field and the log.
const messageLines = 5

func (e *StepError) Error() string {
	var b strings.Builder
	if e.Kind == KindGeneralize {
		fmt.Fprintf(&b, "generalize (%s)", e.Name)
	} else {
		fmt.Fprintf(&b, "%s %d/%d %q (%s)", e.Kind, e.Index, e.Total, e.Name, e.Type)
	}
	switch {
	case e.Err != nil && (errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded)):
		fmt.Fprintf(&b, " did not finish: %v", e.Err)
	case e.Err != nil:
		fmt.Fprintf(&b, " failed: %v", e.Err)
	default:
		fmt.Fprintf(&b, " failed with exit code %d", e.ExitCode)
	}
	if e.Hint != "" {
		b.WriteString(" (" + e.Hint + ")")
	}
	if tail := nonEmpty(e.Tail); len(tail) > 0 {
		if len(tail) > messageLines {
			tail = tail[len(tail)-messageLines:]
		}
		for i, l := range tail {
			if len(l) > 200 {
				tail[i] = l[:200] + "…"
			}
		}
		b.WriteString(": last output: ")
		b.WriteString(strings.Join(tail, " | "))
	}
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

func nonEmpty(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// ErrUnsupported is wrapped by the error of a customizer goldsmith cannot run
// in this guest (WindowsRestart and WindowsUpdate: Windows guests are not
// supported yet).
var ErrUnsupported = errors.New("not supported")
