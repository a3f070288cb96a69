package resource

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

// ListRunOutputs lists a template's runOutputs (those of its latest run).
func (s *Service) ListRunOutputs(ctx context.Context, templateID string, p Page) ([]Resource, string, error) {
	return s.listNested(ctx, templateID, TypeRunOutput, p)
}

// GetRunOutput reads one runOutput.
func (s *Service) GetRunOutput(ctx context.Context, templateID, name string) (Resource, error) {
	return s.getNested(ctx, templateID, "runOutputs", name)
}

// RunOutputs reads a template's runOutputs in tx.
func (s *Service) RunOutputs(ctx context.Context, tx *store.Tx, templateID string) ([]Resource, error) {
	outs, _, err := list[Resource](ctx, tx, TypeRunOutput, templateID, Page{})
	return outs, err
}

// ListTriggers lists a template's triggers.
func (s *Service) ListTriggers(ctx context.Context, templateID string, p Page) ([]Resource, string, error) {
	return s.listNested(ctx, templateID, TypeTrigger, p)
}

// GetTrigger reads one trigger.
func (s *Service) GetTrigger(ctx context.Context, templateID, name string) (Resource, error) {
	return s.getNested(ctx, templateID, "triggers", name)
}

func (s *Service) listNested(ctx context.Context, templateID, typ string, p Page) ([]Resource, string, error) {
	var out []Resource
	var next string
	err := s.st.View(ctx, func(tx *store.Tx) error {
		var t ImageTemplate
		if err := getDoc(ctx, tx, templateID, &t); err != nil {
			return err
		}
		var err error
		out, next, err = list[Resource](ctx, tx, typ, t.ID, p)
		return err
	})
	return out, next, err
}

func (s *Service) getNested(ctx context.Context, templateID, segment, name string) (Resource, error) {
	var r Resource
	err := s.st.View(ctx, func(tx *store.Tx) error {
		var t ImageTemplate
		if err := getDoc(ctx, tx, templateID, &t); err != nil {
			return err
		}
		if _, err := tx.GetJSON(ctx, t.ID+"/"+segment+"/"+name, &r); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return newErr(KindNotFound, "ResourceNotFound", "The Resource '%s/%s/%s' under resource group '%s' was not found.",
					TypeImageTemplate, t.Name+"/"+segment, name, resourceGroupOf(t.ID))
			}
			return err
		}
		return nil
	})
	return r, err
}

func resourceGroupOf(id string) string {
	pid, _ := resourceid.Parse(id)
	return pid.ResourceGroup
}

// PutTrigger creates or updates a trigger (kind SourceImage): when a new
// version of the template's source gallery image definition is published
// by goldsmith, the template runs. The source must be a SharedImageVersion
// ending in /versions/latest (or a PlatformImage at version latest).
func (s *Service) PutTrigger(ctx context.Context, templateID, name string, props map[string]any, apiVersion string) (Resource, bool, error) {
	if err := CheckTemplateName(name, apiVersion); err != nil {
		return Resource{}, false, err
	}
	kind, _ := lookup(props, "kind").(string)
	if !strings.EqualFold(kind, "SourceImage") {
		return Resource{}, false, badRequest("InvalidParameter", "properties.kind must be SourceImage, not %q.", kind)
	}
	var r Resource
	created := false
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var t ImageTemplate
		if err := getDoc(ctx, tx, templateID, &t); err != nil {
			return err
		}
		if t.Template != nil {
			src := t.Template.Properties.Source
			latest := (src.Type == template.SourceSharedImageVersion && strings.HasSuffix(strings.ToLower(src.ImageVersionID), "/versions/latest")) ||
				(src.Type == template.SourcePlatformImage && strings.EqualFold(src.Version, "latest"))
			if !latest {
				return badRequest("InvalidParameter",
					"A SourceImage trigger needs a source that follows the latest image: a SharedImageVersion whose imageVersionId ends in /versions/latest, or a PlatformImage at version latest.")
			}
		}
		id := t.ID + "/triggers/" + name
		_, err := tx.GetJSON(ctx, id, &r)
		switch {
		case errors.Is(err, store.ErrNotFound):
			created = true
			r = Resource{ID: id, Name: name, Type: TypeTrigger, SystemData: newSystemData(tx.Now())}
		case err != nil:
			return err
		default:
			r.SystemData.touch(tx.Now())
		}
		r.Properties = map[string]any{"kind": "SourceImage", "provisioningState": StateSucceeded,
			"status": map[string]any{"code": "Healthy", "message": "", "time": tx.Now().UTC().Format(time.RFC3339)}}
		return tx.PutJSON(ctx, r.ID, TypeTrigger, r)
	})
	return r, created, err
}

