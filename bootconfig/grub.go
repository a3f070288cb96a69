package bootconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
)

// Evaluating grub.cfg the way GRUB's normal mode would on a BIOS boot
// (grub_platform=pc), far enough to know which menu entry boots and which
// kernel, initrd and arguments it loads. Anything whose outcome cannot be
// known here (an unknown command in the entry, a condition that decides a
// menu entry or a relevant variable, a write to grubenv that GRUB would
// make) is an error: the caller then boots through GRUB itself.

// volume is a filesystem GRUB can read.
type volume interface {
	uuid() string
	label() string
	// stat follows symlinks; an absent file gives fs.ErrNotExist.
	stat(path string) (fileInfo, error)
	readFile(path string) ([]byte, error)
}

type fileInfo struct {
	size int64
	dir  bool
}

// volumes are the disk's partitions with readable filesystems.
type volumes interface {
	// get returns the filesystem of a partition named as GRUB does
	// ("hd0,gpt2", "hd0,msdos1", "hd0,2").
	get(dev string) (volume, string, error) // the volume and its canonical name
	// all lists every readable filesystem with its canonical name, in disk order.
	all() []namedVolume
}

type namedVolume struct {
	name string
	vol  volume
}

// fileRef is a file on one of the disk's filesystems.
type fileRef struct {
	dev  string // canonical partition name, e.g. hd0,gpt2
	path string // absolute path on that filesystem
}

// selection is what the default menu entry boots.
type selection struct {
	title   string // the entry's path in the menu, levels joined by ">"
	linux   fileRef
	arg0    string // the kernel path as written in the entry
	args    []string
	initrds []fileRef
}

// cmdline is the kernel command line GRUB's linux loader passes:
// "BOOT_IMAGE=<path>" and the arguments, quoted as grub_create_loader_cmdline
// quotes them.
func (s selection) cmdline() string {
	words := append([]string{"BOOT_IMAGE=" + s.arg0}, s.args...)
	for i, w := range words {
		var b strings.Builder
		space := strings.ContainsRune(w, ' ')
		if space {
			b.WriteByte('"')
		}
		for _, c := range w {
			if c == '\\' || c == '\'' || c == '"' {
				b.WriteByte('\\')
			}
			b.WriteRune(c)
		}
		if space {
			b.WriteByte('"')
		}
		words[i] = b.String()
	}
	return strings.Join(words, " ")
}

// value is a variable's value; unknown when it depends on something not
// evaluated here (a condition that could go either way, $?, a probe).
type value struct {
	s       string
	unknown bool
}

type variable struct {
	value
	exported bool
}

// env is one variable context (a submenu opens a new one holding only the
// exported variables, as grub_env_context_open does).
type env map[string]*variable

func (e env) get(name string) value {
	if v, ok := e[name]; ok {
		return v.value
	}
	switch name {
	case "?", "#", "@", "*", "chosen":
		return value{unknown: true}
	}
	if name != "" && name[0] >= '0' && name[0] <= '9' {
		return value{unknown: true}
	}
	return value{} // unset: empty, as in GRUB
}

func (e env) set(name string, v value) {
	if old, ok := e[name]; ok {
		old.value = v
		return
	}
	e[name] = &variable{value: v}
}

// menuItem is a menuentry or submenu registered by the script.
type menuItem struct {
	title, id string
	stmt      *menuStmt
}

// grubRun is one evaluation of grub.cfg.
type grubRun struct {
	vols    volumes
	funcs   map[string]*funcStmt
	grubenv map[string]string // the grubenv file as it is on disk
	env     env
	menu    []menuItem
	depth   int
	// in the chosen entry:
	entry *selection
}

// grubFeatures are the feature_* variables GRUB 2.06's normal mode sets.
var grubFeatures = []string{
	"feature_chainloader_bpb", "feature_ntldr", "feature_platform_search_hint",
	"feature_default_font_path", "feature_all_video_module", "feature_menuentry_id",
	"feature_menuentry_options", "feature_200_final", "feature_nativedisk_cmd",
	"feature_timeout_style",
}

