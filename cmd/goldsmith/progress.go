package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/goldsmith-dev/goldsmith/build"
)

// progressView shows a build's log as it streams and, on a terminal, a
// status line under it: phase, customizer i/n with its name, elapsed time.
type progressView struct {
	mu     sync.Mutex
	out    io.Writer
	tty    bool
	status string
	start  time.Time
	done   chan struct{}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newProgressView(out io.Writer) *progressView {
	v := &progressView{out: out, tty: isTerminal(out), start: time.Now(), done: make(chan struct{})}
	if v.tty {
		go v.tick()
	}
	return v
}

// tick keeps the elapsed time moving while nothing is logged.
func (v *progressView) tick() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			v.mu.Lock()
			v.redraw()
			v.mu.Unlock()
		case <-v.done:
			return
		}
	}
}

func (v *progressView) redraw() {
	if !v.tty || v.status == "" {
		return
	}
	el := time.Since(v.start).Round(time.Second)
	fmt.Fprintf(v.out, "\r\033[K\033[1m[%s] %s\033[0m", el, v.status)
}

// Write takes whole log lines.
func (v *progressView) Write(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tty {
		fmt.Fprint(v.out, "\r\033[K")
	}
	n, err := v.out.Write(p)
	v.redraw()
	return n, err
}

// Update is the build's progress callback.
func (v *progressView) Update(p build.Progress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.status = string(p.Phase)
	if p.Steps > 0 {
		v.status += fmt.Sprintf(" %d/%d %s (%s)", p.Step, p.Steps, p.StepName, p.StepType)
	} else if p.Message != "" {
		v.status += ": " + p.Message
	}
	v.redraw()
}

// Close ends the status line.
func (v *progressView) Close() {
	close(v.done)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tty {
		fmt.Fprint(v.out, "\r\033[K")
	}
}
