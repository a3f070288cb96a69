package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/goldsmith-dev/goldsmith/download"
	"github.com/goldsmith-dev/goldsmith/machine"
	"github.com/goldsmith-dev/goldsmith/runner"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/vmsize"
)

type workerFlags struct {
	dataDir, database, config, logLevel, accel string
	vmNetwork                                  string
	maxISOGiB                                  int64
	capacity                                   int
	forceCapacity                              bool
	// Only tests set these (see nodeHooks).
	executor   runner.Executor
	builderDir string
	queueLease time.Duration
}

func newWorkerCommand(h nodeHooks) *cobra.Command {
	f := workerFlags{executor: h.executor, builderDir: h.builderDir, queueLease: h.queueLease}
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run builds for goldsmith serve nodes that share a PostgreSQL database",
		Long: `Worker takes jobs (builds, submissions, deletions) from the job queue on
the PostgreSQL database that "goldsmith serve" nodes share (--database, or
GOLDSMITH_DATABASE), builds with the same engine as serve, streams each
run's log into the database (every API node serves it live) and uploads the
outputs to the region stores of the config file (S3 buckets in a fleet:
give every node the same config.json).

--data-dir is this worker's own: scratch space, platform images and the
layer cache. It runs at most --capacity builds at once; the default is what
this machine can hold (cores and memory for a build VM of the default size,
` + vmsize.Default + `), and more needs --force-capacity.

SIGTERM or Ctrl-C stops it: its running builds stop and are reported Failed
as interrupted. If it dies (kill -9, power loss), an API node reports its
runs Failed as interrupted, naming it, once its heartbeat is older than the
lease (60 s; within about 70 s); its next start on the same data directory
stops the build VMs it left and removes their scratch files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorker(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "this worker's directory for scratch space, platform images and caches")
	fl.StringVar(&f.database, "database", os.Getenv("GOLDSMITH_DATABASE"), "the PostgreSQL URL (postgres://user:pass@host/db) the serve nodes use; default $GOLDSMITH_DATABASE")
	fl.StringVar(&f.config, "config", "", "config file, for the regions (default DATA_DIR/config.json)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.accel, "accel", "", "force the build VMs' accelerator: kvm or tcg (default: probe)")
	fl.StringVar(&f.vmNetwork, "vm-network", string(machine.NetworkIsolated), vmNetworkUsage)
	fl.Int64Var(&f.maxISOGiB, "max-iso-size", download.DefaultMaxISOBytes>>30, "largest ISO source downloaded at submission, in GiB")
	fl.IntVar(&f.capacity, "capacity", 0, "builds run at the same time (default: what this machine's cores and memory hold)")
	fl.BoolVar(&f.forceCapacity, "force-capacity", false, "allow --capacity above what this machine holds")
	return cmd
}

func runWorker(ctx context.Context, stdout, stderr io.Writer, f workerFlags) error {
	if !store.IsPostgres(f.database) {
		return usageError("--database must be the PostgreSQL URL the serve nodes share (postgres://...): a worker on SQLite would be alone with its database")
	}
	host, err := machine.HostResources()
	if err != nil {
		return err
	}
	vm, err := vmsize.Lookup(vmsize.Default)
	if err != nil {
		return err
	}
	holds := buildCapacity(host, vm)
	capacity := f.capacity
	switch {
	case capacity < 0:
		return usageError("--capacity must be at least 1")
	case capacity == 0:
		capacity = holds
	case capacity > holds && !f.forceCapacity:
		return usageError("--capacity %d is more than this machine holds (%d: %d CPUs, %d MiB for %s build VMs); add --force-capacity to insist",
			capacity, holds, host.CPUs, host.MemoryMiB, vm.Name)
	}
	n, err := openNode(ctx, stdout, stderr, nodeFlags{dataDir: f.dataDir, database: f.database, config: f.config, logLevel: f.logLevel, vmNetwork: f.vmNetwork,
		accel: f.accel, maxISOGiB: f.maxISOGiB, workers: capacity, executor: f.executor, builderDir: f.builderDir, queueLease: f.queueLease})
	if err != nil {
		return err
	}
	defer n.srv.Close()
	fmt.Fprintf(stdout, "goldsmith worker %s running up to %d builds (machine holds %d; data %s)\n", n.srv.Worker(), capacity, holds, n.dir)
	// Run returns once ctx ends and the running builds have stopped and
	// been reported interrupted.
	if err := n.srv.Run(ctx); err != nil {
		return err
	}
	n.log.Info("worker stopped")
	return nil
}

// Per build VM beyond its memory: QEMU itself, and a reserve for the host
// (the worker, its page cache, qemu-img).
const (
	vmOverheadMiB  = 512
	hostReserveMiB = 1024
)

// buildCapacity is how many build VMs of size vm the host holds at once: a
// VM takes its vCPUs (at least 2: under TCG goldsmith gives a 1-vCPU size
// two, see machine.Size.ForTCG) and its memory plus QEMU's overhead; at
// least 1.
func buildCapacity(h machine.Host, vm vmsize.Size) int {
	cpus := max(vm.CPUs, 2)
	byCPU := h.CPUs / cpus
	byMem := (h.MemoryMiB - hostReserveMiB) / (vm.MemoryMiB + vmOverheadMiB)
	return max(1, min(byCPU, byMem))
}
