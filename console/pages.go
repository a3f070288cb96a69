package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
)

// where is a resource's place: subscription, group and name, and the
// console path of a template.
type where struct {
	Sub, Group, Name string
}

func whereOf(id string) where {
	p, err := resourceid.Parse(id)
	if err != nil {
		return where{Name: id}
	}
	return where{Sub: p.Subscription, Group: p.ResourceGroup, Name: p.Name()}
}

// templateLink is the console path of the template with id.
func templateLink(id string) string {
	w := whereOf(id)
	return Prefix + "t/" + url.PathEscape(w.Sub) + "/" + url.PathEscape(w.Group) + "/" + url.PathEscape(w.Name)
}

func runLink(r resource.Run) string {
	return templateLink(r.TemplateID) + "/runs/" + url.PathEscape(r.RunID)
}

// runRow is a run in a list.
type runRow struct {
	resource.Run
	Template     where
	Link         string
	TemplateLink string
	Duration     time.Duration
}

func (c *Console) runRow(r resource.Run) runRow {
	end := c.now()
	if r.EndTime != nil {
		end = *r.EndTime
	}
	return runRow{Run: r, Template: whereOf(r.TemplateID), Link: runLink(r), TemplateLink: templateLink(r.TemplateID),
		Duration: end.Sub(r.StartTime)}
}

type overviewData struct {
	Runs          []runRow
	Total, Active int
	Groups        []string
	States        []string
	Group, State  string
}

// recentRuns is how many runs the overview lists.
const recentRuns = 100

var runStates = []string{resource.RunRunning, resource.RunCanceling, resource.RunSucceeded, resource.RunPartiallySucceeded,
	resource.RunFailed, resource.RunCanceled}

// overview lists recent runs across templates, newest first.
func (c *Console) overview(rq *request) {
	q := rq.r.URL.Query()
	d := overviewData{Group: q.Get("group"), State: q.Get("state"), States: runStates}
	var runs []resource.Run
	groups := map[string]bool{}
	err := c.st.View(rq.ctx, func(tx *store.Tx) error {
		all, err := c.svc.Runs(rq.ctx, tx)
		if err != nil {
			return err
		}
		for _, r := range all {
			w := whereOf(r.TemplateID)
			if !rq.caller.CanUse(w.Sub) {
				continue
			}
			groups[w.Group] = true
			if r.Active() {
				d.Active++
			}
			if (d.Group == "" || strings.EqualFold(w.Group, d.Group)) && (d.State == "" || r.State == d.State) {
				runs = append(runs, r)
			}
		}
		return nil
	})
	if err != nil {
		c.serverError(rq, "list runs", err)
		return
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].StartTime.After(runs[j].StartTime) })
	d.Total = len(runs)
	if len(runs) > recentRuns {
		runs = runs[:recentRuns]
	}
	for _, r := range runs {
		d.Runs = append(d.Runs, c.runRow(r))
	}
	for g := range groups {
		d.Groups = append(d.Groups, g)
	}
	slices.Sort(d.Groups)
	c.show(rq, "overview", "overview", "Recent runs", d.Active > 0, d)
}

type templateRow struct {
	resource.ImageTemplate
	Where where
	Link  string
}

type templatesData struct{ Templates []templateRow }

// templates lists the image templates.
func (c *Console) templates(rq *request) {
	var d templatesData
	live := false
	err := c.st.View(rq.ctx, func(tx *store.Tx) error {
		docs, err := tx.List(rq.ctx, store.Query{Type: resource.TypeImageTemplate})
		if err != nil {
			return err
		}
		for _, doc := range docs {
			var t resource.ImageTemplate
			if json.Unmarshal(doc.Body, &t) != nil {
				continue
			}
			w := whereOf(t.ID)
			if !rq.caller.CanUse(w.Sub) {
				continue
			}
			live = live || busy(t)
			d.Templates = append(d.Templates, templateRow{ImageTemplate: t, Where: w, Link: templateLink(t.ID)})
		}
		return nil
	})
	if err != nil {
		c.serverError(rq, "list templates", err)
		return
	}
	c.show(rq, "templates", "templates", "Image templates", live, d)
}

// busy tells whether a template is changing: being created or deleted, or running.
func busy(t resource.ImageTemplate) bool {
	return t.ProvisioningState == resource.StateCreating || t.ProvisioningState == resource.StateDeleting || t.ActiveRun != ""
}