// resolveGrub evaluates grub.cfg, found on volume cfgDev at cfgPath
// (e.g. /boot/grub/grub.cfg, so $prefix is (cfgDev)/boot/grub), and returns
// what the default entry boots.
func resolveGrub(src string, vols volumes, cfgDev, cfgPath string) (selection, error) {
	script, err := parseGrub(src)
	if err != nil {
		return selection{}, fmt.Errorf("grub.cfg: %w", err)
	}
	dir := cfgPath[:strings.LastIndexByte(cfgPath, '/')]
	r := &grubRun{vols: vols, funcs: map[string]*funcStmt{}, env: env{}}
	for k, v := range map[string]string{
		"root": cfgDev, "prefix": "(" + cfgDev + ")" + dir,
		"config_directory": "(" + cfgDev + ")" + dir, "config_file": "(" + cfgDev + ")" + cfgPath,
		"grub_platform": "pc", "grub_cpu": "i386", "cmdpath": "(hd0)",
	} {
		r.env[k] = &variable{value: value{s: v}, exported: true}
	}
	for _, f := range grubFeatures {
		r.env[f] = &variable{value: value{s: "y"}, exported: true}
	}
	if err := r.execList(script, false); err != nil {
		return selection{}, fmt.Errorf("grub.cfg: %w", err)
	}
	return r.choose(r.env.get("default"), "")
}

// choose picks the entry named by def in the current menu, descending
// into submenus along a ">" path.
func (r *grubRun) choose(def value, parent string) (selection, error) {
	if def.unknown {
		return selection{}, errors.New("grub.cfg: the default entry depends on something that cannot be evaluated here")
	}
	if len(r.menu) == 0 {
		return selection{}, errors.New("grub.cfg: no menu entries")
	}
	d := def.s
	head, rest, deeper := strings.Cut(d, ">")
	idx := -1
	if head == "" {
		idx = 0
	} else if n, err := strconv.Atoi(head); err == nil {
		if n < 0 || n >= len(r.menu) {
			return selection{}, fmt.Errorf("grub.cfg: default entry %d of %d does not exist", n, len(r.menu))
		}
		idx = n
	} else {
		for i, m := range r.menu {
			if m.title == head || (m.id != "" && m.id == head) {
				idx = i
				break
			}
		}
		if idx < 0 {
			return selection{}, fmt.Errorf("grub.cfg: no menu entry titled or with id %q", head)
		}
	}
	item := r.menu[idx]
	title := item.title
	if parent != "" {
		title = parent + ">" + title
	}
	if item.stmt.submenu {
		if !deeper {
			return selection{}, fmt.Errorf("grub.cfg: the default %q names the submenu %q, not an entry in it", d, title)
		}
		// A submenu runs in a new context holding only exported variables.
		sub := env{}
		for k, v := range r.env {
			if v.exported {
				c := *v
				sub[k] = &c
			}
		}
		r.env, r.menu = sub, nil
		if err := r.execList(item.stmt.body, false); err != nil {
			return selection{}, fmt.Errorf("grub.cfg: submenu %q: %w", title, err)
		}
		return r.choose(value{s: rest}, title)
	}
	if deeper {
		return selection{}, fmt.Errorf("grub.cfg: the default %q goes below %q, which is not a submenu", d, title)
	}
	r.entry = &selection{title: title}
	if err := r.execList(item.stmt.body, false); err != nil {
		return selection{}, fmt.Errorf("grub.cfg: entry %q: %w", title, err)
	}
	if r.entry.linux.path == "" {
		return selection{}, fmt.Errorf("grub.cfg: entry %q loads no Linux kernel", title)
	}
	return *r.entry, nil
}

// execList runs statements. uncertain says they may or may not run (a
// branch of a condition that cannot be evaluated): then nothing is
// executed, but what they could change is marked unknown, and anything that
// would decide the boot is an error.
func (r *grubRun) execList(list []stmt, uncertain bool) error {
	for _, s := range list {
		if err := r.exec(s, uncertain); err != nil {
			return err
		}
	}
	return nil
}

