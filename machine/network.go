package machine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Network is how a build VM reaches the network.
type Network string

const (
	// NetworkIsolated runs passt, a user-mode network stack in its own
	// process, as QEMU's network back end, with --no-map-gw: the guest
	// reaches the outside network (package mirrors) like any program on the
	// host, but no guest address leads to the host's loopback. Build VMs
	// run other people's scripts next to credentials that services on
	// 127.0.0.1 guard. The default.
	NetworkIsolated Network = "isolated"
	// NetworkSlirp is QEMU's built-in user-mode network: the guest reaches
	// every service on the host's 127.0.0.1 through 10.0.2.2. Only for a
	// host without passt, by explicit choice.
	NetworkSlirp Network = "slirp"
)

// DefaultPasst is the passt program (Debian package passt).
const DefaultPasst = "passt"

// The guest's addresses on either network: slirp's layout, which passt is
// told to reproduce, so an image configured for one works on the other and
// the DHCP lease a restored guest holds stays valid. With passt, 10.0.2.2
// is no gateway to the host: packets to it go out like any other.
const (
	guestAddr    = "10.0.2.15"
	guestPrefix  = "24"
	guestGateway = "10.0.2.2"
	// passtMAC is the MAC passt answers with; fixed, so a restored guest's
	// ARP entry for the gateway stays right.
	passtMAC = "52:55:0a:00:02:02"
)

// resolvConfs are read in order for the host's DNS resolvers. When the first
// names only loopback resolvers (systemd-resolved's stub), the second has
// the upstream ones.
var resolvConfs = []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}

// guestResolvers are the DNS servers an isolated guest is given: the host's
// own non-loopback IPv4 resolvers, which the guest queries directly through
// passt. A loopback resolver cannot be offered: --no-map-gw leaves no path
// to the host's loopback, and passt 2023.03's --dns-forward has no target
// once -D fixes what DHCP announces. None found: the guest gets no DNS.
func guestResolvers(files []string) []string {
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var found []string
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 || fields[0] != "nameserver" {
				continue
			}
			a, err := netip.ParseAddr(fields[1])
			if err != nil || !a.Is4() || a.IsLoopback() || a.IsUnspecified() {
				continue
			}
			found = append(found, a.String())
		}
		if len(found) > 0 {
			if len(found) > 3 {
				found = found[:3]
			}
			return found
		}
	}
	return nil
}

// NetworkKey names a build VM's network as a saved VM state depends on it:
// the back end (a state saved on slirp carries slirp's state), and for
// passt the addresses and DNS servers the guest's DHCP lease holds. Caches
// of saved states key on it.
func NetworkKey(n Network) string {
	if n == "" {
		n = NetworkIsolated
	}
	if n == NetworkSlirp {
		return "slirp"
	}
	return "passt-1 " + guestAddr + "/" + guestPrefix + " gw " + guestGateway + " dns " + strings.Join(guestResolvers(resolvConfs), ",")
}

// passtConfig is one passt process: the network of one QEMU process.
type passtConfig struct {
	Socket  string // the UNIX socket QEMU connects to
	SSHPort int    // 127.0.0.1:SSHPort on the host is forwarded to the guest's port 22
	DNS     []string
	// RunAs is the user passt switches to (it refuses to stay root); empty:
	// the current one.
	RunAs string
}

// args renders passt's command line. --one-off: passt exits when its QEMU
// closes the socket (QEMU exits, or dies with goldsmith), so it never
// outlives the VM even where its parent-death signal does not reach it
// (switching user clears it).
func (p passtConfig) args() []string {
	a := []string{
		"--foreground", "--one-off", "--stderr", "--quiet", "--ipv4-only",
		"--socket", p.Socket,
		"--no-map-gw",
		"--address", guestAddr, "--netmask", guestPrefix, "--gateway", guestGateway,
		"--mac-addr", passtMAC,
		"--tcp-ports", fmt.Sprintf("127.0.0.1/%d:22", p.SSHPort),
	}
	if len(p.DNS) == 0 {
		a = append(a, "--dns", "none")
	}
	for _, d := range p.DNS {
		a = append(a, "--dns", d)
	}
	if p.RunAs != "" {
		a = append(a, "--runas", p.RunAs)
	}
	return a
}

