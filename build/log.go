package build

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"
)

// logWriter is the run's customization.log: whole lines, each stamped with
// the time, from any goroutine, to the file and (optionally) a live reader.
type logWriter struct {
	mu   sync.Mutex
	file io.Writer
	live io.Writer // may be nil
}

func newLogWriter(file io.Writer, live io.Writer) *logWriter {
	return &logWriter{file: file, live: live}
}

func (l *logWriter) line(s string) { l.write(s, true) }

// write logs one line to the file and, when toLive, to the live reader.
func (l *logWriter) write(s string, toLive bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := fmt.Sprintf("%s %s\n", time.Now().UTC().Format("15:04:05"), s)
	io.WriteString(l.file, line)
	if toLive && l.live != nil {
		io.WriteString(l.live, line)
	}
}

// Notef writes goldsmith's own note.
func (l *logWriter) Notef(format string, args ...any) {
	l.line("[goldsmith] " + fmt.Sprintf(format, args...))
}

// Write takes lines already prefixed by their source (the customizers' output).
func (l *logWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSuffix(p, []byte("\n")), []byte("\n")) {
		l.line(string(line))
	}
	return len(p), nil
}

// prefixed returns a writer that splits its input into lines and logs each
// with a prefix, keeping a partial line until it is complete.
func (l *logWriter) prefixed(prefix string) *prefixWriter {
	return &prefixWriter{log: l, prefix: prefix, live: true}
}

// fileOnly is like prefixed, for noisy sources (the serial console) that
// go to the file but not to the live stream.
func (l *logWriter) fileOnly(prefix string) *prefixWriter {
	return &prefixWriter{log: l, prefix: prefix}
}

type prefixWriter struct {
	log    *logWriter
	prefix string
	live   bool
	mu     sync.Mutex
	buf    []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.write(w.prefix+string(bytes.TrimRight(w.buf[:i], "\r")), w.live)
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// Flush logs a trailing partial line.
func (w *prefixWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.log.write(w.prefix+string(w.buf), w.live)
		w.buf = nil
	}
}
