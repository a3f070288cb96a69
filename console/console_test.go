package console_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/goldsmith-dev/goldsmith/arm"
	"github.com/goldsmith-dev/goldsmith/console"
	"github.com/goldsmith-dev/goldsmith/internal/standin"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/server"
	"github.com/goldsmith-dev/goldsmith/store"
)

const testToken = "console-test-token"

// site is a goldsmith server (store, queue, service, API and console) on
// 127.0.0.1. Builds run on the STAND-IN EXECUTOR (internal/standin): no VM
// boots, so these tests prove the console's pages and the service paths
// they use, not the build engine.
type site struct {
	url  string
	srv  *server.Server
	http *httptest.Server
}

func startSite(t testing.TB, tls bool, buildTime time.Duration) *site {
	t.Helper()
	ctx := context.Background()
	srv, err := server.Open(ctx, server.Config{DataDir: t.TempDir(), Workers: 2, Executor: standin.Executor{Duration: buildTime},
		StaticTokens: []string{testToken}, QueuePoll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	api, err := arm.New(arm.Options{Service: srv.Service(), Auth: srv.Authority(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	web, err := console.New(console.Options{Service: srv.Service(), Store: srv.Store(), Auth: srv.Authority(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	qctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = srv.Run(qctx); close(done) }()
	hs := httptest.NewUnstartedServer(web.Handler(api))
	if tls {
		hs.StartTLS()
	} else {
		hs.Start()
	}
	t.Cleanup(func() { hs.Close(); cancel(); <-done; srv.Close() })
	return &site{url: hs.URL, srv: srv, http: hs}
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    testing.TB
	s    *site
	c    *http.Client
	csrf string
}

func (s *site) browser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	c := *s.http.Client() // a copy: each browser has its own cookies
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, s: s, c: &c}
}

func (b *browser) do(method, path string, form url.Values, header http.Header) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.s.url+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if m := csrfRE.FindStringSubmatch(string(data)); m != nil {
		b.csrf = m[1]
	}
	return res, string(data)
}

var csrfRE = regexp.MustCompile(`name="csrf-token" content="([0-9a-f]+)"`)

func (b *browser) get(path string) (*http.Response, string) {
	return b.do(http.MethodGet, path, nil, nil)
}

// post sends a form with the session's CSRF token.
func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf)
	return b.do(http.MethodPost, path, form, nil)
}

func (b *browser) signIn() {
	b.t.Helper()
	res, body := b.do(http.MethodPost, "/console/signin", url.Values{"token": {testToken}, "next": {"/"}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("sign in: %s\n%s", res.Status, body)
	}
	if _, body = b.get("/"); b.csrf == "" {
		b.t.Fatalf("the overview carries no CSRF token:\n%s", body)
	}
}

func TestSignedOutSeesOnlySignIn(t *testing.T) {
	s := startSite(t, false, 200*time.Millisecond)
	b := s.browser(t)
	for _, p := range []string{"/", "/console/templates", "/console/templates/new", "/console/galleries", "/console/images", "/console/catalog",
		"/console/t/sub/rg/name", "/console/t/sub/rg/name/runs/x", "/console/t/sub/rg/name/runs/x/log", "/console/nowhere"} {
		res, _ := b.get(p)
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/console/signin?next=") {
			t.Errorf("GET %s signed out: %s to %q, want 303 to the sign-in page", p, res.Status, res.Header.Get("Location"))
		}
	}
	for _, p := range []string{"/console/templates/new", "/console/t/sub/rg/name/delete", "/console/signout"} {
		if res, _ := b.do(http.MethodPost, p, url.Values{"csrf": {"x"}}, nil); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s signed out: %s, want 401", p, res.Status)
		}
	}
	if res, _ := b.do(http.MethodGet, "/", nil, http.Header{"X-Console-Fragment": {"live"}}); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("a script's fetch signed out: %s, want 401", res.Status)
	}
	res, body := b.get("/console/signin")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `id="token"`) || !strings.Contains(body, `id="client_secret"`) {
		t.Errorf("the sign-in page: %s\n%s", res.Status, body)
	}
	// The API is as it was: a bearer token, not a cookie.
	res, _ = b.get("/subscriptions/s/resourceGroups?api-version=2021-04-01")
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("the API without a token: %s, want 401", res.Status)
	}
}