// passtUser is who passt runs as when goldsmith is root: passt parses the
// guest's packets and will not do so as root.
const passtUser = "nobody"

// netSocketDir makes a directory in parent for passt's sockets: passt
// creates its socket after switching to its user, so that user must own the
// directory. It is not inside the VM's own directory, which holds the
// guest's memory and keys and stays closed to that user.
func netSocketDir(parent string) (dir, runAs string, err error) {
	dir, err = os.MkdirTemp(parent, netDirPrefix)
	if err != nil {
		return "", "", err
	}
	if os.Geteuid() != 0 {
		return dir, "", nil
	}
	u, err := user.Lookup(passtUser)
	if err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		err = os.Chown(dir, uid, gid)
	}
	if err != nil {
		os.Remove(dir)
		return "", "", fmt.Errorf("passt's user %s: %w", passtUser, err)
	}
	return dir, passtUser, nil
}

// netDirPrefix begins the name of a VM's passt socket directory.
const netDirPrefix = "goldsmith-net-"

// netProcess is a running passt.
type netProcess struct {
	proc    Process
	exited  chan struct{}
	waitErr error
	stderr  tailBuffer
	pidFile string
}

// errNoPasst says the isolated network cannot be had on this host.
var errNoPasst = errors.New("passt not found: build VMs are isolated from the host with passt (Debian package passt; scripts/setup installs it); to run them unisolated instead, choose the slirp network (--vm-network slirp)")

// startPasst starts passt and waits until its socket listens (polled every
// 10 ms: passt is up within milliseconds). pidFile, when set, records it
// for KillRecorded, marked with its socket path.
func startPasst(ctx context.Context, r Runner, program string, pc passtConfig, pidFile string) (*netProcess, error) {
	n := &netProcess{exited: make(chan struct{}), pidFile: pidFile}
	proc, err := r.Start(Command{Path: program, Args: pc.args(), Stderr: &n.stderr})
	if err != nil {
		return nil, fmt.Errorf("starting passt: %w", err)
	}
	n.proc = proc
	go func() {
		n.waitErr = proc.Wait()
		close(n.exited)
	}()
	if pidFile != "" {
		// passt cannot write its own (-P) once it is nobody.
		_ = WritePIDFile(pidFile, proc.Pid(), pc.Socket)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if unixListening(pc.Socket) {
			return n, nil
		}
		select {
		case <-n.exited:
			msg := strings.TrimSpace(n.stderr.String())
			n.cleanup()
			if strings.Contains(msg, "Failed to bind") {
				return nil, fmt.Errorf("%w: %s", errPortBusy, msg)
			}
			return nil, fmt.Errorf("passt exited (%v): %s", n.waitErr, msg)
		case <-deadline.C:
			n.stop()
			return nil, fmt.Errorf("passt: socket %s not listening after 10s: %s", pc.Socket, strings.TrimSpace(n.stderr.String()))
		case <-ctx.Done():
			n.stop()
			return nil, fmt.Errorf("starting passt: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// stop kills passt (normally gone already: --one-off) and waits for it.
func (n *netProcess) stop() {
	_ = n.proc.Signal(syscall.SIGKILL)
	<-n.exited
	n.cleanup()
}

func (n *netProcess) cleanup() {
	if n.pidFile != "" {
		os.Remove(n.pidFile)
	}
}

// unixListening tells whether a UNIX socket bound at path listens (a line of
// /proc/net/unix with the path and the accepting flag). Connecting to find
// out would take passt's one client slot.
func unixListening(path string) bool {
	data, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path
		if len(f) == 8 && f[7] == path && f[3] == "00010000" {
			return true
		}
	}
	return false
}
