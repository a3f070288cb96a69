package machine

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/goldsmith-dev/goldsmith/internal/shellquote"
)

// Command is one external program to start.
type Command struct {
	Path   string   // program, looked up in PATH if it has no slash
	Args   []string // arguments, without the program name
	Stdout io.Writer
	Stderr io.Writer
}

// String renders the command line for logs.
func (c Command) String() string { return shellquote.Join(append([]string{c.Path}, c.Args...)) }

// Process is a started external program.
type Process interface {
	Pid() int
	// Wait waits for the program to exit and releases its resources. It
	// must be called exactly once.
	Wait() error
	// Signal sends sig to the program's whole process group.
	Signal(sig syscall.Signal) error
}

// Runner starts external programs (here: qemu-system-x86_64). Tests and
// other hosts can substitute their own.
type Runner interface {
	Start(cmd Command) (Process, error)
}

// HostRunner runs programs as child processes of this one. Each child gets
// its own process group (so a signal reaches everything it spawned) and
// PR_SET_PDEATHSIG=SIGKILL, so a crashed goldsmith does not leave it running.
type HostRunner struct{}

type hostProcess struct {
	pid  int
	done chan struct{}
	err  error
}

// Start implements Runner.
//
// Linux delivers the parent-death signal when the *thread* that forked the
// child exits, not the process. Go may retire idle threads, so the child is
// forked from a goroutine locked to its thread for the child's whole life.
func (HostRunner) Start(c Command) (Process, error) {
	started := make(chan error, 1)
	p := &hostProcess{done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		cmd := exec.Command(c.Path, c.Args...)
		cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			runtime.UnlockOSThread()
			started <- fmt.Errorf("starting %s: %w", c.Path, err)
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
		runtime.UnlockOSThread()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *hostProcess) Pid() int { return p.pid }

func (p *hostProcess) Wait() error {
	<-p.done
	return p.err
}

func (p *hostProcess) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return errors.New("process already exited")
	default:
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to process group %d: %w", sig, p.pid, err)
	}
	return nil
}
