package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, dir, name string, data []byte) (string, string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	return p, hex.EncodeToString(h[:])
}

func tmpEmpty(t *testing.T, d *Dir) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.Root(), "tmp"))
	if err != nil || len(entries) != 0 {
		t.Errorf("tmp/ holds %d entries (%v): a failed put left something", len(entries), err)
	}
}

func TestPut(t *testing.T) {
	src := t.TempDir()
	data := append([]byte("goldsmith"), make([]byte, 3<<20)...)
	data = append(data, "end"...)
	p, sum := writeFile(t, src, "disk.raw", data)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		sum     string
		opt     PutOptions
		want    Placed
		wantErr error
	}{
		{"copy", context.Background(), sum, PutOptions{}, Placed{Size: int64(len(data)), Copied: true}, nil},
		{"link", context.Background(), sum, PutOptions{Link: true}, Placed{Size: int64(len(data)), Linked: true}, nil},
		{"trusted link", context.Background(), sum, PutOptions{Link: true, TrustLinked: true}, Placed{Size: int64(len(data)), Linked: true}, nil},
		{"link with a wrong digest leaves nothing", context.Background(), strings.Repeat("cd", 32), PutOptions{Link: true}, Placed{}, ErrDigestMismatch},
		{"wrong digest leaves nothing", context.Background(), strings.Repeat("ab", 32), PutOptions{}, Placed{}, ErrDigestMismatch},
		{"canceled leaves nothing", canceled, sum, PutOptions{}, Placed{}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			unlock := d.Lock(tt.sum)
			got, err := d.Put(tt.ctx, tt.sum, p, tt.opt)
			unlock()
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Put = %+v, %v; want %+v, %v", got, err, tt.want, tt.wantErr)
			}
			tmpEmpty(t, d)
			_, ok, _ := d.Stat(tt.sum)
			if ok != (tt.wantErr == nil) {
				t.Fatalf("blob present = %v", ok)
			}
			if tt.wantErr != nil {
				return
			}
			b, err := os.ReadFile(d.Path(sum))
			if err != nil || string(b) != string(data) {
				t.Fatalf("stored bytes differ (%v)", err)
			}
			again, err := d.Put(context.Background(), sum, p, PutOptions{})
			if err != nil || !again.Reused {
				t.Fatalf("second Put = %+v, %v; want reused", again, err)
			}
			sums, err := d.List()
			if err != nil || len(sums) != 1 || sums[0] != sum {
				t.Fatalf("List = %v, %v", sums, err)
			}
			if err := d.Remove(sum); err != nil {
				t.Fatal(err)
			}
			if err := d.Remove(sum); err != nil {
				t.Fatalf("removing a missing blob: %v", err)
			}
		})
	}
}

func TestRegions(t *testing.T) {
	root := t.TempDir()
	rs, err := OpenRegions(context.Background(), root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(rs.Names()); got != len(DefaultRegionNames()) {
		t.Fatalf("%d default regions", got)
	}
	for _, tt := range []struct {
		name string
		ok   bool
	}{{"westus2", true}, {"West US 2", true}, {"CentralUS", true}, {"southcentralus", false}, {"", false}} {
		if err := rs.Check(tt.name); (err == nil) != tt.ok {
			t.Errorf("Check(%q) = %v", tt.name, err)
		}
	}
	if _, err := OpenRegions(context.Background(), root, []Region{{Name: "eastus"}, {Name: "East US"}}); err == nil {
		t.Error("a region configured twice was accepted")
	}
	custom := filepath.Join(t.TempDir(), "bucket")
	rs, err = OpenRegions(context.Background(), root, []Region{{Name: "eastus", Root: custom}})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := rs.Store("eastus"); !ok || d.(*Dir).Root() != custom {
		t.Fatalf("custom root: %v %v", d, ok)
	}
}

func TestSigner(t *testing.T) {
	s, err := NewSigner([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewSigner([]byte(strings.Repeat("o", 32)))
	now := time.Unix(1_800_000_000, 0)
	q := s.Sign("/a/b.vhd", now.Add(time.Hour))
	tests := []struct {
		name    string
		signer  *Signer
		path    string
		mutate  func(q map[string][]string)
		at      time.Time
		wantErr error
	}{
		{"valid", s, "/a/b.vhd", nil, now, nil},
		{"other path", s, "/a/c.vhd", nil, now, ErrBadSignature},
		{"other key", other, "/a/b.vhd", nil, now, ErrBadSignature},
		{"expiry changed", s, "/a/b.vhd", func(q map[string][]string) { q["se"] = []string{"9999999999"} }, now, ErrBadSignature},
		{"permission changed", s, "/a/b.vhd", func(q map[string][]string) { q["sp"] = []string{"rw"} }, now, ErrBadSignature},
		{"expired", s, "/a/b.vhd", nil, now.Add(2 * time.Hour), ErrExpired},
		{"unsigned", s, "/a/b.vhd", func(q map[string][]string) { delete(q, "sig") }, now, ErrNoSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := map[string][]string{}
			for k, v := range q {
				c[k] = v
			}
			if tt.mutate != nil {
				tt.mutate(c)
			}
			if err := tt.signer.Verify(tt.path, c, tt.at); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
		})
	}
	key := filepath.Join(t.TempDir(), "k")
	k1, err := LoadOrCreateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(key)
	if err != nil || string(k1) != string(k2) {
		t.Fatalf("the key changed between loads (%v)", err)
	}
}
