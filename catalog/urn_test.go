package catalog

import (
	"slices"
	"testing"
)

func TestParseURN(t *testing.T) {
	tests := []struct {
		in      string
		want    URN
		wantErr bool
	}{
		{"Debian:debian-12:12:latest", URN{"Debian", "debian-12", "12", ""}, false},
		{"Debian:debian-12:12:LATEST", URN{"Debian", "debian-12", "12", ""}, false},
		{"Debian:debian-12:12", URN{"Debian", "debian-12", "12", ""}, false},
		{"Canonical:UbuntuServer:18.04-LTS:18.04.202401010", URN{"Canonical", "UbuntuServer", "18.04-LTS", "18.04.202401010"}, false},
		{" Debian:debian-11:11 ", URN{"Debian", "debian-11", "11", ""}, false},
		{"Debian:debian-12", URN{}, true},
		{"a:b:c:d:e", URN{}, true},
		{"Debian::12", URN{}, true},
		{"Debian:debian 12:12", URN{}, true},
		{"../x:y:z", URN{}, true},
	}
	for _, tc := range tests {
		got, err := ParseURN(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseURN(%q) = %+v, %v; want %+v, err %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	if s := (URN{"Debian", "debian-12", "12", "12.1.0"}).String(); s != "Debian:debian-12:12:12.1.0" {
		t.Errorf("String = %q", s)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"12.20260101.0", "12.20260101.0", 0},
		{"12.20260101.0", "12.20260101.1", -1},
		{"12.20260101.10", "12.20260101.9", 1}, // numeric, not text
		{"12.20251231.99", "12.20260101.0", -1},
		{"12.20260101", "12.20260101.0", -1}, // prefix sorts first
		{"1.0.0", "1.0.beta", -1},            // numbers before text
		{"1.0.alpha", "1.0.beta", -1},
		{"18.04.202401010", "18.04.202312310", 1},
	}
	for _, tc := range tests {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
	vs := []string{"12.20260101.10", "12.20260101.9", "12.20251231.0", "12.20260101.0"}
	slices.SortFunc(vs, CompareVersions)
	if want := []string{"12.20251231.0", "12.20260101.0", "12.20260101.9", "12.20260101.10"}; !slices.Equal(vs, want) {
		t.Errorf("sorted %v, want %v", vs, want)
	}
}

func TestNextVersion(t *testing.T) {
	tests := []struct {
		existing []string
		want     string
	}{
		{nil, "12.20260315.0"},
		{[]string{"12.20260314.4"}, "12.20260315.0"},
		{[]string{"12.20260315.0"}, "12.20260315.1"},
		{[]string{"12.20260315.0", "12.20260315.9", "12.20260315.2"}, "12.20260315.10"},
		{[]string{"11.20260315.3"}, "12.20260315.0"},
	}
	for _, tc := range tests {
		if got := nextVersion("12", "20260315", tc.existing); got != tc.want {
			t.Errorf("nextVersion(%v) = %q, want %q", tc.existing, got, tc.want)
		}
	}
	for sku, want := range map[string]string{"18.04-LTS": "18", "12": "12", "server": "0", "007x": "7"} {
		if got := majorOf(sku); got != want {
			t.Errorf("majorOf(%q) = %q, want %q", sku, got, want)
		}
	}
}
