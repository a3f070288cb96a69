package customize

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/download"
	"github.com/goldsmith-dev/goldsmith/internal/shellquote"
	"github.com/goldsmith-dev/goldsmith/template"
)

// Defaults for Options.
const (
	// DefaultRebootTimeout is how long a reboot may take: AIB allows 20 minutes.
	DefaultRebootTimeout = 20 * time.Minute
	// DefaultReadyTimeout bounds the wait for cloud-init and apt/dpkg locks.
	DefaultReadyTimeout = 10 * time.Minute
	// DefaultGuestTempDir is where scripts are uploaded.
	DefaultGuestTempDir = "/tmp"
)

// Options configure Run, Validate and Generalize. The zero value works.
type Options struct {
	// Log receives the run's log (AIB's customization.log): every output
	// line of every step, prefixed with the step's name ("[setup-os] ..."),
	// and the runner's own notes. nil discards it.
	Log io.Writer
	// Fetcher downloads scripts and files; nil means a fresh Fetcher
	// without a disk cache.
	Fetcher *Fetcher
	// Progress, if set, is called when a step starts (Done false) and when
	// it ends (Done true), from the goroutine that called Run.
	Progress func(Step)
	// ReadyTimeout bounds the wait for cloud-init and apt/dpkg locks before
	// the first step and after each reboot; 0 means DefaultReadyTimeout and
	// a negative value skips the wait. Running out of time is logged, not an
	// error: the customizer then meets the lock itself and says so.
	ReadyTimeout time.Duration
	// RebootTimeout bounds each Guest.WaitReboot; 0 means DefaultRebootTimeout.
	RebootTimeout time.Duration
	// GuestTempDir is the guest directory for uploaded scripts; "" means /tmp.
	GuestTempDir string
	// Skip is how many leading steps the guest already has applied (the
	// build restored it from a layer made after them): they are reported
	// as reused and not run, and the next one starts without a readiness
	// wait, as it did in the build that made the layer.
	Skip int
	// AfterStep, if set, is called after each step that succeeded, with the
	// guest up and idle (after a reboot the step caused); an error stops
	// the run. The build takes its layers here.
	AfterStep func(context.Context, Step) error
	// PowerOff (Generalize only): once generalized, the guest's own
	// generalize script asks systemd to power off, as the hypervisor's power
	// button would (GeneralizeResult.PoweringOff says whether it did); the
	// caller then only waits for the VM to stop.
	PowerOff bool
}

func (o *Options) rebootTimeout() time.Duration {
	if o.RebootTimeout > 0 {
		return o.RebootTimeout
	}
	return DefaultRebootTimeout
}

func (o *Options) tempDir() string {
	if o.GuestTempDir != "" {
		return strings.TrimRight(o.GuestTempDir, "/")
	}
	return DefaultGuestTempDir
}

// Step is the record of one customizer or validator: what the CLI shows as
// progress and what the run's manifest keeps.
type Step struct {
	Kind  Kind
	Index int // 1-based
	Total int
	Name  string // the template's name, or "<Type>-<Index>" when it has none
	Type  template.CustomizerType
	// URI is the scriptUri or sourceUri, if any; SHA256 is the digest of
	// the script or file that went into the guest (for inline steps, of the
	// script goldsmith generated from the lines).
	URI    string
	SHA256 string
	Start  time.Time
	End    time.Time // zero until Done
	// ExitCode is the command's exit status (0 for a File step that
	// succeeded); -1 for steps ended by a reboot and steps that did not run.
	ExitCode int
	Rebooted bool  // the guest rebooted during or right after this step
	Err      error // a *StepError when the step failed
	Done     bool
	// Reused: the step was not run; the guest was restored from a layer
	// made after it (Options.Skip).
	Reused bool
}

// Duration is End-Start for a finished step.
func (s Step) Duration() time.Duration {
	if s.End.IsZero() {
		return 0
	}
	return s.End.Sub(s.Start)
}

// Run runs the template's customizers in order in the guest and returns one
// Step per customizer it reached. It stops at the first failure and returns
// that step's *StepError. Before touching the guest it downloads and verifies
// every script and file, and refuses customizer types it cannot run, so a bad
// checksum in the last customizer costs no build time.
func Run(ctx context.Context, g Guest, cs []template.Customizer, opts Options) ([]Step, error) {
	return newRunner(g, opts).run(ctx, KindCustomizer, cs)
}

