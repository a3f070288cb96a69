package machine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// qmpEvent is one asynchronous QMP event, e.g. SHUTDOWN.
type qmpEvent struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// qmpConn is a minimal client for the QEMU Machine Protocol: one command in
// flight at a time, events delivered to a callback from the reader goroutine.
type qmpConn struct {
	conn    net.Conn
	onEvent func(qmpEvent)

	mu      sync.Mutex // serializes commands
	replies chan qmpReply
	done    chan struct{} // closed when the reader stops (QEMU closed the socket)
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// dialQMP connects to a QMP unix socket, reads the greeting and enters
// command mode. The socket may not exist yet: it retries until ctx ends or
// alive reports false (the QEMU process is gone).
func dialQMP(ctx context.Context, path string, alive func() bool, onEvent func(qmpEvent)) (*qmpConn, error) {
	var conn net.Conn
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			conn = c
			break
		}
		if !alive() {
			return nil, fmt.Errorf("connecting to QMP: qemu exited")
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connecting to QMP at %s: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	q := &qmpConn{conn: conn, onEvent: onEvent, replies: make(chan qmpReply, 1), done: make(chan struct{})}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	line, err := r.ReadBytes('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading QMP greeting: %w", err)
	}
	var greet struct {
		QMP json.RawMessage `json:"QMP"`
	}
	if err := json.Unmarshal(line, &greet); err != nil || greet.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("unexpected QMP greeting %q", line)
	}
	_ = conn.SetDeadline(time.Time{})
	go q.read(r)
	if _, err := q.execute(ctx, "qmp_capabilities", nil); err != nil {
		q.close()
		return nil, err
	}
	return q, nil
}

func (q *qmpConn) read(r *bufio.Reader) {
	defer close(q.done)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var probe struct {
			Event  string          `json:"event"`
			Return json.RawMessage `json:"return"`
			Error  json.RawMessage `json:"error"`
		}
		if json.Unmarshal(line, &probe) != nil {
			continue
		}
		if probe.Event != "" {
			var ev qmpEvent
			if json.Unmarshal(line, &ev) == nil && q.onEvent != nil {
				q.onEvent(ev)
			}
			continue
		}
		var rep qmpReply
		if json.Unmarshal(line, &rep) == nil {
			select {
			case q.replies <- rep:
			default: // nobody waiting (a command timed out): drop
			}
		}
	}
}

// execute runs one QMP command and returns its "return" value.
func (q *qmpConn) execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	// Drop a late reply to an earlier, abandoned command.
	select {
	case <-q.replies:
	default:
	}
	msg := map[string]any{"execute": command}
	if args != nil {
		msg["arguments"] = args
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	_ = q.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("QMP %s: %w", command, err)
	}
	select {
	case rep := <-q.replies:
		if rep.Error != nil {
			return nil, fmt.Errorf("QMP %s: %s: %s", command, rep.Error.Class, rep.Error.Desc)
		}
		return rep.Return, nil
	case <-q.done:
		return nil, fmt.Errorf("QMP %s: %w", command, errQMPClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("QMP %s: %w", command, ctx.Err())
	}
}

var errQMPClosed = errors.New("QMP connection closed")

func (q *qmpConn) close() {
	q.conn.Close()
	<-q.done
}
