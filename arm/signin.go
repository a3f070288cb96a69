package arm

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/identity"
)

// signIn answers the endpoints a client signs in with, which need no token:
//
//	GET  /metadata/endpoints                   the cloud's endpoints (az cloud register)
//	GET  /adfs[/{tenant}]/.well-known/openid-configuration
//	POST /adfs[/{tenant}]/oauth2/token         client_credentials for service principals
//
// goldsmith is an ADFS-style authority (as Azure Stack Hub's): the Azure
// CLI's MSAL needs an authority whose first path segment is "adfs" to work
// offline (no instance discovery at login.microsoftonline.com). See
// ../shared/docs/AZ-CLI.md. It reports whether it answered.
func (s *Server) signIn(rq *request, segs []string) bool {
	eq := strings.EqualFold
	switch {
	case len(segs) == 2 && eq(segs[0], "metadata") && eq(segs[1], "endpoints"):
		s.metadataEndpoints(rq)
	case len(segs) >= 3 && eq(segs[0], "adfs") && len(segs) <= 4 && eq(segs[len(segs)-2], ".well-known") && eq(segs[len(segs)-1], "openid-configuration"):
		s.openIDConfiguration(rq)
	case len(segs) >= 3 && eq(segs[0], "adfs") && len(segs) <= 4 && eq(segs[len(segs)-2], "oauth2") && eq(segs[len(segs)-1], "token"):
		s.token(rq)
	default:
		return false
	}
	return true
}

func (s *Server) metadataEndpoints(rq *request) {
	if rq.r.Method != http.MethodGet {
		methodNotAllowed(rq)
		return
	}
	b := rq.base + "/"
	writeJSON(rq.w, http.StatusOK, map[string]any{
		"galleryEndpoint": b,
		"graphEndpoint":   b,
		"portalEndpoint":  b,
		"authentication": map[string]any{
			"loginEndpoint": rq.base + "/adfs",
			"audiences":     []string{b},
		},
	})
}

func (s *Server) openIDConfiguration(rq *request) {
	if rq.r.Method != http.MethodGet {
		methodNotAllowed(rq)
		return
	}
	a := rq.base + "/adfs"
	writeJSON(rq.w, http.StatusOK, map[string]any{
		"issuer":                                a,
		"authorization_endpoint":                a + "/oauth2/authorize",
		"token_endpoint":                        a + "/oauth2/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"grant_types_supported":                 []string{"client_credentials"},
		"response_types_supported":              []string{"token"},
		"scopes_supported":                      []string{rq.base + "//.default"},
	})
}

// oauthError answers an OAuth 2.0 error (RFC 6749 5.2), in the shape Azure
// AD gives it: MSAL and the Azure CLI print error_description.
func oauthError(rq *request, status int, code string, aadsts int, desc string) {
	msg := desc
	if aadsts != 0 {
		msg = "AADSTS" + strconv.Itoa(aadsts) + ": " + desc
	}
	body := map[string]any{"error": code, "error_description": msg, "timestamp": time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id": rq.w.Header().Get("x-ms-request-id"), "correlation_id": rq.w.Header().Get("x-ms-correlation-request-id")}
	if aadsts != 0 {
		body["error_codes"] = []int{aadsts}
	}
	rq.w.Header().Set("Cache-Control", "no-store")
	writeJSON(rq.w, status, body)
}

// token is the token endpoint: client_credentials with the client's id and
// secret in the form (client_secret_post) or in Basic auth. The token's
// audience is the scope without "/.default" (or the v1 "resource").
func (s *Server) token(rq *request) {
	if rq.r.Method != http.MethodPost {
		oauthError(rq, http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts POST requests.")
		return
	}
	rq.r.Body = http.MaxBytesReader(rq.w, rq.r.Body, 64<<10)
	if err := rq.r.ParseForm(); err != nil {
		oauthError(rq, http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded: "+err.Error())
		return
	}
	f := rq.r.PostForm
	if gt := f.Get("grant_type"); gt != "client_credentials" {
		oauthError(rq, http.StatusBadRequest, "unsupported_grant_type", 70003,
			"goldsmith supports only grant_type client_credentials (service principals: az login --service-principal), not '"+gt+"'.")
		return
	}
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := rq.r.BasicAuth(); ok && clientID == "" {
		clientID, secret = u, p
	}
	if clientID == "" || secret == "" {
		oauthError(rq, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain client_id and client_secret.")
		return
	}
	audience := f.Get("resource")
	if sc := strings.Fields(f.Get("scope")); len(sc) > 0 {
		audience = strings.TrimSuffix(strings.TrimSuffix(sc[0], ".default"), "/")
	}
	tok, wait, err := s.auth.Issue(rq.ctx, clientID, secret, audience)
	switch {
	case err == nil:
	case errors.Is(err, identity.ErrRateLimited):
		secs := int(wait/time.Second) + 1
		rq.w.Header().Set("Retry-After", strconv.Itoa(secs))
		oauthError(rq, http.StatusTooManyRequests, "temporarily_unavailable", 50196,
			"Too many token requests for client '"+clientID+"'. Retry in "+strconv.Itoa(secs)+" s.")
		s.log.Warn("token request refused", "client_id", clientID, "reason", "rate limited")
		return
	case errors.Is(err, identity.ErrUnknownClient):
		oauthError(rq, http.StatusUnauthorized, "invalid_client", 700016,
			"Application with identifier '"+clientID+"' was not found in goldsmith. Check the client id, or create a service principal with `goldsmith principal create`.")
		s.log.Warn("token request refused", "client_id", clientID, "reason", "unknown client")
		return
	case errors.Is(err, identity.ErrBadSecret):
		oauthError(rq, http.StatusUnauthorized, "invalid_client", 7000215,
			"Invalid client secret provided for application '"+clientID+"'.")
		s.log.Warn("token request refused", "client_id", clientID, "reason", "invalid secret")
		return
	default:
		s.log.Error("token request failed", "client_id", clientID, "err", err)
		oauthError(rq, http.StatusInternalServerError, "server_error", 0, "goldsmith could not issue a token.")
		return
	}
	s.log.Info("token issued", "principal", tok.Principal.Name, "client_id", tok.Principal.ClientID, "audience", audience)
	secs := int(tok.ExpiresIn / time.Second)
	rq.w.Header().Set("Cache-Control", "no-store")
	writeJSON(rq.w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "access_token": tok.AccessToken,
		"expires_in": secs, "ext_expires_in": secs,
		"expires_on": strconv.FormatInt(time.Now().Add(tok.ExpiresIn).Unix(), 10),
		"resource":   audience,
	})
}