// Validate runs in-VM validations (template.Validate.InVMValidations) the
// same way as Run runs customizers; steps and errors say "validator".
func Validate(ctx context.Context, g Guest, vs []template.Customizer, opts Options) ([]Step, error) {
	return newRunner(g, opts).run(ctx, KindValidator, vs)
}

// Digest returns the sha256 of the script or file a customizer names,
// downloading and verifying it first if needed, or "" for an inline step.
// A build's layer keys include it, so a changed download is a changed step.
func (f *Fetcher) Digest(ctx context.Context, c template.Customizer) (string, error) {
	a, err := fetchFor(ctx, f, c)
	if err != nil || a == nil {
		return "", err
	}
	return a.SHA256, nil
}

// Prefetch downloads and verifies every script and file the customizers
// name, as AIB does when a template is submitted, and reports every failure.
func (f *Fetcher) Prefetch(ctx context.Context, cs []template.Customizer) error {
	var errs []error
	for i, c := range cs {
		if _, err := fetchFor(ctx, f, c); err != nil {
			errs = append(errs, fmt.Errorf("customizer %d/%d %q (%s): %w", i+1, len(cs), stepName(c, i+1), c.Type, err))
		}
	}
	return errors.Join(errs...)
}

type runner struct {
	g    Guest
	opts Options
	log  *logSink
	f    *Fetcher
}

func newRunner(g Guest, opts Options) *runner {
	f := opts.Fetcher
	if f == nil {
		f = &Fetcher{}
	}
	return &runner{g: g, opts: opts, log: &logSink{w: opts.Log}, f: f}
}

func stepName(c template.Customizer, index int) string {
	if c.Name != "" {
		return c.Name
	}
	return fmt.Sprintf("%s-%d", c.Type, index)
}

func fetchFor(ctx context.Context, f *Fetcher, c template.Customizer) (*Artifact, error) {
	switch c.Type {
	case template.CustomizeShell, template.CustomizePowerShell:
		if c.ScriptURI != "" {
			return f.Fetch(ctx, c.ScriptURI, c.SHA256Checksum, download.Script)
		}
	case template.CustomizeFile:
		return f.Fetch(ctx, c.SourceURI, c.SHA256Checksum, download.File)
	}
	return nil, nil
}

// prepared is a step whose downloads are done and verified.
type prepared struct {
	step     Step
	c        template.Customizer
	artifact *Artifact // script or file; nil for inline steps
}

func (r *runner) run(ctx context.Context, kind Kind, cs []template.Customizer) ([]Step, error) {
	n := len(cs)
	if n == 0 {
		return nil, nil
	}
	// Preflight: everything that can fail without the guest fails first.
	preps := make([]prepared, n)
	for i, c := range cs {
		p := prepared{c: c, step: Step{Kind: kind, Index: i + 1, Total: n, Name: stepName(c, i+1), Type: c.Type, ExitCode: -1}}
		var err error
		switch c.Type {
		case template.CustomizeShell, template.CustomizePowerShell:
			p.step.URI = c.ScriptURI
			if c.ScriptURI == "" && len(c.Inline) == 0 {
				err = errors.New("it has neither scriptUri nor inline commands")
			}
		case template.CustomizeFile:
			p.step.URI = c.SourceURI
			if c.SourceURI == "" || c.Destination == "" {
				err = errors.New("a File customizer needs sourceUri and destination")
			}
		case template.CustomizeWindowsRestart:
			err = fmt.Errorf("%w: Windows guests are not supported yet; on Linux, reboot from a Shell customizer (\"sudo reboot\") and the build continues once the guest is back", ErrUnsupported)
		case template.CustomizeWindowsUpdate:
			err = fmt.Errorf("%w: Windows guests are not supported yet; on Linux, update packages from a Shell customizer", ErrUnsupported)
		default:
			err = fmt.Errorf("%w: unknown customizer type %q", ErrUnsupported, c.Type)
		}
		if err == nil {
			p.artifact, err = fetchFor(ctx, r.f, c)
			if p.artifact != nil {
				p.step.SHA256 = p.artifact.SHA256
			}
		}
		if err != nil {
			s := p.step
			s.Start = time.Now()
			s.End = s.Start
			s.Done = true
			s.Err = &StepError{Kind: kind, Index: i + 1, Total: n, Name: s.Name, Type: c.Type, ExitCode: -1, Err: err}
			r.log.line("["+s.Name+"] ", "not started: "+err.Error())
			r.progress(s)
			return []Step{s}, s.Err
		}
		preps[i] = p
	}

	// A guest restored after step Skip resumes where the build that saved
	// it was, right after a step: it waited for readiness before its first
	// step (and after reboots), not between steps, and so does this one.
	if r.opts.ReadyTimeout >= 0 && r.opts.Skip == 0 {
		if err := r.waitReady(ctx); err != nil {
			return nil, err
		}
	}
	var steps []Step
	for i, p := range preps {
		if i < r.opts.Skip {
			s := p.step
			s.Start, s.End, s.Done, s.Reused, s.ExitCode = time.Now(), time.Now(), true, true, 0
			r.log.line("["+s.Name+"] ", "reused from the layer cache: not run")
			r.progress(s)
			steps = append(steps, s)
			continue
		}
		s := r.runStep(ctx, p)
		steps = append(steps, s)
		if s.Err != nil {
			return steps, s.Err
		}
		if r.opts.AfterStep != nil {
			if err := r.opts.AfterStep(ctx, s); err != nil {
				return steps, err
			}
		}
	}
	return steps, nil
}

