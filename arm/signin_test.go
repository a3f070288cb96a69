package arm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/identity"
	"github.com/goldsmith-dev/goldsmith/server"
	"github.com/goldsmith-dev/goldsmith/store"
)

// tokenRequest posts a client_credentials request to the token endpoint.
func tokenRequest(t *testing.T, s *site, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(s.URL+"/adfs/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("token endpoint answered %s, not JSON: %s", resp.Status, data)
	}
	return resp, m
}

func clientCredentials(id, secret string) url.Values {
	// As MSAL Python sends it (../shared/docs/AZ-CLI.md), unknown fields included.
	return url.Values{"client_id": {id}, "client_secret": {secret}, "grant_type": {"client_credentials"}, "client_info": {"1"},
		"claims": {`{"access_token":{"xms_cc":{"values":["CP1"]}}}`}, "scope": {"https://127.0.0.1:8443//.default"}}
}

func TestSignInEndpoints(t *testing.T) {
	s := startSite(t, siteOptions{})
	for _, path := range []string{"/adfs/.well-known/openid-configuration", "/adfs/some-tenant/.well-known/openid-configuration"} {
		resp, body := s.callWith(t, http.MethodGet, path, "", nil, "")
		if resp.StatusCode != http.StatusOK || str(body, "token_endpoint") != s.URL+"/adfs/oauth2/token" ||
			str(body, "authorization_endpoint") != s.URL+"/adfs/oauth2/authorize" {
			t.Errorf("GET %s: %s %v", path, resp.Status, body)
		}
	}
	// az cloud register asks with a double slash when the ARM URL ends in one.
	resp, body := s.callWith(t, http.MethodGet, "//metadata/endpoints", "2015-01-01", nil, "")
	if resp.StatusCode != http.StatusOK || str(body, "graphEndpoint") != s.URL+"/" || str(body, "authentication", "loginEndpoint") != s.URL+"/adfs" {
		t.Errorf("GET /metadata/endpoints: %s %v", resp.Status, body)
	}
	// Every URL uses the host the client used.
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/adfs/.well-known/openid-configuration", nil)
	req.Host = "goldsmith.example:8443"
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var oidc map[string]any
	_ = json.NewDecoder(r2.Body).Decode(&oidc)
	r2.Body.Close()
	if got := str(oidc, "token_endpoint"); got != "http://goldsmith.example:8443/adfs/oauth2/token" {
		t.Errorf("token_endpoint for Host goldsmith.example:8443 = %q", got)
	}
}

func TestTokenEndpoint(t *testing.T) {
	ctx := context.Background()
	s := startSite(t, siteOptions{})
	p, secret, err := s.Auth.Directory().Create(ctx, "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Map(func(r rune) rune { // every hex digit changed
		if r == 'f' {
			return '0'
		}
		return 'f'
	}, secret)
	tests := []struct {
		name       string
		form       url.Values
		status     int
		oauthError string
		desc       string
	}{
		{"unknown client", clientCredentials("nobody", secret), http.StatusUnauthorized, "invalid_client", "AADSTS700016: Application with identifier 'nobody' was not found"},
		{"wrong secret", clientCredentials(p.ClientID, wrong), http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret"},
		{"password grant", url.Values{"grant_type": {"password"}, "username": {"a"}, "password": {"b"}}, http.StatusBadRequest, "unsupported_grant_type", "client_credentials"},
		{"no secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {p.ClientID}}, http.StatusBadRequest, "invalid_request", "client_secret"},
		{"ok", clientCredentials(p.ClientID, secret), http.StatusOK, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tokenRequest(t, s, tt.form)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %v, want %d", resp.Status, body, tt.status)
			}
			if tt.status != http.StatusOK {
				if str(body, "error") != tt.oauthError || !strings.Contains(str(body, "error_description"), tt.desc) {
					t.Fatalf("error %v, want %s with %q", body, tt.oauthError, tt.desc)
				}
				return
			}
			if n, _ := body["expires_in"].(float64); n < 3600 || str(body, "token_type") != "Bearer" {
				t.Fatalf("token answer %v: want a Bearer token for at least an hour", body)
			}
			// The token works on the API, and the caller is the principal.
			tok := str(body, "access_token")
			r, subs := s.callWith(t, http.MethodGet, "/subscriptions", "2019-11-01", nil, tok)
			list, _ := subs["value"].([]any)
			if r.StatusCode != http.StatusOK || len(list) != 1 || str(list[0].(map[string]any), "subscriptionId") != identity.DefaultSubscription {
				t.Fatalf("GET /subscriptions with the token: %s %v", r.Status, subs)
			}
		})
	}

	// Basic auth is client_secret_basic.
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/adfs/oauth2/token", strings.NewReader("grant_type=client_credentials&scope=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(p.ClientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("client_secret_basic: %s", resp.Status)
	}

	// Per client: 10 at once (3 used above: wrong secret, ok, basic), then
	// one every 6 s.
	limited := false
	for i := 0; i < 9 && !limited; i++ {
		resp, body := tokenRequest(t, s, clientCredentials(p.ClientID, secret))
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = true
			if resp.Header.Get("Retry-After") == "" || str(body, "error") != "temporarily_unavailable" {
				t.Errorf("rate limited answer: %v, Retry-After %q", body, resp.Header.Get("Retry-After"))
			}
		}
	}
	if !limited {
		t.Error("12 token requests of one client in a row were all answered")
	}
	other, otherSecret, _ := s.Auth.Directory().Create(ctx, "other", nil)
	if resp, body := tokenRequest(t, s, clientCredentials(other.ClientID, otherSecret)); resp.StatusCode != http.StatusOK {
		t.Errorf("another client is limited on its own: %s %v", resp.Status, body)
	}
}

