package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/identity"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/store"
)

// cookieName is the session cookie. The cookie holds only a random session
// id; the credential stays on the server.
const cookieName = "goldsmith_session"

// session is one signed-in browser.
type session struct {
	id    string
	CSRF  string    `json:"csrf"`
	Token string    `json:"token"` // the credential signed in with, checked again on every request
	Until time.Time `json:"until"`
}

// Sessions are documents in the store, so that every replica of the API
// serving one database knows every session (a browser may reach any of
// them); the document is named by a hash of the session id, which only
// the cookie holds.
const sessionType = "goldsmith/console-session"

type sessions struct {
	st  *store.Store
	ttl time.Duration
	now func() time.Time
}

func newSessions(st *store.Store, ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{st: st, ttl: ttl, now: now}
}

func sessionDoc(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "/goldsmith/console/sessions/" + hex.EncodeToString(sum[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// create starts a session, and ends the expired ones.
func (s *sessions) create(ctx context.Context, token string, until time.Time) (*session, error) {
	now := s.now()
	if max := now.Add(s.ttl); until.IsZero() || until.After(max) {
		until = max
	}
	se := &session{id: randomHex(32), CSRF: randomHex(32), Token: token, Until: until}
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		docs, err := tx.List(ctx, store.Query{Type: sessionType})
		if err != nil {
			return err
		}
		for _, d := range docs {
			var old session
			if json.Unmarshal(d.Body, &old) != nil || now.After(old.Until) {
				if err := tx.Delete(ctx, d.ID); err != nil {
					return err
				}
			}
		}
		return tx.CreateJSON(ctx, sessionDoc(se.id), sessionType, se)
	})
	if err != nil {
		return nil, fmt.Errorf("start a console session: %w", err)
	}
	return se, nil
}

// get finds a live session; nil when there is none.
func (s *sessions) get(ctx context.Context, id string) (*session, error) {
	var se session
	err := s.st.View(ctx, func(tx *store.Tx) error { _, err := tx.GetJSON(ctx, sessionDoc(id), &se); return err })
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the console session: %w", err)
	}
	if s.now().After(se.Until) {
		return nil, s.remove(ctx, id)
	}
	se.id = id
	return &se, nil
}

func (s *sessions) remove(ctx context.Context, id string) error {
	err := s.st.Update(ctx, func(tx *store.Tx) error { return tx.Delete(ctx, sessionDoc(id)) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("end the console session: %w", err)
	}
	return nil
}

// request is one authenticated console request.
type request struct {
	w       http.ResponseWriter
	r       *http.Request
	ctx     context.Context
	caller  identity.Caller
	session *session
}

// authenticate finds the request's session and checks its credential again
// (a deleted principal or an expired token ends the session). A browser
// without one is sent to the sign-in page; a script gets 401.
func (c *Console) authenticate(w http.ResponseWriter, r *http.Request) (*request, bool) {
	var se *session
	if ck, err := r.Cookie(cookieName); err == nil {
		if se, err = c.sessions.get(r.Context(), ck.Value); err != nil {
			c.log.Error("console: session", "err", err)
			http.Error(w, "goldsmith could not read the session.", http.StatusInternalServerError)
			return nil, false
		}
	}
	if se != nil {
		caller, err := c.auth.Authenticate(r.Context(), se.Token)
		if err == nil {
			return &request{w: w, r: r, ctx: resource.WithActor(r.Context(), caller.Name), caller: caller, session: se}, true
		}
		if rerr := c.sessions.remove(r.Context(), se.id); rerr != nil {
			c.log.Error("console: session", "err", rerr)
		}
		if !errors.Is(err, identity.ErrExpiredToken) && !errors.Is(err, identity.ErrInvalidToken) {
			c.log.Error("console: check session credential", "err", err)
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead || r.Header.Get("X-Console-Fragment") != "" {
		http.Error(w, "Sign in first.", http.StatusUnauthorized)
		return nil, false
	}
	http.Redirect(w, r, Prefix+"signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
	return nil, false
}

// checkCSRF checks a change's CSRF token: the form field csrf, or the
// X-CSRF-Token header of the console's script. A change without the
// session's token answers 403 and changes nothing.
func (c *Console) checkCSRF(rq *request) bool {
	got := rq.r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = formValue(rq.r, "csrf")
	}
	if got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(rq.session.CSRF)) == 1 && sameOrigin(rq.r) {
		return true
	}
	c.render(rq.w, http.StatusForbidden, "error", page{Title: "Forbidden", Data: errorData{
		Message: "This change carried no valid CSRF token, so nothing was changed. Reload the page and try again."}})
	return false
}

// formValue reads a form field of a urlencoded or multipart body.
func formValue(r *http.Request, name string) string {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		if r.MultipartForm == nil {
			_ = r.ParseMultipartForm(16 << 20)
		}
	}
	return r.PostFormValue(name)
}

// sameOrigin refuses a change whose Origin header (browsers send it with
// every POST) names another site; SameSite=Strict already keeps the cookie
// from cross-site requests.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return o == ""
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// signIn serves the sign-in page and takes its form: a static token, or a
// service principal's client id and secret (for which the token endpoint's
// rate limit applies).
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	next := localPath(r.FormValue("next"))
	data := signInData{Next: next}
	if r.Method != http.MethodPost {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		c.render(w, http.StatusOK, "signin", page{Title: "Sign in", Data: data})
		return
	}
	if !sameOrigin(r) {
		http.Error(w, "cross-site sign-in refused", http.StatusForbidden)
		return
	}
	var token string
	var until time.Time
	clientID, secret := strings.TrimSpace(r.PostFormValue("client_id")), r.PostFormValue("client_secret")
	switch {
	case clientID != "":
		data.ClientID = clientID
		tok, wait, err := c.auth.Issue(r.Context(), clientID, secret, "https://management.azure.com/")
		switch {
		case errors.Is(err, identity.ErrRateLimited):
			data.Error = "Too many sign-in attempts for this client id; try again in " + wait.Round(time.Second).String() + "."
		case err != nil:
			data.Error = "Sign-in failed: the client id or secret is wrong."
		default:
			token, until = tok.AccessToken, c.now().Add(tok.ExpiresIn)
		}
	case strings.TrimSpace(r.PostFormValue("token")) != "":
		t := strings.TrimSpace(r.PostFormValue("token"))
		if _, err := c.auth.Authenticate(r.Context(), t); err != nil {
			data.Error = "Sign-in failed: the token is not valid."
		} else {
			token = t
		}
	default:
		data.Error = "Give an access token, or a service principal's client id and secret."
	}
	if token == "" {
		c.render(w, http.StatusUnauthorized, "signin", page{Title: "Sign in", Data: data})
		return
	}
	se, err := c.sessions.create(r.Context(), token, until)
	if err != nil {
		c.log.Error("console: sign in", "err", err)
		http.Error(w, "goldsmith could not start the session.", http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: se.id, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, Expires: se.Until})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signOut ends the session.
func (c *Console) signOut(rq *request) {
	if rq.r.Method != http.MethodPost {
		c.methodNotAllowed(rq)
		return
	}
	if err := c.sessions.remove(rq.ctx, rq.session.id); err != nil {
		c.log.Error("console: sign out", "err", err)
	}
	http.SetCookie(rq.w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, Secure: rq.r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(rq.w, rq.r, Prefix+"signin", http.StatusSeeOther)
}

// localPath keeps a redirect target on this site.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}

type signInData struct {
	Next, ClientID, Error string
}
