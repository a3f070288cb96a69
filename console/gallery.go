package console

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/goldsmith-dev/goldsmith/catalog"
	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/store"
)

// listAll reads every resource of a type under scope ("" for all) that the
// caller may see, in id order.
func (c *Console) listAll(rq *request, typ, scope string) ([]resource.Resource, error) {
	var out []resource.Resource
	err := c.st.View(rq.ctx, func(tx *store.Tx) error {
		docs, err := tx.List(rq.ctx, store.Query{Type: typ, Scope: scope})
		if err != nil {
			return err
		}
		for _, d := range docs {
			var r resource.Resource
			if json.Unmarshal(d.Body, &r) != nil || !rq.caller.CanUse(whereOf(r.ID).Sub) {
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

func galleryLink(id string, def string) string {
	w := whereOf(id)
	l := Prefix + "g/" + url.PathEscape(w.Sub) + "/" + url.PathEscape(w.Group) + "/" + url.PathEscape(w.Name)
	if def != "" {
		l += "/" + url.PathEscape(def)
	}
	return l
}

type galleryRow struct {
	resource.Resource
	Where       where
	Link        string
	Definitions []definitionRow
}

type definitionRow struct {
	resource.Resource
	Link     string
	Versions int
	OSType   string
	Identity string
}

type galleriesData struct{ Galleries []galleryRow }

// galleries lists the galleries with their image definitions.
func (c *Console) galleries(rq *request) {
	gals, err := c.listAll(rq, resource.TypeGallery, "")
	if err != nil {
		c.serverError(rq, "list galleries", err)
		return
	}
	defs, err := c.listAll(rq, resource.TypeGalleryImage, "")
	if err != nil {
		c.serverError(rq, "list image definitions", err)
		return
	}
	vers, err := c.listAll(rq, resource.TypeGalleryImageVersion, "")
	if err != nil {
		c.serverError(rq, "list image versions", err)
		return
	}
	count := map[string]int{}
	for _, v := range vers {
		count[strings.ToLower(parentID(v.ID))]++
	}
	var d galleriesData
	for _, g := range gals {
		row := galleryRow{Resource: g, Where: whereOf(g.ID), Link: galleryLink(g.ID, "")}
		for _, def := range defs {
			if strings.EqualFold(parentID(def.ID), g.ID) {
				row.Definitions = append(row.Definitions, c.definitionRow(def, count[strings.ToLower(def.ID)]))
			}
		}
		d.Galleries = append(d.Galleries, row)
	}
	c.show(rq, "galleries", "galleries", "Galleries", false, d)
}

func (c *Console) definitionRow(def resource.Resource, versions int) definitionRow {
	r := definitionRow{Resource: def, Link: galleryLink(parentID(def.ID), def.Name), Versions: versions}
	r.OSType, _ = def.Properties["osType"].(string)
	if id, ok := def.Properties["identifier"].(map[string]any); ok {
		r.Identity = fmt.Sprintf("%v:%v:%v", id["publisher"], id["offer"], id["sku"])
	}
	return r
}

// parentID cuts the last type/name pair off a resource id.
func parentID(id string) string {
	id = strings.TrimSuffix(id, "/")
	for range 2 {
		if i := strings.LastIndex(id, "/"); i >= 0 {
			id = id[:i]
		}
	}
	return id
}

type versionRow struct {
	resource.Resource
	State       string
	Aggregated  string
	Regions     []regionStatus
	Excluded    bool
	Format      string
	Size        int64
	SHA256      string
	DownloadAPI string
}

type regionStatus struct {
	Region, State, Details string
	Progress               float64
}

type galleryData struct {
	Gallery     galleryRow
	Definition  *definitionRow
	Versions    []versionRow
	Definitions []definitionRow
}

// gallery shows a gallery's definitions, or (with a definition name) the
// definition's versions with each region's replication status.
func (c *Console) gallery(rq *request, segs []string) {
	if !rq.caller.CanUse(segs[0]) {
		c.forbidden(rq, segs[0])
		return
	}
	gid := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", segs[0], segs[1], resource.TypeGallery, segs[2])
	g, err := c.svc.GetResource(rq.ctx, gid)
	if err != nil {
		if resource.IsNotFound(err) {
			c.notFound(rq, "There is no gallery "+gid+".")
		} else {
			c.serverError(rq, "read gallery", err)
		}
		return
	}
	d := galleryData{Gallery: galleryRow{Resource: g, Where: whereOf(g.ID), Link: galleryLink(g.ID, "")}}
	defs, err := c.listAll(rq, resource.TypeGalleryImage, g.ID)
	if err != nil {
		c.serverError(rq, "list image definitions", err)
		return
	}
	vers, err := c.listAll(rq, resource.TypeGalleryImageVersion, g.ID)
	if err != nil {
		c.serverError(rq, "list image versions", err)
		return
	}
	live := false
	for _, def := range defs {
		n := 0
		for _, v := range vers {
			if strings.EqualFold(parentID(v.ID), def.ID) {
				n++
			}
		}
		row := c.definitionRow(def, n)
		d.Definitions = append(d.Definitions, row)
		if len(segs) == 4 && strings.EqualFold(def.Name, segs[3]) {
			d.Definition = &row
		}
	}
	if len(segs) == 4 {
		if d.Definition == nil {
			c.notFound(rq, "The gallery "+g.Name+" has no image definition "+segs[3]+".")
			return
		}
		for _, v := range vers {
			if strings.EqualFold(parentID(v.ID), d.Definition.ID) {
				row := versionRow{Resource: v}
				row.State, _ = v.Properties["provisioningState"].(string)
				if pp, ok := v.Properties["publishingProfile"].(map[string]any); ok {
					row.Excluded, _ = pp["excludeFromLatest"].(bool)
				}
				if rs, ok := v.Properties["replicationStatus"].(map[string]any); ok {
					row.Aggregated, _ = rs["aggregatedState"].(string)
					summary, _ := rs["summary"].([]any)
					for _, e := range summary {
						m, _ := e.(map[string]any)
						st := regionStatus{}
						st.Region, _ = m["region"].(string)
						st.State, _ = m["state"].(string)
						st.Details, _ = m["details"].(string)
						st.Progress, _ = m["progress"].(float64)
						row.Regions = append(row.Regions, st)
					}
				}
				if a := v.Artifact; a != nil {
					row.Format, row.Size, row.SHA256 = a.Format, a.Size, a.SHA256
				}
				live = live || row.State == resource.StateCreating || row.Aggregated == "InProgress"
				d.Versions = append(d.Versions, row)
			}
		}
		sort.Slice(d.Versions, func(i, j int) bool { return d.Versions[i].Name > d.Versions[j].Name })
		c.show(rq, "definition", "galleries", d.Definition.Name+" in "+g.Name, live, d)
		return
	}
	c.show(rq, "gallery", "galleries", g.Name, false, d)
}

type imageRow struct {
	resource.Resource
	Where  where
	State  string
	Source string
}

type imagesData struct{ Images []imageRow }

// images lists the managed images.
func (c *Console) images(rq *request) {
	imgs, err := c.listAll(rq, resource.TypeImage, "")
	if err != nil {
		c.serverError(rq, "list images", err)
		return
	}
	var d imagesData
	for _, im := range imgs {
		row := imageRow{Resource: im, Where: whereOf(im.ID)}
		row.State, _ = im.Properties["provisioningState"].(string)
		if sv, ok := im.Properties["sourceVirtualMachine"].(map[string]any); ok {
			row.Source, _ = sv["id"].(string)
		}
		d.Images = append(d.Images, row)
	}
	c.show(rq, "images", "images", "Managed images", false, d)
}

type catalogData struct {
	Entries  []catalog.Entry
	Aliases  []catalog.AliasEntry
	Builtins []catalog.Builtin
	Error    string
}

// catalog lists the platform image catalog: the images built or imported,
// the aliases and the built-in images made on first use.
func (c *Console) catalog(rq *request) {
	d := catalogData{Builtins: catalog.DefaultBuiltins()}
	if c.cat != nil {
		var err error
		if d.Entries, err = c.cat.List(); err != nil {
			d.Error = err.Error()
		}
		if d.Aliases, err = c.cat.Aliases(); err != nil {
			d.Error = err.Error()
		}
	}
	c.show(rq, "catalog", "catalog", "Platform image catalog", false, d)
}