func TestSignIn(t *testing.T) {
	for _, tls := range []bool{false, true} {
		s := startSite(t, tls, 200*time.Millisecond)
		p, secret, err := s.srv.Authority().Directory().Create(context.Background(), "console-user", nil)
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name   string
			form   url.Values
			status int
		}{
			{"static token", url.Values{"token": {testToken}}, http.StatusSeeOther},
			{"wrong token", url.Values{"token": {"nope"}}, http.StatusUnauthorized},
			{"principal", url.Values{"client_id": {p.ClientID}, "client_secret": {secret}}, http.StatusSeeOther},
			{"wrong secret", url.Values{"client_id": {p.ClientID}, "client_secret": {"nope"}}, http.StatusUnauthorized},
			{"nothing", url.Values{}, http.StatusUnauthorized},
		}
		for _, c := range cases {
			b := s.browser(t)
			c.form.Set("next", "/console/templates")
			res, body := b.do(http.MethodPost, "/console/signin", c.form, nil)
			if res.StatusCode != c.status {
				t.Errorf("tls %v, %s: %s, want %d\n%s", tls, c.name, res.Status, c.status, body)
				continue
			}
			var ck *http.Cookie
			for _, k := range res.Cookies() {
				if k.Name == "goldsmith_session" {
					ck = k
				}
			}
			if c.status != http.StatusSeeOther {
				if ck != nil {
					t.Errorf("tls %v, %s: a failed sign-in set a session cookie", tls, c.name)
				}
				continue
			}
			if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != tls || ck.Path != "/" {
				t.Errorf("tls %v, %s: session cookie %+v, want HttpOnly, SameSite=Strict, Secure only under TLS", tls, c.name, ck)
			}
			if loc := res.Header.Get("Location"); loc != "/console/templates" {
				t.Errorf("tls %v, %s: redirected to %q, want the page asked for", tls, c.name, loc)
			}
			for _, secret := range []string{testToken, c.form.Get("client_secret")} {
				if secret != "" && (strings.Contains(res.Header.Get("Location"), secret) || strings.Contains(ck.Value, secret)) {
					t.Errorf("tls %v, %s: the credential is in the redirect or the cookie", tls, c.name)
				}
			}
			if res, _ := b.get("/console/templates"); res.StatusCode != http.StatusOK {
				t.Errorf("tls %v, %s: templates after sign-in: %s", tls, c.name, res.Status)
			}
			if c.name == "principal" {
				// A deleted principal's session ends at its next request.
				if err := s.srv.Authority().Directory().Delete(context.Background(), p.ClientID); err != nil {
					t.Fatal(err)
				}
				if res, _ := b.get("/console/templates"); res.StatusCode != http.StatusSeeOther {
					t.Errorf("tls %v: a deleted principal's session still answers %s", tls, res.Status)
				}
			}
		}
	}
}

func TestRedirectStaysOnSite(t *testing.T) {
	s := startSite(t, false, 200*time.Millisecond)
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"} {
		b := s.browser(t)
		res, _ := b.do(http.MethodPost, "/console/signin", url.Values{"token": {testToken}, "next": {next}}, nil)
		if loc := res.Header.Get("Location"); loc != "/" {
			t.Errorf("next %q: redirected to %q, want /", next, loc)
		}
	}
}

func TestCSRF(t *testing.T) {
	s := startSite(t, false, 200*time.Millisecond)
	b := s.browser(t)
	b.signIn()
	other := s.browser(t)
	other.signIn()
	form := func(csrf string) url.Values {
		return url.Values{"csrf": {csrf}, "subscription": {"s1"}, "group": {"rg"}, "source": {"{}"}, "action": {"check"}}
	}
	cases := []struct {
		name   string
		form   url.Values
		header http.Header
		status int
	}{
		{"no token", form(""), nil, http.StatusForbidden},
		{"wrong token", form("0123"), nil, http.StatusForbidden},
		{"another session's token", form(other.csrf), nil, http.StatusForbidden},
		{"cross-site origin", form(b.csrf), http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"the session's token", form(b.csrf), nil, http.StatusUnprocessableEntity},
		{"the session's token, same origin", form(b.csrf), http.Header{"Origin": {s.url}}, http.StatusUnprocessableEntity},
		{"the script's header", url.Values{"subscription": {"s1"}, "group": {"rg"}, "source": {"{}"}}, http.Header{"X-Csrf-Token": {b.csrf}}, http.StatusUnprocessableEntity},
	}
	for _, c := range cases {
		res, body := b.do(http.MethodPost, "/console/templates/new", c.form, c.header)
		if res.StatusCode != c.status {
			t.Errorf("%s: %s, want %d\n%s", c.name, res.Status, c.status, body)
		}
	}
	// Sign-out is a change too.
	if res, _ := b.do(http.MethodPost, "/console/signout", url.Values{}, nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("sign-out without the token: %s, want 403", res.Status)
	}
	if res, _ := b.post("/console/signout", nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-out: %s", res.Status)
	}
	if res, _ := b.get("/"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out: %s, want a redirect to sign in", res.Status)
	}
}