type templateData struct {
	T        resource.ImageTemplate
	Where    where
	Link     string
	Source   template.HTML
	Runs     []runRow
	CanRun   bool
	CanStop  bool
	Outputs  []resource.Resource
	APILink  string
	Confirm  string // the action to confirm, on the confirmation page
	Error    string
	Verb     string
	Question string
}

func (c *Console) loadTemplate(rq *request, id string) (templateData, bool) {
	t, err := c.svc.GetTemplate(rq.ctx, id)
	if err != nil {
		if resource.IsNotFound(err) {
			c.notFound(rq, "There is no image template "+id+" (it may have been deleted).")
		} else {
			c.serverError(rq, "read template", err)
		}
		return templateData{}, false
	}
	d := templateData{T: t, Where: whereOf(t.ID), Link: templateLink(t.ID), APILink: t.ID}
	runs, err := c.svc.ListRuns(rq.ctx, t.ID)
	if err != nil {
		c.serverError(rq, "list runs", err)
		return d, false
	}
	for i := len(runs) - 1; i >= 0; i-- {
		d.Runs = append(d.Runs, c.runRow(runs[i]))
	}
	d.CanRun = t.ProvisioningState == resource.StateSucceeded && t.ActiveRun == ""
	d.CanStop = t.ActiveRun != ""
	var src bytes.Buffer
	if json.Indent(&src, t.Submitted, "", "  ") == nil {
		d.Source = highlightJSON(src.String())
	}
	return d, true
}

// templateDetail shows a template: state, problems, highlighted source,
// actions and runs.
func (c *Console) templateDetail(rq *request, id string) {
	if rq.r.Method != http.MethodGet && rq.r.Method != http.MethodHead {
		c.methodNotAllowed(rq)
		return
	}
	d, ok := c.loadTemplate(rq, id)
	if !ok {
		return
	}
	c.show(rq, "template", "templates", d.T.Name, busy(d.T), d)
}

var actionWords = map[string][2]string{
	"run":    {"Run", "Start a run of this image template? It builds the image and distributes it to every target."},
	"cancel": {"Cancel", "Cancel the run in progress? The build stops and the run ends Canceled."},
	"delete": {"Delete", "Delete this image template? Its runs, logs, runOutputs and staging resource group go with it; the images it distributed stay."},
}

// templateAction confirms (GET) and does (POST) Run, Cancel and Delete.
func (c *Console) templateAction(rq *request, id, action string) {
	words := actionWords[action]
	switch rq.r.Method {
	case http.MethodGet, http.MethodHead:
		d, ok := c.loadTemplate(rq, id)
		if !ok {
			return
		}
		d.Confirm, d.Verb, d.Question = action, words[0], words[1]
		c.show(rq, "confirm", "templates", words[0]+" "+d.T.Name+"?", false, d)
		return
	case http.MethodPost:
	default:
		c.methodNotAllowed(rq)
		return
	}
	var err error
	switch action {
	case "run":
		if _, err = c.svc.StartRun(rq.ctx, id); err == nil {
			r, gerr := c.svc.GetRun(rq.ctx, id, "latest")
			if gerr == nil {
				http.Redirect(rq.w, rq.r, runLink(r), http.StatusSeeOther)
				return
			}
			err = gerr
		}
	case "cancel":
		_, err = c.svc.CancelRun(rq.ctx, id)
	case "delete":
		if _, err = c.svc.DeleteTemplate(rq.ctx, id); err == nil {
			http.Redirect(rq.w, rq.r, Prefix+"templates", http.StatusSeeOther)
			return
		}
	}
	if err == nil {
		http.Redirect(rq.w, rq.r, templateLink(id), http.StatusSeeOther)
		return
	}
	d, ok := c.loadTemplate(rq, id)
	if !ok {
		return
	}
	e := resource.AsError(err)
	d.Confirm, d.Verb, d.Question, d.Error = action, words[0], words[1], e.Message
	status := http.StatusConflict
	var re *resource.Error
	if errors.As(err, &re) && re.Kind == resource.KindInternal || !errors.As(err, &re) {
		status = http.StatusInternalServerError
		c.log.Error("console: "+action, "template", id, "err", err)
	}
	c.render(rq.w, status, "confirm", page{Title: words[0] + " " + d.T.Name + "?", Nav: "templates", CSRF: rq.session.CSRF, Who: rq.caller.Name, Data: d})
}
