// Package customize runs an AIB template's customizers, its in-VM validations
// and the generalize (deprovision) step inside a build guest.
//
// # The guest
//
// Everything happens through the small [Guest] interface: run a shell command,
// upload a file, wait for a reboot. Package machine adapts its VMs to it
// (machine.Guest). Commands run as the temporary build user, exactly as AIB
// runs customizers as its packer user: a Shell customizer whose commands
// need root must say sudo itself ("sudo apt-get install -y nginx"),
// as AIB's documentation asks. goldsmith's build user has passwordless sudo;
// the runner uses "sudo -n" only where it needs root itself: PowerShell with
// runElevated or runAsSystem, generalize, and systemctl queries on images
// without D-Bus (where a normal user's systemctl cannot reach systemd).
//
// # Downloads
//
// scriptUri and sourceUri are fetched on the host by a [Fetcher] with package
// download's limits (http and https only; 20 MiB for File, as AIB documents;
// 64 MiB for scripts), and checked against sha256Checksum before anything is
// uploaded or run in the guest. A cache directory makes a run fetch each
// URL+digest once. A service build reads the files staged at submission
// ([NewStagedFetcher]) and never fetches from the network.
//
// # Reboots
//
// AIB has no Linux restart customizer: a Shell customizer reboots the guest
// ("sudo reboot", "sudo shutdown -r now", "sudo systemctl reboot") and the
// build continues after SSH is back (AIB allows 20 minutes). The runner treats
// a reboot as the end of the customizer that caused it:
//
//   - Guest.Run returns an error wrapping [ErrRebooted] when the session ended
//     because the guest went down (machine sees it over QMP). If the command
//     had started, the step is done: the runner calls Guest.WaitReboot and
//     moves on.
//   - A command may also exit (0, or killed by a signal) while the guest is
//     already going down: "sudo systemctl reboot" returns as soon as the
//     reboot job is queued, "sudo shutdown -r +1" a minute before it. Right
//     after the customizer's command exits, in the same session, the runner
//     asks the guest whether a shutdown is under way (systemd has a job for
//     shutdown.target or a reboot/power-off target, or a delayed shutdown is
//     scheduled)
//     and notes the boot_id. If so, the step is done once the guest is back
//     in a new boot: the runner calls Guest.WaitReboot and reads the boot_id
//     until it changes (bounded by the 20 minutes), so the next step never
//     lands in a guest that is about to go down.
//   - Should a reboot still come between two steps (one the probe could not
//     see), the Guest returns ErrRebooted from whichever call first meets it
//     (an Upload, or a Run whose command never started). Every command the
//     runner starts prints a start marker first, so the runner knows whether
//     the command had started; if not, it waits for the guest and redoes the
//     step from its beginning (upload included: /tmp may be cleaned at boot).
//
// After each reboot the runner waits for cloud-init and the apt/dpkg locks
// again (see [WaitReady]), as before the first step.
//
// The adapter over a build VM is machine.Guest (machine.NewGuest), used by
// the build and by tests alike. Package machine's communicator reports
// reboots as errors matching machine.ErrRebooted (with the VM's QMP events
// behind them); the adapter wraps them in ErrRebooted, and its WaitReboot
// waits for the VM's boot counter to pass the boot it last saw before it
// waits for SSH, so that it never returns on the session of a boot that is
// going down.
//
// Any other Guest (a test's) must return ErrRebooted when a session ended,
// or a call could not start, because the guest went down or came back in a
// new boot, and let WaitReboot return once SSH works again (at once if it
// already does). The runner itself makes sure that an announced reboot did
// happen.
//
// # Generalize
//
// [Generalize] runs /tmp/DeprovisioningScript.sh when a customizer wrote it
// (AIB's override), else AIB's default waagent command when the image has
// waagent, else goldsmith's own explicit, logged steps. In every case it then
// removes goldsmith's temporary build user (AIB's waagent removes the user
// that waagent provisioned; goldsmith's build user was provisioned by
// goldsmith's guest agent, so waagent does not know it). After Generalize
// nobody can log in: the caller powers the guest off through the hypervisor.
package customize
