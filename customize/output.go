package customize

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// TailLines is how many of a step's last output lines a StepError keeps.
const TailLines = 20

// maxLine splits lines longer than this (progress bars, binary noise).
const maxLine = 4096

// Marker lines the runner's own wrappers print; they are consumed, not logged.
const (
	markerStarted = "goldsmith-customize:started"
	markerReboot  = "goldsmith-customize:shutdown-pending"
	markerUserDel = "goldsmith-customize:removing-build-user"
	// markerMethod is followed by the method, the build user and, for
	// waagent, its path; markerPowerOff says the guest is powering off.
	markerMethod   = "goldsmith-customize:generalize-method"
	markerPowerOff = "goldsmith-customize:powering-off"
	// markerPackage is followed by an installed package's name and version.
	markerPackage = "goldsmith-customize:package"
)

// logSink serializes writes from every step to the run's log.
type logSink struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *logSink) line(prefix, text string) {
	if s == nil || s.w == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	io.WriteString(s.w, prefix+text+"\n")
}

// stepOutput receives a command's stdout and stderr, writes each complete
// line to the log as "[name] line", keeps the last TailLines lines, and notes
// the runner's marker lines. Both streams may write concurrently.
type stepOutput struct {
	sink   *logSink
	prefix string

	mu       sync.Mutex
	tail     []string
	started  bool
	shutdown bool
	userdel  bool
	poweroff bool     // markerPowerOff was seen
	method   []string // the fields after markerMethod
	packages []Package
	bootID   string   // the boot_id printed with markerReboot
	warnings []string // lines the guest printed as "warning: ..."
}

func newStepOutput(sink *logSink, name string) *stepOutput {
	return &stepOutput{sink: sink, prefix: "[" + name + "] "}
}

// stream returns a writer for one of the command's streams.
func (o *stepOutput) stream() *lineWriter { return &lineWriter{out: o} }

func (o *stepOutput) add(line string) {
	line = strings.TrimRight(line, "\r")
	if i := strings.LastIndexByte(line, '\r'); i >= 0 {
		line = line[i+1:] // keep what a terminal would show of a progress line
	}
	o.mu.Lock()
	if rest, ok := strings.CutPrefix(line, markerReboot); ok {
		o.shutdown = true
		o.bootID = strings.TrimSpace(rest)
		o.mu.Unlock()
		return
	}
	if rest, ok := strings.CutPrefix(line, markerPackage+" "); ok {
		if name, version, ok := strings.Cut(rest, " "); ok {
			o.packages = append(o.packages, Package{Name: name, Version: version})
		}
		o.mu.Unlock()
		return
	}
	if rest, ok := strings.CutPrefix(line, markerMethod); ok {
		o.method = strings.Fields(rest)
		o.mu.Unlock()
		return
	}
	switch line {
	case markerPowerOff:
		o.poweroff = true
		o.mu.Unlock()
		o.sink.line(o.prefix, "the guest is powering off")
		return
	case markerStarted:
		o.started = true
		o.mu.Unlock()
		return
	case markerUserDel:
		o.userdel = true
		o.mu.Unlock()
		o.sink.line(o.prefix, "removing the build user (the session may end now)")
		return
	}
	if strings.HasPrefix(line, "warning: ") {
		o.warnings = append(o.warnings, strings.TrimPrefix(line, "warning: "))
	}
	o.tail = append(o.tail, line)
	if len(o.tail) > TailLines {
		o.tail = o.tail[len(o.tail)-TailLines:]
	}
	o.mu.Unlock()
	o.sink.line(o.prefix, line)
}

// note logs a line of the runner's own about this step.
func (o *stepOutput) note(text string) { o.sink.line(o.prefix, text) }

func (o *stepOutput) lastLines() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.tail...)
}

func (o *stepOutput) state() (started, shutdown bool, bootID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.started, o.shutdown, o.bootID
}

func (o *stepOutput) reset() {
	o.mu.Lock()
	o.started, o.shutdown, o.bootID = false, false, ""
	o.mu.Unlock()
}

type lineWriter struct {
	out *stepOutput
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			for len(w.buf) > maxLine {
				w.out.add(string(w.buf[:maxLine]))
				w.buf = append(w.buf[:0], w.buf[maxLine:]...)
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.out.add(string(w.buf))
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// Flush logs a final line that had no newline.
func (w *lineWriter) Flush() {
	if len(w.buf) > 0 {
		w.out.add(string(w.buf))
		w.buf = w.buf[:0]
	}
}