func (r *grubRun) exec(s stmt, uncertain bool) error {
	switch s := s.(type) {
	case *funcStmt:
		if uncertain {
			return fmt.Errorf("line %d: function %s defined under a condition that cannot be evaluated", s.line, s.name)
		}
		r.funcs[s.name] = s
		return nil
	case *menuStmt:
		if uncertain {
			return fmt.Errorf("line %d: menu entry under a condition that cannot be evaluated", s.line)
		}
		if r.entry != nil {
			return fmt.Errorf("line %d: menu entry inside a menu entry", s.line)
		}
		return r.register(s)
	case *ifStmt:
		return r.execIf(s, uncertain)
	case *command:
		_, err := r.command(s, uncertain)
		return err
	}
	return fmt.Errorf("line %d: unknown statement", s.pos())
}

func (r *grubRun) execIf(s *ifStmt, uncertain bool) error {
	for i, c := range s.clauses {
		ok, known, err := r.condition(c.cond, uncertain)
		if err != nil {
			return err
		}
		if uncertain || !known {
			// Either way: walk every remaining branch as uncertain.
			for _, c2 := range s.clauses[i:] {
				if err := r.execList(c2.body, true); err != nil {
					return err
				}
			}
			return r.execList(s.orElse, true)
		}
		if ok {
			return r.execList(c.body, false)
		}
	}
	return r.execList(s.orElse, false)
}

// condition runs an if's condition list; its last command's status decides.
func (r *grubRun) condition(cond []stmt, uncertain bool) (ok, known bool, err error) {
	known = true
	for i, s := range cond {
		c, isCmd := s.(*command)
		if !isCmd {
			return false, false, fmt.Errorf("line %d: compound statement in a condition", s.pos())
		}
		// A command's status is all a condition uses: run it as if it
		// might not run, so a probe's --set (or an unknown command) makes
		// things unknown instead of failing.
		st, err := r.command(c, true)
		if err != nil {
			return false, false, err
		}
		if i == len(cond)-1 {
			return st == statusTrue, st != statusUnknown && known, nil
		}
	}
	return false, false, errors.New("empty condition")
}

type status int

const (
	statusTrue status = iota
	statusFalse
	statusUnknown
)

func boolStatus(b bool) status {
	if b {
		return statusTrue
	}
	return statusFalse
}

// expand turns words into arguments: unquoted variables split on blanks,
// as grub_script_arglist_to_argv does. unknown is set if any part is.
func (r *grubRun) expand(words []word) (args []string, unknown bool) {
	for _, w := range words {
		cur, have := "", false
		for _, p := range w.parts {
			if !p.isVar {
				cur += p.text
				have = true
				continue
			}
			v := r.env.get(p.text)
			unknown = unknown || v.unknown
			if p.quoted {
				cur += v.s
				have = true
				continue
			}
			fields := strings.FieldsFunc(v.s, func(c rune) bool { return c == ' ' || c == '\t' || c == '\n' })
			for j, f := range fields {
				if j > 0 {
					args = append(args, cur)
					cur = ""
				}
				cur += f
				have = true
			}
		}
		if have {
			args = append(args, cur)
		}
	}
	return args, unknown
}

var assignRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// harmless commands change nothing about which kernel boots.
var harmless = map[string]bool{
	"insmod": true, "echo": true, "terminal_input": true, "terminal_output": true,
	"terminal": true, "serial": true, "export": true, "background_image": true,
	"background_color": true, "play": true, "clear": true, "sleep": true, "true": true,
	"false": true, "loadfont": true, "load_video": true,
}