func readExample(t testing.TB) string {
	data, err := os.ReadFile("../examples/hello-vhd.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// waitFor polls fn until it is true.
func waitFor(t testing.TB, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countTemplates(t testing.TB, s *site) int {
	n := 0
	err := s.srv.Store().View(context.Background(), func(tx *store.Tx) error {
		docs, err := tx.List(context.Background(), store.Query{Type: resource.TypeImageTemplate})
		n = len(docs)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCreateChecksFirst(t *testing.T) {
	s := startSite(t, false, 200*time.Millisecond)
	b := s.browser(t)
	b.signIn()
	src := readExample(t)
	cases := []struct {
		name, source, path string
	}{
		{"wrong customizer type", strings.Replace(src, `"type": "Shell"`, `"type": "Shel"`, 1), "properties.customize[0].type"},
		{"no distribute", strings.Replace(src, `"runOutputName": "hello-vhd"`, `"runOutputName": ""`, 1), "properties.distribute[0].runOutputName"},
		{"malformed JSON", src[:len(src)/2], ""},
		{"bad name", src, "name"},
		{"unserved region", strings.Replace(src, `"westus2"`, `"moon-1"`, 1), "location"},
	}
	for _, c := range cases {
		form := url.Values{"subscription": {"s1"}, "group": {"rg"}, "source": {c.source}, "action": {"create"}}
		if c.name == "bad name" {
			form.Set("name", "-bad name-")
		}
		res, body := b.post("/console/templates/new", form)
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %s, want 422", c.name, res.Status)
		}
		if c.path != "" && !strings.Contains(body, `<code class="path">`+c.path+`</code>`) {
			t.Errorf("%s: the page shows no problem at %s:\n%s", c.name, c.path, body)
		}
	}
	// The script's check answers JSON.
	res, body := b.do(http.MethodPost, "/console/templates/new", url.Values{"subscription": {"s1"}, "group": {"rg"}, "name": {"n"},
		"source": {strings.Replace(src, `"type": "Shell"`, `"type": "Shel"`, 1)}, "action": {"check"}},
		http.Header{"X-Csrf-Token": {b.csrf}, "Accept": {"application/json"}})
	var answer struct {
		OK       bool `json:"ok"`
		Problems []struct{ Target string }
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || res.StatusCode != http.StatusUnprocessableEntity || answer.OK ||
		len(answer.Problems) == 0 || answer.Problems[0].Target != "properties.customize[0].type" {
		t.Errorf("JSON check: %s %s", res.Status, body)
	}
	if n := countTemplates(t, s); n != 0 {
		t.Fatalf("%d templates exist after only failed checks; a template with errors must never be submitted", n)
	}
}

func TestTemplateRunAndPages(t *testing.T) {
	s := startSite(t, false, 1500*time.Millisecond)
	b := s.browser(t)
	b.signIn()
	res, body := b.post("/console/templates/new", url.Values{"subscription": {"s1"}, "group": {"rg"}, "name": {"hello"},
		"source": {readExample(t)}, "action": {"create"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %s\n%s", res.Status, regexp.MustCompile(`class="error"[^<]*`).FindString(body))
	}
	tpage := res.Header.Get("Location")
	if tpage != "/console/t/s1/rg/hello" {
		t.Fatalf("create redirected to %q", tpage)
	}
	waitFor(t, "the template to be Succeeded", func() bool {
		_, body := b.get(tpage)
		return strings.Contains(body, `id="action-run"`)
	})
	_, body = b.get(tpage)
	for _, want := range []string{`<span class="j-key">&#34;customize&#34;</span>`, "Succeeded", "It has not run yet."} {
		if !strings.Contains(body, want) {
			t.Errorf("template page lacks %q:\n%s", want, body)
		}
	}
	// Run is confirmed first: GET shows the question, POST does it.
	if res, body := b.get(tpage + "/run"); res.StatusCode != http.StatusOK || !strings.Contains(body, `id="confirm"`) {
		t.Fatalf("run confirmation: %s\n%s", res.Status, body)
	}
	res, body = b.post(tpage+"/run", nil)
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), tpage+"/runs/") {
		t.Fatalf("run: %s %q\n%s", res.Status, res.Header.Get("Location"), body)
	}
	rpage := res.Header.Get("Location")
	_, body = b.get(rpage)
	if !strings.Contains(body, `data-follow="1"`) || !strings.Contains(body, "Running") {
		t.Errorf("a running run's page does not follow its log:\n%s", body)
	}
	// The log streams while the run goes, and ends with it.
	logRes, err := b.c.Get(s.url + rpage + "/log?follow=1")
	if err != nil {
		t.Fatal(err)
	}
	streamed, _ := io.ReadAll(logRes.Body)
	logRes.Body.Close()
	if !strings.Contains(string(streamed), "==> Customizing") || !strings.Contains(string(streamed), "+ echo hello from goldsmith") {
		t.Errorf("the followed log:\n%s", streamed)
	}
	waitFor(t, "the run to succeed", func() bool {
		_, body := b.get(rpage)
		return strings.Contains(body, `id="run-state"><span class="state ok">Succeeded`)
	})
	_, body = b.get(rpage)
	for _, want := range []string{`data-phase="Queued"`, `data-phase="Building"`, `data-phase="Customizing"`, `data-phase="Distributing"`,
		`<td>1</td><td>hello</td><td>Shell</td>`, `<td>0</td>`, `hello-vhd`, "vhd", "started", "by static token 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("the ended run's page lacks %q", want)
		}
	}
	m := regexp.MustCompile(`class="download" href="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no download link on the run page:\n%s", body)
	}
	link := strings.ReplaceAll(m[1], "&amp;", "&")
	dl, err := http.Get(s.url + link) // a plain client: the link is signed, no session needed
	if err != nil {
		t.Fatal(err)
	}
	vhd, _ := io.ReadAll(dl.Body)
	dl.Body.Close()
	if dl.StatusCode != http.StatusOK || len(vhd) < 512 || string(vhd[len(vhd)-512:len(vhd)-504]) != "conectix" {
		t.Errorf("the download link: %s, %d bytes, no VHD footer", dl.Status, len(vhd))
	}
	// Other pages answer.
	for _, p := range []string{"/", "/?state=Succeeded&group=rg", "/console/templates", "/console/galleries", "/console/images", "/console/catalog"} {
		if res, body := b.get(p); res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s\n%s", p, res.Status, body)
		}
	}
	if _, body := b.get("/?state=Failed"); strings.Contains(body, rpage) {
		t.Errorf("the Failed filter lists a Succeeded run")
	}
	if _, body := b.get("/?group=rg"); !strings.Contains(body, rpage) {
		t.Errorf("the overview for group rg does not list the run")
	}
	// Delete, confirmed.
	res, _ = b.post(tpage+"/delete", nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %s", res.Status)
	}
	waitFor(t, "the template to be gone", func() bool {
		_, body := b.get("/console/templates")
		return strings.Contains(body, `id="no-templates"`)
	})
}

func TestFailedRun(t *testing.T) {
	s := startSite(t, false, 300*time.Millisecond)
	b := s.browser(t)
	b.signIn()
	src := strings.Replace(readExample(t), `"uname -a",`, `"uname -a", "exit 7",`, 1)
	res, body := b.post("/console/templates/new", url.Values{"subscription": {"s1"}, "group": {"rg"}, "name": {"fails"},
		"source": {src}, "action": {"create"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %s\n%s", res.Status, body)
	}
	tpage := res.Header.Get("Location")
	waitFor(t, "the template to be Succeeded", func() bool { _, body := b.get(tpage); return strings.Contains(body, `id="action-run"`) })
	res, _ = b.post(tpage+"/run", nil)
	rpage := res.Header.Get("Location")
	waitFor(t, "the run to fail", func() bool { _, body := b.get(rpage); return strings.Contains(body, `id="failure"`) })
	_, body = b.get(rpage)
	for _, want := range []string{`Customizer <strong>hello</strong> (Shell) ended with exit code 7`, "&#43; exit 7", `failed with exit code 7`} {
		if !strings.Contains(body, want) {
			t.Errorf("the failed run's page lacks %q:\n%s", want, body)
		}
	}
}

// api calls the ARM API with the bearer token.
func (s *site) api(t testing.TB, method, path, apiVersion string, body any) {
	t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, s.url+path+"?api-version="+apiVersion, strings.NewReader(string(data)))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := s.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		msg, _ := io.ReadAll(res.Body)
		t.Fatalf("%s %s: %s\n%s", method, path, res.Status, msg)
	}
}

func TestGalleryPages(t *testing.T) {
	s := startSite(t, false, 300*time.Millisecond)
	rg := "/subscriptions/s1/resourceGroups/imgs"
	gal := rg + "/providers/Microsoft.Compute/galleries/corp"
	def := gal + "/images/web"
	s.api(t, http.MethodPut, rg, "2021-04-01", map[string]any{"location": "westus2"})
	s.api(t, http.MethodPut, gal, "2024-03-03", map[string]any{"location": "westus2"})
	s.api(t, http.MethodPut, def, "2024-03-03", map[string]any{"location": "westus2", "properties": map[string]any{"osType": "Linux",
		"osState": "Generalized", "identifier": map[string]any{"publisher": "goldsmith", "offer": "console", "sku": "web"}}})
	b := s.browser(t)
	b.signIn()
	src := strings.Replace(readExample(t), `{"type": "VHD", "runOutputName": "hello-vhd"}`,
		`{"type": "VHD", "runOutputName": "hello-vhd"},
		 {"type": "SharedImage", "runOutputName": "sig", "galleryImageId": "`+def+`", "replicationRegions": ["westus2", "eastus"]},
		 {"type": "ManagedImage", "runOutputName": "managed", "location": "westus2", "imageId": "`+rg+`/providers/Microsoft.Compute/images/web-golden"}`, 1)
	res, body := b.post("/console/templates/new", url.Values{"subscription": {"s1"}, "group": {"imgs"}, "name": {"web"},
		"source": {src}, "action": {"create"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %s\n%s", res.Status, regexp.MustCompile(`class="(error|path)"[^<]*`).FindAllString(body, -1))
	}
	tpage := res.Header.Get("Location")
	waitFor(t, "the template to be Succeeded", func() bool { _, body := b.get(tpage); return strings.Contains(body, `id="action-run"`) })
	res, _ = b.post(tpage+"/run", nil)
	rpage := res.Header.Get("Location")
	waitFor(t, "the run to succeed", func() bool {
		_, body := b.get(rpage)
		return strings.Contains(body, `id="run-state"><span class="state ok">Succeeded`)
	})
	_, body = b.get("/console/galleries")
	if !strings.Contains(body, `href="/console/g/s1/imgs/corp/web"`) || !strings.Contains(body, "1 versions") {
		t.Errorf("the galleries page:\n%s", body)
	}
	_, body = b.get("/console/g/s1/imgs/corp/web")
	for _, want := range []string{"goldsmith:console:web", `<li>westus2: <span class="state ok">Completed</span>`, `<li>eastus: <span class="state ok">Completed</span>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the definition page lacks %q:\n%s", want, body)
		}
	}
	if _, body = b.get("/console/images"); !strings.Contains(body, "<td>web-golden</td>") {
		t.Errorf("the images page does not list web-golden:\n%s", body)
	}
	if res, _ := b.get("/console/g/s1/imgs/corp/nope"); res.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown definition: %s, want 404", res.Status)
	}
}

func TestSubmittedProblemsShown(t *testing.T) {
	s := startSite(t, false, 300*time.Millisecond)
	rg := "/subscriptions/s1/resourceGroups/rg"
	s.api(t, http.MethodPut, rg, "2021-04-01", map[string]any{"location": "westus2"})
	var body map[string]any
	if err := json.Unmarshal([]byte(strings.Replace(readExample(t), `"type": "Shell"`, `"type": "Shel"`, 1)), &body); err != nil {
		t.Fatal(err)
	}
	// Through the API, which keeps an invalid template Failed, as AIB does.
	s.api(t, http.MethodPut, rg+"/providers/Microsoft.VirtualMachineImages/imageTemplates/bad", "2022-07-01", body)
	b := s.browser(t)
	b.signIn()
	waitFor(t, "the template to fail", func() bool {
		_, page := b.get("/console/t/s1/rg/bad")
		return strings.Contains(page, `id="provisioning"><span class="state bad">Failed`)
	})
	_, page := b.get("/console/t/s1/rg/bad")
	for _, want := range []string{`<code class="path">properties.customize[0].type</code>`, "BadCustomizerType", `id="action-delete"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the failed template's page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, `id="action-run"`) {
		t.Error("a Failed template offers Run")
	}
}

func TestCreateForms(t *testing.T) {
	s := startSite(t, false, 300*time.Millisecond)
	b := s.browser(t)
	b.signIn()
	var resourceForm map[string]any
	if err := json.Unmarshal([]byte(readExample(t)), &resourceForm); err != nil {
		t.Fatal(err)
	}
	props, _ := json.Marshal(resourceForm["properties"])
	deployment := `{
	  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
	  "contentVersion": "1.0.0.0",
	  "parameters": {"imageTemplateName": {"type": "string"}, "vmSize": {"type": "string", "defaultValue": "Standard_D1_v2"}},
	  "resources": [{"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-07-01",
	    "name": "[parameters('imageTemplateName')]", "location": "[resourceGroup().location]", "identity": {"type": "None"},
	    "properties": ` + strings.Replace(string(props), `"Standard_D1_v2"`, `"[parameters('vmSize')]"`, 1) + `}]
	}`
	cases := []struct {
		name                 string
		source, params, form string
		want                 string // the template's name
	}{
		{"resource", readExample(t), "", "named", "named"},
		{"bare properties", `{"identity": {"type": "None"}, "properties": ` + string(props) + `}`, "", "bare", "bare"},
		{"deployment with parameters", deployment, `{"parameters": {"imageTemplateName": {"value": "from-params"}}}`, "", "from-params"},
	}
	for _, c := range cases {
		res, body := b.post("/console/templates/new", url.Values{"subscription": {"s1"}, "group": {"forms"}, "name": {c.form},
			"location": {"westus2"}, "source": {c.source}, "parameters": {c.params}, "action": {"create"}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/console/t/s1/forms/"+c.want {
			t.Errorf("%s: %s to %q\n%s", c.name, res.Status, res.Header.Get("Location"), regexp.MustCompile(`class="(error|path)"[^<]*`).FindAllString(body, -1))
		}
	}
	// A deployment template without its parameter cannot name the template.
	res, body := b.post("/console/templates/new", url.Values{"subscription": {"s1"}, "group": {"forms"}, "source": {deployment}, "action": {"check"}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "imageTemplateName") {
		t.Errorf("a deployment without its parameter: %s\n%s", res.Status, regexp.MustCompile(`class="problems".*`).FindString(body))
	}
}

func TestSubscriptionScope(t *testing.T) {
	s := startSite(t, false, 200*time.Millisecond)
	admin := s.browser(t)
	admin.signIn()
	res, body := admin.post("/console/templates/new", url.Values{"subscription": {"s1"}, "group": {"rg"}, "name": {"mine"},
		"source": {readExample(t)}, "action": {"create"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %s\n%s", res.Status, body)
	}
	p, secret, err := s.srv.Authority().Directory().Create(context.Background(), "elsewhere", []string{"s2"})
	if err != nil {
		t.Fatal(err)
	}
	b := s.browser(t)
	if res, _ := b.do(http.MethodPost, "/console/signin", url.Values{"client_id": {p.ClientID}, "client_secret": {secret}}, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("principal sign-in: %s", res.Status)
	}
	if _, body := b.get("/console/templates"); strings.Contains(body, "mine") {
		t.Error("a principal of subscription s2 sees a template of s1")
	}
	if res, _ := b.get("/console/t/s1/rg/mine"); res.StatusCode != http.StatusForbidden {
		t.Errorf("a principal of s2 on a template of s1: %s, want 403", res.Status)
	}
	_, _ = b.get("/")
	if res, _ := b.post("/console/t/s1/rg/mine/delete", nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("a principal of s2 deleting a template of s1: %s, want 403", res.Status)
	}
	if res, _ := b.post("/console/templates/new", url.Values{"subscription": {"s1"}, "group": {"rg"}, "name": {"theirs"},
		"source": {readExample(t)}, "action": {"create"}}); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a principal of s2 creating in s1: %s, want 422", res.Status)
	}
	if countTemplates(t, s) != 1 {
		t.Error("the template count changed")
	}
}

func TestCancelRun(t *testing.T) {
	s := startSite(t, false, time.Minute)
	b := s.browser(t)
	b.signIn()
	res, body := b.post("/console/templates/new", url.Values{"subscription": {"s1"}, "group": {"rg"}, "name": {"slow"},
		"source": {readExample(t)}, "action": {"create"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %s\n%s", res.Status, body)
	}
	tpage := res.Header.Get("Location")
	waitFor(t, "the template to be Succeeded", func() bool { _, body := b.get(tpage); return strings.Contains(body, `id="action-run"`) })
	res, _ = b.post(tpage+"/run", nil)
	rpage := res.Header.Get("Location")
	waitFor(t, "the build to begin", func() bool { _, body := b.get(rpage); return strings.Contains(body, `data-phase="Building"`) })
	// Run again while it runs: refused, said on the confirmation page.
	if res, body := b.post(tpage+"/run", nil); res.StatusCode != http.StatusConflict || !strings.Contains(body, "already running") {
		t.Errorf("a second run: %s\n%s", res.Status, body)
	}
	if _, body := b.get(tpage); !strings.Contains(body, `id="action-cancel"`) || strings.Contains(body, `id="action-run"`) {
		t.Errorf("a running template's page does not offer Cancel (and only Cancel):\n%s", body)
	}
	if res, _ := b.post(tpage+"/cancel", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel: %s", res.Status)
	}
	waitFor(t, "the run to be canceled", func() bool {
		_, body := b.get(rpage)
		return strings.Contains(body, `id="run-state"><span class="state plain">Canceled`)
	})
}

// TestUpload: the file input, without the script (a multipart form).
func TestUpload(t *testing.T) {
	s := startSite(t, false, 300*time.Millisecond)
	b := s.browser(t)
	b.signIn()
	var buf strings.Builder
	mw := multipart.NewWriter(&buf)
	for k, v := range map[string]string{"csrf": b.csrf, "subscription": "s1", "group": "up", "name": "uploaded", "source": "", "action": "create"} {
		_ = mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", "hello-vhd.json")
	_, _ = io.WriteString(fw, readExample(t))
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.url+"/console/templates/new", strings.NewReader(buf.String()))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/console/t/s1/up/uploaded" {
		t.Fatalf("upload: %s to %q", res.Status, res.Header.Get("Location"))
	}
}

// TestSessionOnEveryReplica signs in through one console and uses the
// session through another on the same database, as API replicas behind a
// load balancer are used: the session is the store's, not a process's.
// Signing out on the second ends it on the first.
func TestSessionOnEveryReplica(t *testing.T) {
	s := startSite(t, false, 200*time.Millisecond)
	web, err := console.New(console.Options{Service: s.srv.Service(), Store: s.srv.Store(), Auth: s.srv.Authority(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	api, err := arm.New(arm.Options{Service: s.srv.Service(), Auth: s.srv.Authority(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(web.Handler(api))
	t.Cleanup(hs.Close)
	other := &site{url: hs.URL, srv: s.srv, http: hs}

	b := s.browser(t)
	b.signIn()
	// The same cookies, sent to the other replica (another host:port, so
	// copied by hand).
	b2 := other.browser(t)
	u, _ := url.Parse(s.url)
	u2, _ := url.Parse(other.url)
	b2.c.Jar.SetCookies(u2, b.c.Jar.Cookies(u))
	if res, body := b2.get("/"); res.StatusCode != http.StatusOK || b2.csrf != b.csrf {
		t.Fatalf("the session on the other replica: %s (csrf %q, want %q)\n%s", res.Status, b2.csrf, b.csrf, body)
	}
	if res, _ := b2.post("/console/signout", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out on the other replica: %s", res.Status)
	}
	if res, _ := b.get("/"); res.StatusCode != http.StatusSeeOther || !strings.Contains(res.Header.Get("Location"), "signin") {
		t.Errorf("after signing out on the other replica, the first answers %s %s; want a redirect to sign in", res.Status, res.Header.Get("Location"))
	}
}