func (r *runner) progress(s Step) {
	if r.opts.Progress != nil {
		r.opts.Progress(s)
	}
}

// maxStepRestarts is how often a step is started again because a reboot
// (not its own) hit it before its command started.
const maxStepRestarts = 3

func (r *runner) runStep(ctx context.Context, p prepared) Step {
	s := p.step
	s.Start = time.Now()
	r.progress(s)
	out := newStepOutput(r.log, s.Name)
	what := string(s.Type)
	if s.URI != "" {
		what += " " + s.URI
	} else if p.c.Type == template.CustomizeFile {
		what += " " + p.c.SourceURI
	}
	out.note(fmt.Sprintf("%s %d/%d: %s", s.Kind, s.Index, s.Total, what))

	fail := func(code int, err error) Step {
		s.End, s.Done, s.ExitCode = time.Now(), true, code
		se := &StepError{Kind: s.Kind, Index: s.Index, Total: s.Total, Name: s.Name, Type: s.Type, ExitCode: code, Tail: out.lastLines(), Err: err}
		if p.artifact != nil && s.Type != template.CustomizeFile && strings.Contains(string(p.artifact.Data), "\r\n") {
			se.Hint = "the script has Windows (CRLF) line endings, which sh and bash do not accept; save it with LF endings"
		}
		s.Err = se
		out.note(se.Error())
		r.progress(s)
		return s
	}

	for attempt := 0; ; attempt++ {
		out.reset()
		code, err := r.exec(ctx, p, &s, out)
		started, shutdown, bootID := out.state()
		switch {
		case errors.Is(err, ErrRebooted) && !started:
			if attempt >= maxStepRestarts {
				return fail(-1, fmt.Errorf("the guest rebooted %d times before the step could start: %w", attempt+1, err))
			}
			out.note("the guest rebooted before this step's command started; waiting for it, then starting the step again")
			if werr := r.waitReboot(ctx, ""); werr != nil {
				return fail(-1, werr)
			}
			continue
		case errors.Is(err, ErrRebooted):
			out.note("the guest rebooted during this step; the step is done once the guest is back")
			s.Rebooted = true
			if werr := r.waitReboot(ctx, ""); werr != nil {
				return fail(-1, werr)
			}
			code = -1
		case err != nil:
			return fail(code, err)
		case shutdown && (r.valid(p.c, code) || code > 128):
			out.note(fmt.Sprintf("the command exited (%d) while the guest is shutting down; the step is done once the guest is back", code))
			s.Rebooted = true
			if werr := r.waitReboot(ctx, bootID); werr != nil {
				return fail(code, werr)
			}
		case !r.valid(p.c, code):
			return fail(code, nil)
		}
		s.End, s.Done, s.ExitCode = time.Now(), true, code
		out.note(fmt.Sprintf("done in %s", s.Duration().Round(time.Millisecond)))
		r.progress(s)
		return s
	}
}

