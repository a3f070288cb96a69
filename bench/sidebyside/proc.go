package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// interruptGrace is how long a canceled build may clean up after SIGINT
// (goldsmith and Packer both stop their VM and remove scratch files on it)
// before it is killed.
const interruptGrace = 2 * time.Minute

// command is one run of an external program (goldsmith, packer, go).
type command struct {
	Path   string
	Args   []string
	Dir    string
	Env    []string // added to the environment
	Stdout io.Writer
	Stderr io.Writer
}

// execer runs external programs; the bench's only way to start one.
type execer interface {
	Run(ctx context.Context, c command) error
}

// processGroup runs each program in its own process group. Canceling ctx
// (Ctrl-C, a build's timeout) sends SIGINT to the whole group so the program
// cleans up what it started (Packer's QEMU); after interruptGrace, and after
// every exit, whatever is left in the group is killed, so no VM outlives a
// build.
type processGroup struct{}

func (processGroup) Run(ctx context.Context, c command) error {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = interruptGrace
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (%v)", filepath.Base(c.Path), ctx.Err(), err)
		}
		return fmt.Errorf("%s %s: %w", filepath.Base(c.Path), strings.Join(c.Args, " "), err)
	}
	return nil
}
