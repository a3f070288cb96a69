package main

import (
	"bufio"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// readTimed reads a log as timedLines writes it ("%8.3f line").
func readTimed(t *testing.T, path string) []timedLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []timedLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		stamp, text, _ := strings.Cut(strings.TrimLeft(l, " "), " ")
		s, err := strconv.ParseFloat(stamp, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", path, l, err)
		}
		out = append(out, timedLine{Seconds: s, Text: text})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPackerPhases(t *testing.T) {
	// packer-1.6.6.log is a real run of work/packer.json (paths shortened);
	// serial.log is a made-up console with two kernel banners.
	out := readTimed(t, "testdata/packer-1.6.6.log")
	serial := readTimed(t, "testdata/serial.log")
	tests := []struct {
		name       string
		out        []timedLine
		serial     []timedLine
		wantPhases []phase
		wantSteps  []phase
	}{
		{
			name: "complete run", out: out, serial: serial,
			wantPhases: []phase{{"Building", 90.831}, {"Customizing", 137.326}, {"Generalizing", 11.922}, {"Distributing", 0.821}},
			wantSteps: []phase{{"to VM start", 7.393}, {"boot: firmware+GRUB", 4.607}, {"boot: kernel to SSH", 78.831},
				{"reboot: down+firmware+GRUB", 49.979}, {"reboot: kernel to check", 77.540}, {"reboot", 127.519}},
		},
		{
			name: "no console", out: out,
			wantPhases: []phase{{"Building", 90.831}, {"Customizing", 137.326}, {"Generalizing", 11.922}, {"Distributing", 0.821}},
			wantSteps:  []phase{{"to VM start", 7.393}, {"reboot", 127.519}},
		},
		{
			name: "failed after the reboot", out: out[:findText(t, out, "bench-check: booted again")+1], serial: serial,
			wantPhases: []phase{{"Building", 90.831}},
			wantSteps: []phase{{"to VM start", 7.393}, {"boot: firmware+GRUB", 4.607}, {"boot: kernel to SSH", 78.831},
				{"reboot: down+firmware+GRUB", 49.979}, {"reboot: kernel to check", 77.540}, {"reboot", 127.519}},
		},
		{
			name: "failed before SSH", out: out[:findText(t, out, "Waiting for SSH")+1],
			wantSteps: []phase{{"to VM start", 7.393}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			phases, steps := packerPhases(tt.out, tt.serial, 240.9)
			assertPhases(t, "phases", phases, tt.wantPhases)
			assertPhases(t, "steps", steps, tt.wantSteps)
		})
	}
}

func findText(t *testing.T, lines []timedLine, sub string) int {
	t.Helper()
	for i, l := range lines {
		if strings.Contains(l.Text, sub) {
			return i
		}
	}
	t.Fatalf("no line with %q", sub)
	return -1
}

func assertPhases(t *testing.T, what string, got, want []phase) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i].Name != want[i].Name || math.Abs(got[i].Seconds-want[i].Seconds) > 0.0005 {
			t.Errorf("%s[%d]: got %v, want %v", what, i, got[i], want[i])
		}
	}
}

func TestTimedLines(t *testing.T) {
	var b strings.Builder
	tl := &timedLines{w: &b}
	for _, chunk := range []string{"one\ntw", "o\r\n", "\nthree"} {
		if _, err := tl.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	tl.flush()
	var texts []string
	for _, l := range tl.lines {
		texts = append(texts, l.Text)
	}
	if got, want := strings.Join(texts, "|"), "one|two||three"; got != want {
		t.Errorf("lines %q, want %q", got, want)
	}
	if n := strings.Count(b.String(), "\n"); n != 4 {
		t.Errorf("log has %d lines, want 4:\n%s", n, b.String())
	}
}
