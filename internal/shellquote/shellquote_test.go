package shellquote

import (
	"os/exec"
	"testing"
)

var cases = []struct{ in, want string }{
	{"/tmp/a.txt", "/tmp/a.txt"},
	{"--opt,x:1+2@h%3", "--opt,x:1+2@h%3"},
	{"", "''"},
	{"a b", "'a b'"},
	{"it's", `'it'\''s'`},
	{"$x", "'$x'"},
	{"a=b", "'a=b'"},
	{"~", "'~'"},
	{"#c", "'#c'"},
	{"*", "'*'"},
	{"a\nb", "'a\nb'"},
	{"'", `''\'''`},
	{`\`, `'\'`},
	{"é", "'é'"},
}

func TestQuote(t *testing.T) {
	for _, tc := range cases {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestQuoteRoundTrip has a real /bin/sh read every quoted word back.
func TestQuoteRoundTrip(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh: %v", err)
	}
	for _, tc := range cases {
		out, err := exec.Command(sh, "-c", "printf %s "+Quote(tc.in)).Output()
		if err != nil || string(out) != tc.in {
			t.Errorf("sh read %s back as %q (%v), want %q", Quote(tc.in), out, err, tc.in)
		}
	}
	// The first word of a command stays a command, not an assignment.
	if out, err := exec.Command(sh, "-c", Join([]string{"a=b"})+" 2>/dev/null; echo $?").Output(); err != nil || string(out) != "127\n" {
		t.Errorf("%s ran as %q (%v), want command not found (127)", Join([]string{"a=b"}), out, err)
	}
}

func TestJoin(t *testing.T) {
	tests := []struct {
		words []string
		want  string
	}{
		{[]string{"qemu-system-x86_64", "-drive", "file=/d/a b.qcow2,if=virtio"}, `qemu-system-x86_64 -drive 'file=/d/a b.qcow2,if=virtio'`},
		{[]string{"mmdebstrap", "--include=sudo,fdisk", "--aptopt=Acquire::Check-Valid-Until \"false\""}, `mmdebstrap --include=sudo,fdisk '--aptopt=Acquire::Check-Valid-Until "false"'`},
		{[]string{"a=b", "c=d"}, `'a=b' c=d`},
		{[]string{"sh", "-c", "echo one >&2; printf 'two' >&2"}, `sh -c 'echo one >&2; printf '\''two'\'' >&2'`},
		{nil, ""},
	}
	for _, tc := range tests {
		if got := Join(tc.words); got != tc.want {
			t.Errorf("Join(%q) = %s, want %s", tc.words, got, tc.want)
		}
	}
}