// TestTokensRefused: what the API refuses, each with 401 and ARM's error
// envelope.
func TestTokensRefused(t *testing.T) {
	ctx := context.Background()
	s := startSite(t, siteOptions{})
	dir := s.Auth.Directory()
	p, secret, err := dir.Create(ctx, "ci", nil)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(a *identity.Authority, clientID, secret string) string {
		tok, _, err := a.Issue(ctx, clientID, secret, "aud")
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	// Issued two hours ago with this server's own key (its data directory's
	// on SQLite, the database's on PostgreSQL): expired an hour ago.
	pastOpts := identity.Options{Directory: dir, KeyFile: filepath.Join(s.DataDir, "identity", "token-signing.key"),
		Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}
	if s.Store.Dialect() == store.PostgreSQL {
		if pastOpts.Key, err = server.TokenSigningKey(ctx, s.Store); err != nil {
			t.Fatal(err)
		}
	}
	past, err := identity.NewAuthority(pastOpts)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := identity.NewAuthority(identity.Options{Directory: dir, KeyFile: filepath.Join(t.TempDir(), "key")})
	if err != nil {
		t.Fatal(err)
	}
	gone, goneSecret, err := dir.Create(ctx, "gone", nil)
	if err != nil {
		t.Fatal(err)
	}
	goneToken := issue(s.Auth, gone.ClientID, goneSecret)
	if err := dir.Delete(ctx, gone.ClientID); err != nil {
		t.Fatal(err)
	}
	valid := issue(s.Auth, p.ClientID, secret)

	tests := []struct {
		name, token, code string
	}{
		{"expired", issue(past, p.ClientID, secret), "ExpiredAuthenticationToken"},
		{"signed by another key", issue(foreign, p.ClientID, secret), "InvalidAuthenticationToken"},
		{"deleted principal", goneToken, "InvalidAuthenticationToken"},
		{"not a token", "nonsense", "InvalidAuthenticationToken"},
		{"none", "", "AuthenticationFailed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.callWith(t, http.MethodGet, rgPath("rg1"), "2021-04-01", nil, tt.token)
			if resp.StatusCode != http.StatusUnauthorized || str(body, "error", "code") != tt.code || str(body, "error", "message") == "" {
				t.Fatalf("%s %v, want 401 with error code %s", resp.Status, body, tt.code)
			}
		})
	}
	// The secret is no longer accepted at the token endpoint either.
	if resp, body := tokenRequest(t, s, clientCredentials(gone.ClientID, goneSecret)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token request of a deleted principal: %s %v", resp.Status, body)
	}

	// A principal's token is held to its subscriptions.
	if resp, body := s.callWith(t, http.MethodPut, "/subscriptions/"+identity.DefaultSubscription+"/resourceGroups/rg1", "2021-04-01",
		map[string]any{"location": "westus2"}, valid); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT a group with the principal's token: %s %v", resp.Status, body)
	}
	resp, body := s.callWith(t, http.MethodGet, rgPath("rg1"), "2021-04-01", nil, valid)
	if resp.StatusCode != http.StatusForbidden || str(body, "error", "code") != "AuthorizationFailed" {
		t.Errorf("another subscription with the principal's token: %s %v, want 403 AuthorizationFailed", resp.Status, body)
	}
}