func (r *runner) valid(c template.Customizer, code int) bool {
	if c.Type == template.CustomizePowerShell && len(c.ValidExitCodes) > 0 {
		return slices.Contains(c.ValidExitCodes, code)
	}
	return code == 0
}

// waitReboot waits for the guest to be back after a reboot. When the reboot
// was only announced (a shutdown under way when the command exited), oldBoot
// is the boot_id the guest had then, and waitReboot also makes sure the guest
// did reboot: it waits until the boot_id differs, so the next step cannot
// run in a guest that is about to go down.
func (r *runner) waitReboot(ctx context.Context, oldBoot string) error {
	limit := r.opts.rebootTimeout()
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := time.Now()
	r.log.line("[goldsmith] ", fmt.Sprintf("waiting for the guest to come back from a reboot (up to %s)", limit))
	timedOut := func(err error) error {
		if ctx.Err() == nil && wctx.Err() != nil {
			return fmt.Errorf("the guest did not come back within %s after a reboot: %w", limit, err)
		}
		return fmt.Errorf("waiting for the guest to come back after a reboot: %w", err)
	}
	for {
		if err := r.g.WaitReboot(wctx); err != nil {
			return timedOut(err)
		}
		if oldBoot == "" {
			break
		}
		var id bytes.Buffer
		code, err := r.g.Run(wctx, "cat /proc/sys/kernel/random/boot_id", &id, io.Discard)
		if err == nil && code == 0 && strings.TrimSpace(id.String()) != oldBoot {
			break
		}
		if err == nil && code != 0 {
			break // no boot_id to compare: trust WaitReboot
		}
		// Same boot, or the guest is on its way down (ErrRebooted, or a
		// connection error): look again shortly.
		select {
		case <-wctx.Done():
			if err == nil {
				err = errors.New("it announced a shutdown but is still in the same boot")
			}
			return timedOut(err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	r.log.line("[goldsmith] ", fmt.Sprintf("the guest is back after %s", time.Since(start).Round(time.Second)))
	if r.opts.ReadyTimeout >= 0 {
		return r.waitReady(ctx)
	}
	return nil
}

// exec does one attempt of a step in the guest.
func (r *runner) exec(ctx context.Context, p prepared, s *Step, out *stepOutput) (int, error) {
	c := p.c
	switch c.Type {
	case template.CustomizeFile:
		dest := c.Destination
		if strings.HasSuffix(dest, "/") {
			dest += download.BaseName(c.SourceURI)
		}
		if err := r.g.Upload(ctx, strings.NewReader(string(p.artifact.Data)), dest, 0o644); err != nil {
			return -1, fmt.Errorf("upload to %s: %w", dest, err)
		}
		out.note(fmt.Sprintf("wrote %d bytes (sha256 %s) to %s", len(p.artifact.Data), p.artifact.SHA256, dest))
		return 0, nil

	case template.CustomizeShell:
		script, ext := r.scriptFor(p)
		s.SHA256 = sha256Hex(script)
		path := r.uniquePath(s.Index, ext)
		run := shellquote.Quote(path)
		if !strings.HasPrefix(string(script), "#!") {
			run = "/bin/sh " + run // no shebang: /bin/sh, not the login shell
		}
		if write, ok := writeInline(script, path); ok {
			return r.runWrapped(ctx, write, run, path, out)
		}
		if err := r.g.Upload(ctx, strings.NewReader(string(script)), path, 0o755); err != nil {
			return -1, fmt.Errorf("upload script to %s: %w", path, err)
		}
		return r.runWrapped(ctx, "", run, path, out) // uploaded executable (0755)

	case template.CustomizePowerShell:
		code, err := r.g.Run(ctx, "command -v pwsh", io.Discard, io.Discard)
		if err != nil {
			return -1, fmt.Errorf("looking for pwsh: %w", err)
		}
		if code != 0 {
			return -1, errors.New("the image has no PowerShell (pwsh); install it in an earlier Shell customizer or use a Shell customizer")
		}
		script, _ := r.scriptFor(p)
		s.SHA256 = sha256Hex(script)
		path := r.uniquePath(s.Index, ".ps1")
		if err := r.g.Upload(ctx, strings.NewReader(string(script)), path, 0o644); err != nil {
			return -1, fmt.Errorf("upload script to %s: %w", path, err)
		}
		run := "pwsh -NoProfile -NonInteractive -File " + shellquote.Quote(path)
		if c.RunElevated || c.RunAsSystem {
			run = "sudo -n " + run
		}
		return r.runWrapped(ctx, "", run, path, out)
	}
	return -1, fmt.Errorf("%w: customizer type %q", ErrUnsupported, c.Type)
}

// scriptFor returns the bytes to upload for a Shell or PowerShell step.
// Inline Shell lines become a "#!/bin/sh -e" script, so the step stops at
// the first failing line, as AIB (Packer's inline shell) does.
func (r *runner) scriptFor(p prepared) ([]byte, string) {
	if p.artifact != nil {
		return p.artifact.Data, ".sh"
	}
	body := strings.Join(p.c.Inline, "\n") + "\n"
	if p.c.Type == template.CustomizeShell {
		return []byte("#!/bin/sh -e\n" + body), ".sh"
	}
	return []byte(body), ".ps1"
}

// maxInlineScript bounds the scripts writeInline sends in the command
// itself: the guest's sshd passes the command to the shell as one argument,
// and Linux allows 128 KiB for one.
const maxInlineScript = 64 << 10

// writeInline returns the start of a step's command that writes script to
// path (a new file, mode 0755) from a here-document in the same session:
// one session per step instead of an upload
// and a run, each a fraction of a second under emulation. It declines
// (ok false; the caller uploads) what a here-document cannot carry byte
// for byte: NUL bytes, a last line without its newline, a line equal to
// the delimiter, or a large script.
func writeInline(script []byte, path string) (cmd string, ok bool) {
	if len(script) == 0 || len(script) > maxInlineScript || script[len(script)-1] != '\n' || bytes.IndexByte(script, 0) >= 0 {
		return "", false
	}
	var b [8]byte
	rand.Read(b[:])
	eof := "GOLDSMITH_SCRIPT_" + hex.EncodeToString(b[:])
	if bytes.Contains(append([]byte("\n"), script...), []byte("\n"+eof+"\n")) {
		return "", false
	}
	q := shellquote.Quote(path)
	// set -C: the file is new (a name planted in /tmp is not followed).
	return "(set -C && umask 077 && exec cat >" + q + ") <<'" + eof + "' && chmod 0755 " + q +
		" || { echo \"goldsmith: cannot write the step's script to \"" + q + " >&2; exit 126; }\n" +
		string(script) + eof + "\n", true
}

// runWrapped runs command in the guest between a start marker and a probe
// for a shutdown under way, then removes the step's script. prelude, if
// any, writes that script first (writeInline).
func (r *runner) runWrapped(ctx context.Context, prelude, command, cleanup string, out *stepOutput) (int, error) {
	wrapped := prelude + "printf '%s\\n' " + markerStarted + "; " +
		command + "; rc=$?; rm -f " + shellquote.Quote(cleanup) + "; " +
		shutdownProbe + "exit $rc"
	stdout, stderr := out.stream(), out.stream()
	code, err := r.g.Run(ctx, wrapped, stdout, stderr)
	stdout.Flush()
	stderr.Flush()
	return code, err
}

// shutdownProbe prints markerReboot and the boot_id when the guest is going
// down or has a delayed shutdown scheduled ("shutdown -r +5"). One systemctl
// answers both "stopping" (systemd's own test: shutdown.target has a job)
// and a reboot or power-off queued but not yet started ("shutdown -r now"
// returns before systemd says "stopping"); each process costs a fraction of
// a second under emulation, and this runs after every step, so the shell
// matches systemctl's answer itself. systemctl as a normal user needs
// D-Bus, which minimal images lack; root's systemctl talks to systemd
// directly, hence the sudo -n fallback.
const shutdownProbe = `case "$(if [ -e /run/systemd/shutdown/scheduled ]; then echo goldsmith:scheduled; else ` +
	`systemctl list-jobs --no-legend 2>/dev/null || sudo -n systemctl list-jobs --no-legend 2>/dev/null; fi)" in ` +
	`*goldsmith:scheduled*|*shutdown.target*|*reboot.target*|*poweroff.target*|*halt.target*|*kexec.target*) ` +
	`printf '%s %s\n' ` + markerReboot + ` "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)";; esac; `

func (r *runner) uniquePath(index int, ext string) string {
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s/goldsmith-%d-%s%s", r.opts.tempDir(), index, hex.EncodeToString(b[:]), ext)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