// command runs one simple command and returns its status.
func (r *grubRun) command(c *command, uncertain bool) (status, error) {
	if len(c.words) == 0 {
		return statusTrue, nil
	}
	// name=value (no "set")
	if w := c.words[0]; len(c.words) == 1 && len(w.parts) > 0 && !w.parts[0].isVar && !w.parts[0].quoted && assignRE.MatchString(w.parts[0].text) {
		name, first, _ := strings.Cut(w.parts[0].text, "=")
		rest := word{parts: append([]wordPart{{text: first}}, w.parts[1:]...)}
		v, unk := r.expandOne(rest)
		r.assign(name, value{s: v, unknown: unk || uncertain})
		return statusTrue, nil
	}
	args, unknown := r.expand(c.words)
	if len(args) == 0 {
		return statusTrue, nil
	}
	name := args[0]
	if unknown && name != "set" && name != "[" {
		if r.entry != nil || uncertain {
			return statusUnknown, fmt.Errorf("line %d: %q uses a variable that cannot be evaluated here", c.line, c.words[0].literal())
		}
	}
	if f, ok := r.funcs[name]; ok {
		if r.depth > 16 {
			return statusUnknown, fmt.Errorf("line %d: functions nest too deep", c.line)
		}
		r.depth++
		defer func() { r.depth-- }()
		// Positional parameters are not modelled: they read as unknown.
		return statusUnknown, r.execList(f.body, uncertain)
	}
	switch name {
	case "set":
		if unknown && !uncertain {
			// The value is unknown, but the assignment happens.
			for _, a := range args[1:] {
				if k, _, ok := strings.Cut(a, "="); ok {
					r.assign(k, value{unknown: true})
				}
			}
			return statusTrue, nil
		}
		for _, a := range args[1:] {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				continue // "set NAME" prints it
			}
			r.assign(k, value{s: v, unknown: uncertain})
		}
		return statusTrue, nil
	case "unset":
		for _, a := range args[1:] {
			r.assign(a, value{unknown: uncertain})
		}
		return statusTrue, nil
	case "export":
		for _, a := range args[1:] {
			if v, ok := r.env[a]; ok {
				v.exported = true
			} else {
				r.env[a] = &variable{exported: true}
			}
		}
		return statusTrue, nil
	case "[":
		if unknown {
			return statusUnknown, nil
		}
		if len(args) < 2 || args[len(args)-1] != "]" {
			return statusUnknown, fmt.Errorf("line %d: [ without ]", c.line)
		}
		return r.test(args[1 : len(args)-1])
	case "test":
		if unknown {
			return statusUnknown, nil
		}
		return r.test(args[1:])
	case "load_env":
		return statusTrue, r.loadEnv(c, args[1:], uncertain)
	case "save_env":
		return statusTrue, r.saveEnv(c, args[1:])
	case "search", "search.fs_uuid", "search.fs_label", "search.file":
		return r.search(c, args, uncertain)
	case "linux", "initrd":
		if r.entry == nil || uncertain {
			return statusUnknown, fmt.Errorf("line %d: %s outside the chosen entry's certain path", c.line, name)
		}
		return statusTrue, r.load(c, name, args[1:])
	case "source", "configfile", "normal", ".":
		if uncertain || r.entry != nil {
			return statusUnknown, fmt.Errorf("line %d: %s is not supported", c.line, name)
		}
		return statusUnknown, fmt.Errorf("line %d: %s is not supported", c.line, name)
	}
	if harmless[name] {
		return statusUnknown, nil
	}
	if name == "gfxpayload" || name == "savedefault" || name == "recordfail" {
		// Functions grub-mkconfig defines; absent here means undefined.
		return statusUnknown, nil
	}
	// Anything else (chainloader, multiboot, linux16, lvm, cryptomount,
	// probe, regexp, ...) might decide the boot.
	if r.entry != nil || uncertain && touchesBoot(name) {
		return statusUnknown, fmt.Errorf("line %d: %q is not supported", c.line, name)
	}
	if uncertain {
		return statusUnknown, nil
	}
	return statusUnknown, fmt.Errorf("line %d: %q is not supported outside a menu entry", c.line, name)
}

// touchesBoot names commands that load or select what boots.
func touchesBoot(name string) bool {
	switch name {
	case "chainloader", "multiboot", "multiboot2", "module", "module2", "linux16", "initrd16",
		"linuxefi", "initrdefi", "xen_hypervisor", "xen_module", "boot", "configfile", "source",
		"probe", "regexp", "cryptomount", "loopback", "drivemap", "set", "search":
		return true
	}
	return false
}

