package identity

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/store"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func openDirectory(t *testing.T) (*Directory, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), filepath.Join(dir, "goldsmith.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return NewDirectory(st), dir
}

func TestPrincipals(t *testing.T) {
	ctx := context.Background()
	d, _ := openDirectory(t)
	p, secret, err := d.Create(ctx, "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 64 || strings.Contains(p.SecretHash, secret) || p.SecretHash == "" {
		t.Fatalf("secret %q, hash %q: want a 64-hex secret kept only hashed", secret, p.SecretHash)
	}
	if got, err := d.Get(ctx, strings.ToUpper(p.ClientID)); err != nil || got.Name != "ci" {
		t.Fatalf("Get in upper case = %+v, %v", got, err)
	}
	if _, err := d.Verify(ctx, p.ClientID, secret); err != nil {
		t.Fatalf("Verify with the secret: %v", err)
	}
	if _, err := d.Verify(ctx, p.ClientID, secret[:63]+"x"); !errors.Is(err, ErrBadSecret) {
		t.Fatalf("Verify with a wrong secret = %v, want ErrBadSecret", err)
	}
	list, err := d.List(ctx)
	if err != nil || len(list) != 1 || list[0].ClientID != p.ClientID || list[0].Subscriptions[0] != DefaultSubscription {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := d.Delete(ctx, p.ClientID); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, p.ClientID); !errors.Is(err, ErrUnknownClient) {
		t.Fatalf("second Delete = %v, want ErrUnknownClient", err)
	}
	if _, err := d.Verify(ctx, p.ClientID, secret); !errors.Is(err, ErrUnknownClient) {
		t.Fatalf("Verify of a deleted principal = %v, want ErrUnknownClient", err)
	}

	first, _, ok, err := d.CreateFirst(ctx, "admin")
	if err != nil || !ok || first.Name != "admin" {
		t.Fatalf("CreateFirst = %+v, %v, %v", first, ok, err)
	}
	if err := d.Delete(ctx, first.ClientID); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := d.CreateFirst(ctx, "admin"); err != nil || ok {
		t.Fatalf("CreateFirst again = %v, %v: want no second first principal", ok, err)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	d, dir := openDirectory(t)
	clk := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	a, err := NewAuthority(Options{Directory: d, KeyFile: filepath.Join(dir, "key"), StaticTokens: []string{"static-one"}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewAuthority(Options{Directory: d, KeyFile: filepath.Join(t.TempDir(), "key"), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	reopened, err := NewAuthority(Options{Directory: d, KeyFile: filepath.Join(dir, "key"), Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	p, secret, err := d.Create(ctx, "ci", []string{"sub-a"})
	if err != nil {
		t.Fatal(err)
	}
	gone, goneSecret, err := d.Create(ctx, "gone", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.Issue(ctx, p.ClientID, secret, "https://127.0.0.1/")
	if err != nil {
		t.Fatal(err)
	}
	if tok.ExpiresIn < time.Hour {
		t.Errorf("token valid for %s, want at least 1h", tok.ExpiresIn)
	}
	foreign, _, err := other.Issue(ctx, p.ClientID, secret, "x")
	if err != nil {
		t.Fatal(err)
	}
	goneTok, _, err := a.Issue(ctx, gone.ClientID, goneSecret, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, gone.ClientID); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok.AccessToken, ".")
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]

	tests := []struct {
		name    string
		auth    *Authority
		token   string
		advance time.Duration
		want    error
		caller  string
	}{
		{name: "static token", auth: a, token: "static-one", caller: "static token 1"},
		{name: "issued token", auth: a, token: tok.AccessToken, caller: "principal ci (" + p.ClientID + ")"},
		{name: "issued token, key read back from its file", auth: reopened, token: tok.AccessToken, caller: "principal ci (" + p.ClientID + ")"},
		{name: "issued token just before expiry", auth: a, token: tok.AccessToken, advance: time.Hour - time.Second, caller: "principal ci (" + p.ClientID + ")"},
		{name: "expired token", auth: a, token: tok.AccessToken, advance: time.Hour, want: ErrExpiredToken},
		{name: "signed by another key", auth: a, token: foreign.AccessToken, want: ErrInvalidToken},
		{name: "tampered payload", auth: a, token: tampered, want: ErrInvalidToken},
		{name: "deleted principal", auth: a, token: goneTok.AccessToken, want: ErrInvalidToken},
		{name: "unknown static token", auth: a, token: "static-two", want: ErrInvalidToken},
		{name: "empty", auth: a, token: "", want: ErrInvalidToken},
	}
	start := clk.t
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.t = start.Add(tt.advance)
			c, err := tt.auth.Authenticate(ctx, tt.token)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Authenticate = %+v, %v; want %v", c, err, tt.want)
				}
				return
			}
			if err != nil || c.Name != tt.caller {
				t.Fatalf("Authenticate = %+v, %v; want caller %q", c, err, tt.caller)
			}
		})
	}
	clk.t = start
	c, _ := a.Authenticate(ctx, tok.AccessToken)
	if !c.CanUse("SUB-A") || c.CanUse("sub-b") {
		t.Errorf("principal of sub-a: CanUse(SUB-A) = %v, CanUse(sub-b) = %v", c.CanUse("SUB-A"), c.CanUse("sub-b"))
	}
	if s, _ := a.Authenticate(ctx, "static-one"); !s.CanUse("anything") {
		t.Error("a static token should use every subscription")
	}
}

func TestIssueErrorsAndRateLimit(t *testing.T) {
	ctx := context.Background()
	d, dir := openDirectory(t)
	clk := &clock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	a, err := NewAuthority(Options{Directory: d, KeyFile: filepath.Join(dir, "key"), Rate: time.Second, Burst: 3, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	p, secret, err := d.Create(ctx, "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Issue(ctx, "no-such-client", "x", "aud"); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("unknown client: %v", err)
	}
	if _, _, err := a.Issue(ctx, p.ClientID, "wrong", "aud"); !errors.Is(err, ErrBadSecret) {
		t.Errorf("wrong secret: %v", err)
	}
	// The wrong secret spent one of the 3; two more pass, the next waits.
	for i := range 2 {
		if _, _, err := a.Issue(ctx, p.ClientID, secret, "aud"); err != nil {
			t.Fatalf("request %d: %v", i+2, err)
		}
	}
	_, wait, err := a.Issue(ctx, p.ClientID, secret, "aud")
	if !errors.Is(err, ErrRateLimited) || wait <= 0 || wait > time.Second {
		t.Fatalf("4th request = %v, wait %s; want ErrRateLimited within 1s", err, wait)
	}
	if _, _, err := a.Issue(ctx, "no-such-client", "x", "aud"); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("another client is limited separately: %v", err)
	}
	clk.t = clk.t.Add(time.Second)
	if _, _, err := a.Issue(ctx, p.ClientID, secret, "aud"); err != nil {
		t.Fatalf("after a second: %v", err)
	}
}
