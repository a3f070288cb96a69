package standin

import "testing"

func TestExitCode(t *testing.T) {
	tests := map[string]int{"exit 3": 3, "echo hi; exit 1;": 1, "echo exit": 0, "exit 0": 0, "false || exit 42": 42}
	for line, want := range tests {
		if got := exitCode(line); got != want {
			t.Errorf("exitCode(%q) = %d, want %d", line, got, want)
		}
	}
}
