// Command goldsmith is a self-hosted image factory that speaks Azure VM Image
// Builder: AIB templates in, real bootable VM images out.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/runner"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1 // the work was done and the answer is no (invalid template, failed build)
	exitUsage   = 2 // the command line itself is wrong
)

// exitError carries an exit code up to main without printing twice.
type exitError struct {
	code int
	err  error // already reported when nil
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, stdout, stderr, nodeHooks{})
}

// nodeHooks change how serve and worker run, for tests only (no flag sets
// them): the fleet test runs the real command lines in child processes
// with the stand-in executor and a short lease.
type nodeHooks struct {
	executor   runner.Executor // instead of the build engine
	builderDir string          // the build engine's catalog and caches
	queueLease time.Duration   // a worker silent this long is dead
}

func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, h nodeHooks) int {
	root := newRootCommand(stdout, stderr, h)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "goldsmith:", ee.err)
		}
		return ee.code
	}
	// Cobra's own errors (unknown command or flag, wrong arguments) are usage errors.
	fmt.Fprintln(stderr, "goldsmith:", err)
	return exitUsage
}

func newRootCommand(stdout, stderr io.Writer, h nodeHooks) *cobra.Command {
	root := &cobra.Command{
		Use:   "goldsmith",
		Short: "A self-hosted image factory that speaks Azure VM Image Builder",
		Long: `goldsmith takes Azure VM Image Builder (AIB) image templates, unchanged, and
builds real bootable VM images from them on your own machine.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.AddCommand(newTemplateCommand(), newBuildCommand(), newCatalogCommand(), newCacheCommand(),
		newServeCommand(h), newWorkerCommand(h), newWorkersCommand(), newGroupCommand(), newGalleryCommand(), newImageCommand(), newPrincipalCommand())
	return root
}
