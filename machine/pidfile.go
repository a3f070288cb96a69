package machine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A pid file records the pid of a process a build started (QEMU, see
// Config.PIDFile), so that when the supervisor dies (a killed server) the
// next one can stop what it left: WritePIDFile writes one, ReadPIDFile and
// KillRecorded read them. This file is the one place that knows their
// format.

// WritePIDFile records pid in path. A marker, when given, is a string the
// process's command line contains: KillRecorded then also knows the process
// as its own when nothing on its command line names the directory (passt,
// whose command line names the VM's socket only).
func WritePIDFile(path string, pid int, marker ...string) error {
	data := strconv.Itoa(pid) + "\n"
	if len(marker) > 0 && marker[0] != "" {
		data += marker[0] + "\n"
	}
	return os.WriteFile(path, []byte(data), 0o644)
}

// ReadPIDFile reads the pid recorded in path.
func ReadPIDFile(path string) (int, error) {
	pid, _, err := readPIDFile(path)
	return pid, err
}

func readPIDFile(path string) (pid int, marker string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, "", err
	}
	first, rest, _ := strings.Cut(string(data), "\n")
	pid, err = strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, "", fmt.Errorf("pid file %s: %w", path, err)
	}
	return pid, strings.TrimSpace(rest), nil
}

// KillRecorded kills (SIGKILL) the processes recorded in the *.pid files of
// dir and of its direct subdirectories, if they still run. Only a process
// whose command line names dir (or the file's marker), or whose working
// directory is in dir, is killed: a recycled pid belongs to someone else.
func KillRecorded(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	more, _ := filepath.Glob(filepath.Join(dir, "*", "*.pid"))
	for _, f := range append(files, more...) {
		pid, marker, err := readPIDFile(f)
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		if !processMentions(pid, dir) && (marker == "" || !processMentions(pid, marker)) {
			continue
		}
		shm := vmShmDir(pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if shm != "" {
			// The guest's memory file (tmpfs) would outlive the process.
			_ = os.RemoveAll(shm)
		}
	}
}

// vmShmDir is the VM directory on tmpfs that the QEMU process's memory file
// is in, if any.
func vmShmDir(pid int) string {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	for _, arg := range strings.Split(string(cmdline), "\x00") {
		for _, opt := range strings.Split(arg, ",") {
			if p, ok := strings.CutPrefix(opt, "mem-path="); ok {
				d := filepath.Dir(p)
				if filepath.Dir(d) == shmDir && strings.HasPrefix(filepath.Base(d), "goldsmith-vm-") {
					return d
				}
			}
		}
	}
	return ""
}

// processMentions tells whether the process has dir in its command line or
// as (a parent of) its working directory.
func processMentions(pid int, dir string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	if strings.Contains(string(cmdline), dir) {
		return true
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil && strings.HasPrefix(cwd, dir) {
		return true
	}
	return false
}
