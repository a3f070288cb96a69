package resource

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/template"
)

func TestVersionName(t *testing.T) {
	now := time.Date(2026, 3, 5, 1, 2, 3, 0, time.UTC) // day 64, second 3723
	major := func(n int) *int { return &n }
	tests := []struct {
		name     string
		explicit string
		v        *template.Versioning
		src      template.Source
		existing []string
		want     string
		wantErr  bool
	}{
		{"explicit", "2.3.4", nil, template.Source{}, nil, "2.3.4", false},
		{"explicit malformed", "2.3", nil, template.Source{}, nil, "", true},
		{"default from the clock", "", nil, template.Source{}, nil, "0.26064.3723", false},
		{"default made unique", "", nil, template.Source{}, []string{"0.26064.3723"}, "0.26064.3724", false},
		{"latest, none yet", "", &template.Versioning{Scheme: "Latest"}, template.Source{}, nil, "1.0.0", false},
		{"latest, next patch", "", &template.Versioning{Scheme: "Latest"}, template.Source{}, []string{"1.0.9", "1.2.0", "0.9.9"}, "1.2.1", false},
		{"latest within major", "", &template.Versioning{Scheme: "Latest", Major: major(0)}, template.Source{}, []string{"1.2.0", "0.9.9"}, "0.9.10", false},
		{"latest, new major", "", &template.Versioning{Scheme: "Latest", Major: major(3)}, template.Source{}, []string{"1.2.0"}, "3.0.0", false},
		{"source platform image", "", &template.Versioning{Scheme: "Source"},
			template.Source{Type: template.SourcePlatformImage, Version: "12.20250101.1"}, nil, "12.20250101.1", false},
		{"source gallery version", "", &template.Versioning{Scheme: "Source"},
			template.Source{Type: template.SourceSharedImageVersion, ImageVersionID: "/x/versions/1.2.3"}, nil, "1.2.3", false},
		{"source latest is not a version", "", &template.Versioning{Scheme: "Source"},
			template.Source{Type: template.SourcePlatformImage, Version: "latest"}, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := versionName(tt.explicit, tt.v, tt.src, tt.existing, now)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("versionName = %q, %v; want %q (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestVHDFooter(t *testing.T) {
	for _, size := range []int64{1 << 20, 30 << 30, 200 << 30} {
		f := vhdFooter(size)
		if string(f[:8]) != "conectix" || binary.BigEndian.Uint32(f[60:]) != 2 || int64(binary.BigEndian.Uint64(f[48:])) != size {
			t.Errorf("size %d: bad footer header", size)
		}
		var sum uint32
		for i, b := range f {
			if i < 64 || i >= 68 {
				sum += uint32(b)
			}
		}
		if ^sum != binary.BigEndian.Uint32(f[64:]) {
			t.Errorf("size %d: checksum mismatch", size)
		}
		c, h, s := binary.BigEndian.Uint16(f[56:]), f[58], f[59]
		if int64(c)*int64(h)*int64(s)*512 > size {
			t.Errorf("size %d: geometry %d/%d/%d is larger than the disk", size, c, h, s)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := map[string]int{"exit 3": 3, "echo hi; exit 1;": 1, "echo exit": 0, "exit 0": 0, "false || exit 42": 42}
	for line, want := range tests {
		if got := exitCode(line); got != want {
			t.Errorf("exitCode(%q) = %d, want %d", line, got, want)
		}
	}
}
