// Package console is goldsmith's web console, served by `goldsmith serve` at
// / beside the API: recent runs, image templates (source, problems, runs,
// Run/Cancel/Delete, creation with problems shown before anything is
// submitted), a run's phase timeline, customizers, live log and outputs,
// galleries with their definitions and versions, managed images and the
// platform image catalog.
//
// It signs in with the API's credentials (a static token, or a service
// principal's client id and secret) and keeps a session in an HttpOnly,
// SameSite=Strict cookie (Secure under TLS); every change carries the
// session's CSRF token. Pages are html/template, embedded, and readable
// without JavaScript; a small script (web/console.js) layers live updates on
// top. It reads and changes state through resource.Service and the store,
// as the API does.
package console

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/identity"
	"github.com/goldsmith-dev/goldsmith/internal/httpstream"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/store"
)

//go:embed web
var webFS embed.FS

// Catalog is the platform image catalog, as the console lists it.
type Catalog interface {
	List() ([]catalog.Entry, error)
	Aliases() ([]catalog.AliasEntry, error)
}

// Options configure a Console.
type Options struct {
	Service *resource.Service
	Store   *store.Store
	Auth    *identity.Authority
	// Catalog lists the platform images; nil shows none.
	Catalog Catalog
	Logger  *slog.Logger
	// SessionTTL is how long a session lasts without sign-in; default 12
	// hours. A service principal's session ends with its token (1 hour).
	SessionTTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Console serves the web console.
type Console struct {
	svc      *resource.Service
	st       *store.Store
	auth     *identity.Authority
	cat      Catalog
	log      *slog.Logger
	now      func() time.Time
	sessions *sessions
	pages    map[string]*template.Template
	static   http.Handler
}

// Prefix is where the console's pages live, besides / (the overview).
const Prefix = "/console/"

// New makes a Console.
func New(o Options) (*Console, error) {
	if o.Service == nil || o.Store == nil || o.Auth == nil {
		return nil, errors.New("console: a Service, a Store and an Authority are required")
	}
	c := &Console{svc: o.Service, st: o.Store, auth: o.Auth, cat: o.Catalog, log: o.Logger, now: o.Now}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	ttl := o.SessionTTL
	if ttl <= 0 {
		ttl = 12 * time.Hour
	}
	c.sessions = newSessions(c.st, ttl, c.now)
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(webFS, "web/static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix(Prefix+"static/", http.FileServer(http.FS(static)))
	return c, nil
}

// Handler serves the console at / and under Prefix, and hands every other
// request to api unchanged.
func (c *Console) Handler(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, Prefix) {
			c.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// statusWriter is the response writer console handlers get: the status
// for the access log, and who the caller turned out to be.
type statusWriter struct {
	*httpstream.StatusWriter
	who string
}

// ServeHTTP answers a console request, and logs it as the API logs its own.
func (c *Console) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{StatusWriter: &httpstream.StatusWriter{ResponseWriter: rw}, who: "-"}
	defer func() {
		if !strings.HasPrefix(r.URL.Path, Prefix+"static/") {
			c.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", w.Status,
				"duration", time.Since(start).Round(time.Millisecond), "principal", w.who)
		}
	}()
	c.serve(w, r)
}

func (c *Console) serve(w *statusWriter, r *http.Request) {
	h := w.Header()
	// Scripts and styles come from the console's own files only; nothing
	// frames it; links to other sites carry no console URL.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	path := strings.TrimPrefix(r.URL.Path, "/")
	path = strings.TrimPrefix(path, strings.Trim(Prefix, "/"))
	path = strings.Trim(path, "/")
	switch {
	case strings.HasPrefix(path, "static/"):
		h.Set("Cache-Control", "max-age=300")
		c.static.ServeHTTP(w, r)
		return
	case path == "signin":
		c.signIn(w, r)
		return
	}
	h.Set("Cache-Control", "no-store")
	rq, ok := c.authenticate(w, r)
	if !ok {
		return
	}
	w.who = rq.caller.Name
	if r.Method == http.MethodPost && !c.checkCSRF(rq) {
		return
	}
	segs := strings.Split(path, "/")
	switch {
	case path == "" && r.URL.Path == "/":
		c.overview(rq)
	case path == "":
		http.Redirect(w, r, "/", http.StatusSeeOther)
	case path == "signout":
		c.signOut(rq)
	case path == "templates":
		c.templates(rq)
	case path == "templates/new":
		c.newTemplate(rq)
	case segs[0] == "t" && len(segs) >= 4:
		c.templateRoutes(rq, segs[1:])
	case path == "galleries":
		c.galleries(rq)
	case segs[0] == "g" && len(segs) >= 4 && len(segs) <= 5:
		c.gallery(rq, segs[1:])
	case path == "images":
		c.images(rq)
	case path == "catalog":
		c.catalog(rq)
	default:
		c.notFound(rq, "There is no such page.")
	}
}

// templateRoutes serves /console/t/{sub}/{group}/{name}[/...].
func (c *Console) templateRoutes(rq *request, segs []string) {
	id := templateID(segs[0], segs[1], segs[2])
	if !rq.caller.CanUse(segs[0]) {
		c.forbidden(rq, segs[0])
		return
	}
	rest := segs[3:]
	switch {
	case len(rest) == 0:
		c.templateDetail(rq, id)
	case len(rest) == 1 && (rest[0] == "run" || rest[0] == "cancel" || rest[0] == "delete"):
		c.templateAction(rq, id, rest[0])
	case len(rest) == 2 && rest[0] == "runs":
		c.runPage(rq, id, rest[1])
	case len(rest) == 3 && rest[0] == "runs" && rest[2] == "log":
		c.runLog(rq, id, rest[1])
	default:
		c.notFound(rq, "There is no such page.")
	}
}

// templateID is the resource id of an image template.
func templateID(sub, group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", sub, group, resource.TypeImageTemplate, name)
}
