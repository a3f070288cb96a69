package customize

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/template"
)

// dirtyGuest fills the sandbox with what a build leaves behind.
func dirtyGuest(s *sandbox) {
	s.write("/etc/ssh/ssh_host_ed25519_key", "PRIVATE", 0o600)
	s.write("/etc/ssh/ssh_host_ed25519_key.pub", "PUBLIC", 0o644)
	s.write("/etc/ssh/sshd_config", "PermitRootLogin no\n", 0o644)
	s.write("/etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444)
	s.write("/var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444)
	s.write("/var/log/syslog", "build noise\n", 0o640)
	s.write("/var/log/apt/history.log", "Start-Date: now\n", 0o644)
	s.write("/var/log/syslog.1", "old noise\n", 0o640)
	s.write("/var/log/dpkg.log.2.gz", "gz", 0o644)
	s.write("/var/lib/apt/lists/deb.debian.org_Packages", "Package: x\n", 0o644)
	s.write("/var/cache/apt/archives/nginx_1.22.1-9_amd64.deb", "deb", 0o644)
	s.write("/var/cache/apt/pkgcache.bin", "cache", 0o644)
	s.write("/var/lib/dpkg/status", "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2\nArchitecture: amd64\n\n"+
		"Package: nginx\nStatus: install ok installed\nVersion: 1.22.1-9\nArchitecture: amd64\n\n", 0o644)
	s.write("/root/.bash_history", "sudo secret\n", 0o600)
	s.write("/home/builder/.bash_history", "secret\n", 0o600)
	s.write("/home/builder/.ssh/authorized_keys", "ssh-ed25519 AAAA build\n", 0o600)
	s.write("/etc/sudoers.d/90-goldsmith-builder", "builder ALL=(ALL) NOPASSWD:ALL\n", 0o440)
	s.write("/etc/sudoers.d/90-cloud-init-users", "# Created by cloud-init\nbuilder ALL=(ALL) NOPASSWD:ALL\nops ALL=(ALL) ALL\n", 0o440)
	s.write("/etc/sudoers.d/README", "# keep me\n", 0o440)
	s.write("/tmp/goldsmith-3-abc.sh", "leftover", 0o755)
	s.write("/tmp/user-file", "kept", 0o644)
}

func TestGeneralize(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*sandbox)
		method GeneralizeMethod
		check  func(t *testing.T, s *sandbox, res *GeneralizeResult, log string)
	}{
		{
			name:   "builtin",
			method: GeneralizeBuiltin,
			check: func(t *testing.T, s *sandbox, res *GeneralizeResult, log string) {
				for _, gone := range []string{"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub",
					"/var/lib/dbus/machine-id", "/var/log/syslog.1", "/var/log/dpkg.log.2.gz",
					"/var/lib/apt/lists/deb.debian.org_Packages", "/var/cache/apt/archives/nginx_1.22.1-9_amd64.deb",
					"/var/cache/apt/pkgcache.bin", "/root/.bash_history", "/home/builder",
					"/etc/sudoers.d/90-goldsmith-builder", "/tmp/goldsmith-3-abc.sh"} {
					if s.exists(gone) {
						t.Errorf("%s is still there", gone)
					}
				}
				for _, empty := range []string{"/etc/machine-id", "/var/log/syslog", "/var/log/apt/history.log"} {
					if st, err := os.Stat(s.path(empty)); err != nil || st.Size() != 0 {
						t.Errorf("%s: %v %v", empty, st, err)
					}
				}
				if s.read("/etc/ssh/sshd_config") == "" || s.read("/tmp/user-file") != "kept" || s.read("/etc/sudoers.d/README") == "" {
					t.Error("removed too much")
				}
				if got := s.read("/etc/sudoers.d/90-cloud-init-users"); strings.Contains(got, "builder") || !strings.Contains(got, "ops ALL") {
					t.Errorf("cloud-init sudoers: %q", got)
				}
				if strings.Contains(s.read("/etc/passwd"), "builder:") || strings.Contains(s.read("/etc/shadow"), "builder:") {
					t.Error("builder is still in passwd/shadow")
				}
				if res.BuildUser != "builder" {
					t.Errorf("BuildUser %q", res.BuildUser)
				}
				for _, want := range []string{"[generalize] ==> removing SSH host keys", "[generalize] removed /etc/ssh/ssh_host_ed25519_key",
					"[generalize] ==> resetting the machine id", "[generalize] ==> truncating logs in /var/log",
					"[generalize] removing the build user (the session may end now)", "[generalize] removed user builder and /home/builder",
					"[generalize] generalized"} {
					if !strings.Contains(log, want) {
						t.Errorf("log lacks %q", want)
					}
				}
				// No cloud-init, no goldsmith agent in the sandbox: say that sshd will lack host keys.
				if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "regenerates SSH host keys") {
					t.Errorf("warnings %q", res.Warnings)
				}
			},
		},
		{
			name: "DeprovisioningScript.sh",
			setup: func(s *sandbox) {
				// Written by a customizer, as AIB users do.
				_, err := Run(context.Background(), s, []template.Customizer{shell("write-deprov",
					`printf '#!/bin/sh\necho custom deprovision as $(id -u)\ntouch /var/custom-ran\n' >/tmp/DeprovisioningScript.sh`)}, Options{ReadyTimeout: -1})
				must(t, err)
			},
			method: GeneralizeScript,
			check: func(t *testing.T, s *sandbox, res *GeneralizeResult, log string) {
				if !s.exists("/var/custom-ran") {
					t.Error("the script did not run")
				}
				if !s.exists("/etc/ssh/ssh_host_ed25519_key") {
					t.Error("builtin steps ran as well")
				}
				for _, want := range []string{"/tmp/DeprovisioningScript.sh was written by a customizer: it replaces the default",
					"[generalize] | echo custom deprovision as $(id -u)", "[generalize] custom deprovision as 0"} {
					if !strings.Contains(log, want) {
						t.Errorf("log lacks %q", want)
					}
				}
				if !strings.Contains(res.Script, "touch /var/custom-ran") || s.exists("/home/builder") || res.BuildUser != "builder" {
					t.Errorf("result %+v", res)
				}
			},
		},
		{
			name: "waagent",
			setup: func(s *sandbox) {
				s.shim("waagent", "#!/bin/sh\necho \"waagent $*\" >/var/waagent-args\necho WARNING! The waagent service will be stopped.\n")
			},
			method: GeneralizeWaagent,
			check: func(t *testing.T, s *sandbox, res *GeneralizeResult, log string) {
				if got := s.read("/var/waagent-args"); got != "waagent -force -deprovision+user\n" {
					t.Errorf("waagent ran with %q", got)
				}
				if !strings.Contains(log, "running AIB's default deprovisioning command: sudo -n /usr/local/bin/waagent -force -deprovision+user && export HISTSIZE=0 && sync") ||
					!strings.Contains(log, "[generalize] WARNING! The waagent service") {
					t.Error("log does not show waagent")
				}
				// waagent does not know goldsmith's build user: goldsmith removes it.
				if s.exists("/home/builder") || s.exists("/etc/sudoers.d/90-goldsmith-builder") {
					t.Error("build user left behind")
				}
				if !s.exists("/etc/ssh/ssh_host_ed25519_key") {
					t.Error("builtin steps ran as well")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			dirtyGuest(s)
			if tc.setup != nil {
				tc.setup(s)
			}
			var log syncBuf
			res, err := Generalize(context.Background(), s, "builder", Options{Log: &log})
			t.Logf("log:\n%s", log.String())
			if err != nil {
				t.Fatal(err)
			}
			if res.Method != tc.method {
				t.Fatalf("method %q, want %q", res.Method, tc.method)
			}
			// Listed before any method ran, and not logged line by line.
			if want := []Package{{"bash", "5.2.15-2"}, {"nginx", "1.22.1-9"}}; !slices.Equal(res.Packages, want) {
				t.Errorf("packages %+v, want %+v", res.Packages, want)
			}
			if strings.Contains(log.String(), markerPackage) {
				t.Error("package lines are in the log")
			}
			// The script's own copy under /run is gone.
			if m, _ := filepath.Glob(s.path("/run/goldsmith-generalize.*")); len(m) > 0 {
				t.Errorf("left behind: %v", m)
			}
			tc.check(t, s, res, log.String())
		})
	}
}

