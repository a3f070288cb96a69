// Package customize runs an AIB template's customizers, its in-VM validations
// and the generalize (deprovision) step inside a build guest.
//
// # The guest
//
// Everything happens through the small [Guest] interface: run a shell command,
// upload a file, wait for a reboot. The build orchestrator adapts package
// machine's SSH communicator to it. Commands run as the temporary build user,
// exactly as AIB runs customizers as its packer user: a Shell customizer whose
// commands need root must say sudo itself ("sudo apt-get install -y nginx"),
// as AIB's documentation asks. goldsmith's build user has passwordless sudo;
// the runner itself uses "sudo -n" where it needs root (PowerShell with
// runElevated, waiting for locks is done without root, generalize).
//
// # Downloads
//
// scriptUri and sourceUri are fetched on the host by a [Fetcher] (http and
// https only), capped in size (20 MiB for File, as AIB documents; 64 MiB for
// scripts), and checked against sha256Checksum before anything is uploaded or
// run in the guest. A cache directory makes a run fetch each URL+digest once.
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
//     already going down, for example "sudo systemctl reboot" returns as soon
//     as the reboot job is queued. Right after the customizer's command exits,
//     in the same session, the runner asks the guest whether a shutdown is
//     under way (systemctl is-system-running says "stopping", or a delayed
//     "shutdown -r +N" is scheduled); if so it calls Guest.WaitReboot before
//     the next step, so the next step never lands in a guest that is going
//     down.
//   - Should a reboot still come between two steps (a reboot the probe could
//     not see), the Guest returns ErrRebooted from whichever call first meets
//     it (an Upload, or a Run whose command never started). Every command the
//     runner starts prints a start marker first, so the runner knows the
//     command had not started: it waits for the reboot and redoes that step
//     from its beginning (upload included, since /tmp may be cleaned at boot).
//
// What this asks of the adapter: map "session ended without an exit status
// and the VM reset or restarted" to ErrRebooted; when a call cannot connect
// because the guest is down or booting, wait for it (bounded) and return
// ErrRebooted rather than a connection error; make WaitReboot wait for the
// guest to go down if it has not yet (compare /proc/sys/kernel/random/boot_id,
// or machine's reboot counter) and return once SSH answers again, promptly if
// that already happened.
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