func (r *grubRun) expandOne(w word) (string, bool) {
	var b strings.Builder
	unknown := false
	for _, p := range w.parts {
		if p.isVar {
			v := r.env.get(p.text)
			b.WriteString(v.s)
			unknown = unknown || v.unknown
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String(), unknown
}

func (r *grubRun) assign(name string, v value) {
	if name == "root" && !v.unknown {
		v.s = strings.TrimSuffix(strings.TrimPrefix(v.s, "("), ")")
	}
	r.env.set(name, v)
}

// register adds a menuentry or submenu to the current menu.
func (r *grubRun) register(s *menuStmt) error {
	args, unknown := r.expand(s.args)
	if unknown {
		return fmt.Errorf("line %d: menu entry title or options use a variable that cannot be evaluated", s.line)
	}
	var item menuItem
	item.stmt = s
	haveTitle := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--class" || a == "--users" || a == "--hotkey" || a == "--id" || a == "--source":
			if i+1 >= len(args) {
				return fmt.Errorf("line %d: %s without a value", s.line, a)
			}
			if a == "--id" {
				item.id = args[i+1]
			}
			i++
		case strings.HasPrefix(a, "--id="):
			item.id = strings.TrimPrefix(a, "--id=")
		case a == "--unrestricted" || strings.HasPrefix(a, "--class=") || strings.HasPrefix(a, "--users=") || strings.HasPrefix(a, "--hotkey="):
		case strings.HasPrefix(a, "--"):
			return fmt.Errorf("line %d: unknown menu entry option %s", s.line, a)
		case !haveTitle:
			item.title, haveTitle = a, true
		default:
			// Further words are the entry's positional parameters.
		}
	}
	if !haveTitle {
		return fmt.Errorf("line %d: menu entry without a title", s.line)
	}
	r.menu = append(r.menu, item)
	return nil
}

// test evaluates the arguments of [ ... ] (GRUB's test command).
func (r *grubRun) test(a []string) (status, error) {
	st, rest, err := r.testOr(a)
	if err != nil {
		return statusUnknown, err
	}
	if len(rest) > 0 {
		return statusUnknown, fmt.Errorf("test: unexpected %q", rest[0])
	}
	return st, nil
}

func (r *grubRun) testOr(a []string) (status, []string, error) {
	st, a, err := r.testAnd(a)
	for err == nil && len(a) > 0 && a[0] == "-o" {
		var st2 status
		st2, a, err = r.testAnd(a[1:])
		st = or3(st, st2)
	}
	return st, a, err
}

func (r *grubRun) testAnd(a []string) (status, []string, error) {
	st, a, err := r.testNot(a)
	for err == nil && len(a) > 0 && a[0] == "-a" {
		var st2 status
		st2, a, err = r.testNot(a[1:])
		st = and3(st, st2)
	}
	return st, a, err
}

func or3(x, y status) status {
	switch {
	case x == statusTrue || y == statusTrue:
		return statusTrue
	case x == statusUnknown || y == statusUnknown:
		return statusUnknown
	}
	return statusFalse
}

func and3(x, y status) status {
	switch {
	case x == statusFalse || y == statusFalse:
		return statusFalse
	case x == statusUnknown || y == statusUnknown:
		return statusUnknown
	}
	return statusTrue
}

func (r *grubRun) testNot(a []string) (status, []string, error) {
	if len(a) > 0 && a[0] == "!" {
		st, rest, err := r.testNot(a[1:])
		switch st {
		case statusTrue:
			st = statusFalse
		case statusFalse:
			st = statusTrue
		}
		return st, rest, err
	}
	return r.testPrimary(a)
}

func (r *grubRun) testPrimary(a []string) (status, []string, error) {
	if len(a) == 0 {
		return statusFalse, nil, nil
	}
	if len(a) >= 3 {
		x, op, y := a[0], a[1], a[2]
		switch op {
		case "=", "==":
			return boolStatus(x == y), a[3:], nil
		case "!=":
			return boolStatus(x != y), a[3:], nil
		case "<", ">", "-eq", "-ne", "-lt", "-le", "-gt", "-ge":
			xi, err1 := strconv.ParseInt(x, 10, 64)
			yi, err2 := strconv.ParseInt(y, 10, 64)
			if op == "<" || op == ">" {
				if op == "<" {
					return boolStatus(x < y), a[3:], nil
				}
				return boolStatus(x > y), a[3:], nil
			}
			if err1 != nil || err2 != nil {
				return statusUnknown, nil, fmt.Errorf("test: %s %s %s: not numbers", x, op, y)
			}
			ok := map[string]bool{"-eq": xi == yi, "-ne": xi != yi, "-lt": xi < yi, "-le": xi <= yi, "-gt": xi > yi, "-ge": xi >= yi}[op]
			return boolStatus(ok), a[3:], nil
		}
	}
	if len(a) >= 2 {
		op, x := a[0], a[1]
		switch op {
		case "-z":
			return boolStatus(x == ""), a[2:], nil
		case "-n":
			return boolStatus(x != ""), a[2:], nil
		case "-e", "-f", "-d", "-s":
			st, err := r.fileTest(op, x)
			return st, a[2:], err
		}
	}
	return boolStatus(a[0] != ""), a[1:], nil
}