func TestGeneralizeFailure(t *testing.T) {
	s := newSandbox(t)
	s.write("/tmp/DeprovisioningScript.sh", "echo cannot deprovision >&2\nexit 4\n", 0o644)
	var log syncBuf
	_, err := Generalize(context.Background(), s, "builder", Options{Log: &log})
	var se *StepError
	if !errors.As(err, &se) || se.ExitCode != 4 {
		t.Fatalf("err %v", err)
	}
	if want := "generalize (DeprovisioningScript) failed with exit code 4: last output: cannot deprovision"; !strings.Contains(err.Error(), want) {
		t.Fatalf("err %q lacks %q", err, want)
	}
	if !s.exists("/home/builder") {
		t.Error("the build user was removed after a failed deprovision")
	}
}

// TestGeneralizePowerOff: with Options.PowerOff the guest's own script asks
// systemd to power off once generalized, and says so; without it, or when
// systemd refuses, the caller is left to power the guest off.
func TestGeneralizePowerOff(t *testing.T) {
	tests := []struct {
		name      string
		powerOff  bool
		systemctl string // the stand-in's exit status
		want      bool
	}{
		{name: "asked", powerOff: true, systemctl: "0", want: true},
		{name: "systemd refuses", powerOff: true, systemctl: "1"},
		{name: "not asked", systemctl: "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			dirtyGuest(s)
			s.shim("systemctl", "#!/bin/sh\necho \"$*\" >>/var/systemctl-args\nexit "+tc.systemctl+"\n")
			var log syncBuf
			res, err := Generalize(context.Background(), s, "builder", Options{Log: &log, PowerOff: tc.powerOff})
			if err != nil {
				t.Fatalf("%v\n%s", err, log.String())
			}
			if res.PoweringOff != tc.want || strings.Contains(log.String(), "the guest is powering off") != tc.want {
				t.Errorf("PoweringOff %v, want %v; log:\n%s", res.PoweringOff, tc.want, log.String())
			}
			if got := strings.Contains(s.read("/var/systemctl-args"), "poweroff --no-block"); got != tc.powerOff {
				t.Errorf("systemctl poweroff called: %v, want %v", got, tc.powerOff)
			}
			if s.exists("/home/builder") {
				t.Error("the build user is still there")
			}
		})
	}
}
