package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// page is what every page template gets.
type page struct {
	Title string
	Nav   string // the navigation entry to mark current
	CSRF  string
	Who   string
	// Live, when set, makes the script refresh the page's "live" block
	// (fetched with X-Console-Fragment) every couple of seconds.
	Live bool
	Data any
}

type errorData struct{ Message string }

var funcs = template.FuncMap{
	"duration": fmtDuration,
	"seconds":  func(s float64) string { return fmtDuration(time.Duration(s * float64(time.Second))) },
	"time":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"bytes":    fmtBytes,
	"lower":    strings.ToLower,
	"inc":      func(i int) int { return i + 1 },
	"stateClass": func(s string) string {
		switch s {
		case "Succeeded", "Completed":
			return "ok"
		case "Failed", "PartiallySucceeded":
			return "bad"
		case "Running", "Canceling", "Creating", "Deleting", "InProgress", "Queued", "Replicating":
			return "busy"
		}
		return "plain"
	},
	"pct": func(part, whole float64) string {
		if whole <= 0 {
			return "0"
		}
		return fmt.Sprintf("%.1f", 100*part/whole)
	},
}

// parsePages parses every page with the layout: one template set per page.
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout").Funcs(funcs).ParseFS(webFS, "web/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: parse layout: %w", err)
	}
	files, err := fs.Glob(webFS, "web/pages/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		t, err := template.Must(layout.Clone()).ParseFS(webFS, f)
		if err != nil {
			return nil, fmt.Errorf("console: parse %s: %w", f, err)
		}
		pages[strings.TrimSuffix(path.Base(f), ".html")] = t
	}
	return pages, nil
}

// render answers a page; a request with X-Console-Fragment gets only the
// page's "live" block.
func (c *Console) render(w http.ResponseWriter, status int, name string, p page) {
	c.renderBlock(w, status, name, "layout", p)
}

func (c *Console) renderBlock(w http.ResponseWriter, status int, name, block string, p page) {
	t := c.pages[name]
	if t == nil {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, block, p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if p.Live {
		w.Header().Set("X-Console-Live", "1")
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// show renders a page for an authenticated request.
func (c *Console) show(rq *request, name, nav, title string, live bool, data any) {
	p := page{Title: title, Nav: nav, CSRF: rq.session.CSRF, Who: rq.caller.Name, Live: live, Data: data}
	if rq.r.Header.Get("X-Console-Fragment") != "" {
		c.renderBlock(rq.w, http.StatusOK, name, "live", p)
		return
	}
	c.render(rq.w, http.StatusOK, name, p)
}

func (c *Console) fail(rq *request, status int, title, msg string) {
	c.render(rq.w, status, "error", page{Title: title, CSRF: rq.session.CSRF, Who: rq.caller.Name, Data: errorData{Message: msg}})
}

func (c *Console) notFound(rq *request, msg string) {
	c.fail(rq, http.StatusNotFound, "Not found", msg)
}

func (c *Console) methodNotAllowed(rq *request) {
	c.fail(rq, http.StatusMethodNotAllowed, "Method not allowed", "This page does not take "+rq.r.Method+" requests.")
}

func (c *Console) forbidden(rq *request, sub string) {
	c.fail(rq, http.StatusForbidden, "Forbidden", rq.caller.Name+" may not use subscription "+sub+".")
}

// serverError logs err and answers a page saying what failed.
func (c *Console) serverError(rq *request, what string, err error) {
	c.log.Error("console: "+what, "path", rq.r.URL.Path, "err", err)
	c.fail(rq, http.StatusInternalServerError, "Error", what+": "+err.Error())
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