// fileTest answers -e/-f/-d/-s from the disk's filesystems.
func (r *grubRun) fileTest(op, p string) (status, error) {
	ref, err := r.fileRef(p)
	if err != nil {
		return statusUnknown, nil
	}
	vol, _, err := r.vols.get(ref.dev)
	if err != nil {
		return statusUnknown, nil
	}
	fi, err := vol.stat(ref.path)
	if errors.Is(err, fs.ErrNotExist) {
		return statusFalse, nil
	}
	if err != nil {
		return statusUnknown, nil
	}
	switch op {
	case "-d":
		return boolStatus(fi.dir), nil
	case "-f":
		return boolStatus(!fi.dir), nil
	case "-s":
		return boolStatus(!fi.dir && fi.size > 0), nil
	}
	return statusTrue, nil
}

// fileRef resolves a GRUB file name: "(dev)/path" or "/path" on $root.
func (r *grubRun) fileRef(p string) (fileRef, error) {
	if strings.HasPrefix(p, "(") {
		end := strings.IndexByte(p, ')')
		if end < 0 {
			return fileRef{}, fmt.Errorf("file %q: bad device", p)
		}
		dev, rest := p[1:end], p[end+1:]
		if !strings.HasPrefix(rest, "/") {
			return fileRef{}, fmt.Errorf("file %q: no path after the device", p)
		}
		_, name, err := r.vols.get(dev)
		if err != nil {
			return fileRef{}, fmt.Errorf("file %q: %w", p, err)
		}
		return fileRef{dev: name, path: rest}, nil
	}
	if !strings.HasPrefix(p, "/") {
		return fileRef{}, fmt.Errorf("file %q: not an absolute path", p)
	}
	root := r.env.get("root")
	if root.unknown {
		return fileRef{}, fmt.Errorf("file %q: $root cannot be evaluated here", p)
	}
	_, name, err := r.vols.get(root.s)
	if err != nil {
		return fileRef{}, fmt.Errorf("file %q on $root %q: %w", p, root.s, err)
	}
	return fileRef{dev: name, path: p}, nil
}