// DeleteTrigger deletes a trigger; deleted is false when it did not exist.
func (s *Service) DeleteTrigger(ctx context.Context, templateID, name string) (Operation, bool, error) {
	var op Operation
	deleted := false
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var t ImageTemplate
		if err := getDoc(ctx, tx, templateID, &t); err != nil {
			return err
		}
		if err := tx.Delete(ctx, t.ID+"/triggers/"+name); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		deleted = true
		pid, err := parseID(t.ID)
		if err != nil {
			return err
		}
		op, err = newOperation(ctx, tx, pid.Subscription, "Microsoft.VirtualMachineImages", t.Location, t.ID+"/triggers/"+name, "delete")
		if err != nil {
			return err
		}
		return endOperation(ctx, tx, op.ID, OpSucceeded, nil)
	})
	if deleted {
		op.Status = OpSucceeded
	}
	return op, deleted, err
}

// fireTriggers starts the runs of templates with a SourceImage trigger
// whose source is the "latest" version of a definition that just got a new
// version from outputs.
func (s *Service) fireTriggers(ctx context.Context, tx *store.Tx, from ImageTemplate, outputs []RunOutput) {
	var defs []string
	for _, o := range outputs {
		if id := o.Published.ArtifactID; o.Succeeded && o.Type == template.DistributeSharedImage && id != "" {
			defs = append(defs, strings.ToLower(id[:strings.LastIndex(strings.ToLower(id), "/versions/")]))
		}
	}
	if len(defs) == 0 {
		return
	}
	triggers, _, err := list[Resource](ctx, tx, TypeTrigger, "", Page{})
	if err != nil {
		s.log.Warn("list triggers", "err", err)
		return
	}
	for _, trg := range triggers {
		tid, err := resourceid.Parse(trg.ID)
		if err != nil {
			continue
		}
		tmplID := templateOf(tid)
		if strings.EqualFold(tmplID, from.ID) {
			continue // a template never triggers itself
		}
		var t ImageTemplate
		if _, err := tx.GetJSON(ctx, tmplID, &t); err != nil || t.Template == nil {
			continue
		}
		src := strings.ToLower(t.Template.Properties.Source.ImageVersionID)
		if t.Template.Properties.Source.Type != template.SourceSharedImageVersion || !strings.HasSuffix(src, "/versions/latest") {
			continue
		}
		if !slices.Contains(defs, strings.TrimSuffix(src, "/versions/latest")) {
			continue
		}
		if _, err := s.startRunTx(ctx, tx, &t, "trigger "+trg.ID); err != nil {
			s.log.Info("trigger did not start a run", "trigger", trg.ID, "reason", err)
			continue
		}
		if err := tx.PutJSON(ctx, t.ID, TypeImageTemplate, t); err != nil {
			s.log.Warn("trigger", "trigger", trg.ID, "err", err)
		}
		trg.Properties["status"] = map[string]any{"code": "Healthy", "message": "started a run for new source image version", "time": tx.Now().UTC().Format(time.RFC3339)}
		_ = tx.PutJSON(ctx, trg.ID, TypeTrigger, trg)
	}
}
