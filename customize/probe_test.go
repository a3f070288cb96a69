package customize

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestShutdownProbe runs the probe that follows every step with a stand-in
// systemctl (and sudo) on PATH: only a job for a shutdown, reboot or
// power-off target means the guest is going down.
func TestShutdownProbe(t *testing.T) {
	cases := []struct {
		name      string
		systemctl string // what the user's systemctl lists
		noDBus    bool   // the user's systemctl fails, as on images without D-Bus
		root      string // what sudo -n systemctl lists
		down      bool
	}{
		{name: "idle", systemctl: ""},
		{name: "a service starting", systemctl: "42 nginx.service start running"},
		{name: "reboot queued", systemctl: "7 reboot.target start waiting", down: true},
		{name: "stopping", systemctl: "3 shutdown.target start waiting\n4 ssh.service stop running", down: true},
		{name: "power-off queued", systemctl: "9 poweroff.target start waiting", down: true},
		{name: "no D-Bus, root sees a reboot", noDBus: true, root: "7 reboot.target start waiting", down: true},
		{name: "no D-Bus, root sees nothing", noDBus: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bin := t.TempDir()
			user := "printf '%s\\n' '" + c.systemctl + "'"
			if c.noDBus {
				user = "exit 1"
			}
			shim := func(name, body string) {
				if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			shim("systemctl", `[ -n "$GS_ROOT" ] && { printf '%s\n' '`+c.root+`'; exit 0; }; `+user)
			shim("sudo", `shift; GS_ROOT=1 exec "$@"`)
			cmd := exec.Command("/bin/sh", "-c", shutdownProbe+"exit 0")
			cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if got := strings.Contains(string(out), markerReboot); got != c.down {
				t.Errorf("going down = %v, want %v; output %q", got, c.down, out)
			}
		})
	}
}