// loadEnv reads a grubenv file (load_env [-f FILE] [--skip-sig] [VARS]).
func (r *grubRun) loadEnv(c *command, args []string, uncertain bool) error {
	file := "$prefix/grubenv"
	var only []string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "-f" || args[i] == "--file":
			if i+1 >= len(args) {
				return fmt.Errorf("line %d: load_env -f without a file", c.line)
			}
			file = args[i+1]
			i++
		case strings.HasPrefix(args[i], "--file="):
			file = strings.TrimPrefix(args[i], "--file=")
		case args[i] == "-s" || args[i] == "--skip-sig":
		case strings.HasPrefix(args[i], "-"):
			return fmt.Errorf("line %d: load_env %s not supported", c.line, args[i])
		default:
			only = append(only, args[i])
		}
	}
	if file == "$prefix/grubenv" {
		file = r.env.get("prefix").s + "/grubenv"
	}
	vars, err := r.readEnvFile(file)
	if err != nil {
		return fmt.Errorf("line %d: load_env: %w", c.line, err)
	}
	if r.grubenv == nil {
		r.grubenv = vars
	}
	for k, v := range vars {
		if len(only) > 0 && !contains(only, k) {
			continue
		}
		r.assign(k, value{s: v, unknown: uncertain})
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readEnvFile parses a GRUB environment block: a header line, NAME=VALUE
// lines (with \\ and \n escapes), '#' padding.
func (r *grubRun) readEnvFile(p string) (map[string]string, error) {
	ref, err := r.fileRef(p)
	if err != nil {
		return nil, err
	}
	vol, _, err := r.vols.get(ref.dev)
	if err != nil {
		return nil, err
	}
	b, err := vol.readFile(ref.path)
	if err != nil {
		return nil, err
	}
	const header = "# GRUB Environment Block\n"
	if !strings.HasPrefix(string(b), header) {
		return nil, fmt.Errorf("%s: not a GRUB environment block", p)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(b[len(header):]), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: bad line %q", p, line)
		}
		v = strings.NewReplacer(`\\`, `\`, `\n`, "\n").Replace(v)
		vars[k] = v
	}
	return vars, nil
}

// saveEnv is a write GRUB would make to grubenv. Booting without GRUB
// skips it, which is only the same boot if the file already holds those
// values (a one-time grub-reboot entry or GRUB_SAVEDEFAULT would change it).
func (r *grubRun) saveEnv(c *command, args []string) error {
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			return fmt.Errorf("line %d: save_env %s not supported", c.line, a)
		}
		v := r.env.get(a)
		old, had := r.grubenv[a]
		if v.unknown || v.s != old || (!had && v.s != "") {
			return fmt.Errorf("line %d: GRUB would write %s to grubenv at this boot (grub-reboot or GRUB_SAVEDEFAULT); only GRUB can boot this", c.line, a)
		}
	}
	return nil
}

// search sets a variable (root by default) to the partition holding a
// filesystem UUID, label or file.
func (r *grubRun) search(c *command, args []string, uncertain bool) (status, error) {
	kind := ""
	switch args[0] {
	case "search.fs_uuid":
		kind = "uuid"
	case "search.fs_label":
		kind = "label"
	case "search.file":
		kind = "file"
	}
	setVar := ""
	setGiven := false
	var keys []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-u" || a == "--fs-uuid":
			kind = "uuid"
		case a == "-l" || a == "--label":
			kind = "label"
		case a == "-f" || a == "--file":
			kind = "file"
		case a == "-s" || a == "--set":
			setGiven, setVar = true, "root"
			// GRUB's option parser takes "--set VAR" only as --set=VAR.
		case strings.HasPrefix(a, "--set="):
			setGiven, setVar = true, strings.TrimPrefix(a, "--set=")
		case a == "-n" || a == "--no-floppy" || strings.HasPrefix(a, "--hint"):
		case strings.HasPrefix(a, "-"):
			return statusUnknown, fmt.Errorf("line %d: search option %s not supported", c.line, a)
		default:
			keys = append(keys, a)
		}
	}
	if kind == "" || len(keys) != 1 {
		return statusUnknown, fmt.Errorf("line %d: search: want one of --fs-uuid, --label or --file and one key", c.line)
	}
	if !setGiven {
		return statusUnknown, nil // only prints
	}
	if uncertain {
		r.assign(setVar, value{unknown: true})
		return statusUnknown, nil
	}
	var found []string
	for _, nv := range r.vols.all() {
		var ok bool
		switch kind {
		case "uuid":
			ok = strings.EqualFold(nv.vol.uuid(), keys[0])
		case "label":
			ok = nv.vol.label() == keys[0]
		case "file":
			_, err := nv.vol.stat(keys[0])
			ok = err == nil
		}
		if ok {
			found = append(found, nv.name)
		}
	}
	if len(found) != 1 {
		return statusUnknown, fmt.Errorf("line %d: search --%s %s: %d matching filesystems goldsmith can read, want exactly one", c.line, kind, keys[0], len(found))
	}
	r.assign(setVar, value{s: found[0]})
	return statusTrue, nil
}

// load records the entry's linux or initrd command.
func (r *grubRun) load(c *command, name string, args []string) error {
	e := r.entry
	if name == "linux" {
		if len(args) == 0 {
			return fmt.Errorf("line %d: linux without a file", c.line)
		}
		ref, err := r.fileRef(args[0])
		if err != nil {
			return fmt.Errorf("line %d: %w", c.line, err)
		}
		e.linux, e.arg0, e.args, e.initrds = ref, args[0], append([]string(nil), args[1:]...), nil
		return nil
	}
	if e.linux.path == "" {
		return fmt.Errorf("line %d: initrd before linux", c.line)
	}
	e.initrds = nil
	for _, a := range args {
		if strings.HasPrefix(a, "--") || strings.HasPrefix(a, "newc:") {
			return fmt.Errorf("line %d: initrd %s not supported", c.line, a)
		}
		ref, err := r.fileRef(a)
		if err != nil {
			return fmt.Errorf("line %d: %w", c.line, err)
		}
		e.initrds = append(e.initrds, ref)
	}
	return nil
}
