package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

// CheckTemplateName checks an image template (or runOutput, trigger) name
// from a request URL by the validator's rule (template.NameProblem).
func CheckTemplateName(name, apiVersion string) error {
	v, _ := template.LookupAPIVersion(apiVersion)
	if msg := template.NameProblem(name, v); msg != "" {
		return badRequest(template.CodeInvalidParameter, "The name '%s' is invalid: it %s.", name, msg)
	}
	return nil
}

// CreateTemplate accepts an image template PUT: the resource is stored at
// once in provisioningState Creating, and a submission job validates it and
// fills its staging group; the returned operation reports the outcome. A
// template that fails validation or download is kept in state Failed with a
// provisioningError, as AIB keeps it, to be read and deleted.
func (s *Service) CreateTemplate(ctx context.Context, id resourceid.ID, body map[string]any, apiVersion string) (ImageTemplate, Operation, error) {
	var t ImageTemplate
	var op Operation
	loc, _ := lookup(body, "location").(string)
	loc = NormalizeLocation(loc)
	if err := CheckTemplateName(id.Name(), apiVersion); err != nil || loc == "" {
		// ARM refuses these before the resource exists; the answer carries
		// everything the validator finds, as `template validate` would.
		_, problems := s.validate(id, body, apiVersion)
		if len(problems) == 0 { // the validator always finds these two
			return t, op, badRequest(template.CodeLocationRequired, "The location property is required for this definition.")
		}
		pe := submissionError(problems)
		e := badRequest(pe.Code, "%s", pe.Message)
		for _, pr := range problems {
			e.Details = append(e.Details, Error{Code: pr.Code, Target: pr.Target, Message: pr.Message})
		}
		return t, op, e
	}
	if !s.regions.Has(loc) {
		return t, op, badRequest("LocationNotAvailableForResourceType",
			"The provided location '%s' is not available for resource type '%s'. List of available regions for the resource type is '%s'. (goldsmith serves the regions in its configuration.)",
			loc, TypeImageTemplate, strings.Join(s.regions.Names(), ","))
	}
	doc := make(map[string]any, len(body))
	for k, v := range body {
		switch strings.ToLower(k) {
		case "apiversion", "name", "id", "type":
		default:
			doc[k] = v
		}
	}
	submitted, err := json.Marshal(doc)
	if err != nil {
		return t, op, fmt.Errorf("encode template: %w", err)
	}
	parsed, problems := s.validate(id, body, apiVersion)
	if parsed != nil {
		parsed.Location = loc
	}
	tags, _ := lookup(body, "tags").(map[string]any)
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		if _, err := requireGroup(ctx, tx, id); err != nil {
			return err
		}
		var existing ImageTemplate
		if _, err := tx.GetJSON(ctx, id.String(), &existing); err == nil {
			return conflict("Conflict",
				"The image template '%s' already exists (provisioningState %s). Update/Upgrade of image templates is not supported: delete it first or submit it under another name.",
				existing.Name, existing.ProvisioningState)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		t = ImageTemplate{ID: id.String(), Name: id.Name(), Location: loc, Tags: stringMap(tags), APIVersion: apiVersion,
			Template: parsed, Submitted: submitted, Problems: problems, ProvisioningState: StateCreating,
			SystemData: newSystemData(tx.Now())}
		op, err = newOperation(ctx, tx, id.Subscription, "Microsoft.VirtualMachineImages", loc, t.ID, "create")
		if err != nil {
			return err
		}
		if err := tx.CreateJSON(ctx, t.ID, TypeImageTemplate, t); err != nil {
			return err
		}
		_, err = s.q.Enqueue(ctx, tx, jobs.NewJob{Kind: jobSubmit, Payload: opPayload{Resource: t.ID, Operation: op.ID}, MaxAttempts: 3})
		return err
	})
	return t, op, err
}

// validate runs the validator (the one `goldsmith template validate` runs)
// on a PUT body: the template, or its problems.
func (s *Service) validate(id resourceid.ID, body map[string]any, apiVersion string) (*template.Template, []template.Problem) {
	doc := make(map[string]any, len(body))
	for k, v := range body {
		switch strings.ToLower(k) {
		case "apiversion", "name", "id": // the request's URL says these
		default:
			doc[k] = v
		}
	}
	doc["name"] = id.Name()
	parsed, _, err := template.Parse(doc, template.Options{APIVersion: apiVersion})
	var inv *template.InvalidError
	if errors.As(err, &inv) {
		return nil, inv.Problems
	}
	return parsed, nil
}

// lookup finds a key case-insensitively.
func lookup(m map[string]any, key string) any {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func stringMap(m map[string]any) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		} else {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

// GetTemplate reads an image template.
func (s *Service) GetTemplate(ctx context.Context, id string) (ImageTemplate, error) {
	var t ImageTemplate
	return t, s.viewDoc(ctx, id, &t)
}

// ListTemplates lists image templates under a subscription or resource group.
func (s *Service) ListTemplates(ctx context.Context, scope string, p Page) ([]ImageTemplate, string, error) {
	var out []ImageTemplate
	var next string
	err := s.st.View(ctx, func(tx *store.Tx) error {
		if err := requireScope(ctx, tx, scope); err != nil {
			return err
		}
		var err error
		out, next, err = list[ImageTemplate](ctx, tx, TypeImageTemplate, scope, p)
		return err
	})
	return out, next, err
}

// Patch is an image template PATCH body, decoded.
type Patch struct {
	Tags       map[string]string
	HasTags    bool
	Identity   any // the identity object as sent
	Distribute any // properties.distribute as sent
	VMProfile  any // properties.vmProfile as sent
}

// UpdateTemplate applies a PATCH: tags always; identity from 2020-02-14;
// properties.distribute from 2023-07-01; properties.vmProfile from 2024-02-01.
func (s *Service) UpdateTemplate(ctx context.Context, id string, body map[string]any, apiVersion string) (ImageTemplate, error) {
	ver, _ := template.LookupAPIVersion(apiVersion)
	allowed := map[string]bool{"tags": true}
	if ver.IdentityRequired {
		allowed["identity"] = true
	}
	if ver.ErrorHandling {
		allowed["properties"] = true
	}
	var p Patch
	for k, v := range body {
		switch lk := strings.ToLower(k); {
		case !allowed[lk]:
			return ImageTemplate{}, badRequest("InvalidRequestContent",
				"The image template update for api-version %s accepts only %s; '%s' cannot be changed.", apiVersion, keys(allowed), k)
		case lk == "tags":
			m, ok := v.(map[string]any)
			if !ok && v != nil {
				return ImageTemplate{}, badRequest("InvalidRequestContent", "tags must be an object of strings.")
			}
			p.Tags, p.HasTags = stringMap(m), true
		case lk == "identity":
			p.Identity = v
		case lk == "properties":
			props, ok := v.(map[string]any)
			if !ok {
				return ImageTemplate{}, badRequest("InvalidRequestContent", "properties must be an object.")
			}
			for pk, pv := range props {
				switch strings.ToLower(pk) {
				case "distribute":
					p.Distribute = pv
				case "vmprofile":
					if !ver.AutoRun {
						return ImageTemplate{}, badRequest("InvalidRequestContent", "properties.vmProfile can be updated from api-version 2024-02-01 on, not with %s.", apiVersion)
					}
					p.VMProfile = pv
				default:
					return ImageTemplate{}, badRequest("InvalidRequestContent", "properties.%s cannot be updated; an update accepts properties.distribute and properties.vmProfile.", pk)
				}
			}
		}
	}
	var t ImageTemplate
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		if err := getDoc(ctx, tx, id, &t); err != nil {
			return err
		}
		switch {
		case t.ProvisioningState == StateCreating || t.ProvisioningState == StateDeleting:
			return conflict("Conflict", "The image template '%s' is %s; try again when it is done.", t.Name, strings.ToLower(t.ProvisioningState))
		case t.ActiveRun != "" && (p.Identity != nil || p.Distribute != nil || p.VMProfile != nil):
			return conflict("Conflict", "The image template '%s' is running; only its tags can change until the run ends.", t.Name)
		}
		if p.Identity != nil || p.Distribute != nil || p.VMProfile != nil {
			if t.Template == nil {
				return conflict("Conflict", "The image template '%s' failed validation; only its tags can change. Delete it and submit it again.", t.Name)
			}
			var doc map[string]any
			if err := json.Unmarshal(t.Submitted, &doc); err != nil {
				return fmt.Errorf("decode stored template: %w", err)
			}
			if p.Identity != nil {
				doc["identity"] = p.Identity
			}
			props, _ := lookup(doc, "properties").(map[string]any)
			if props == nil {
				props = map[string]any{}
				doc["properties"] = props
			}
			if p.Distribute != nil {
				props["distribute"] = p.Distribute
			}
			if p.VMProfile != nil {
				props["vmProfile"] = p.VMProfile
			}
			submitted, err := json.Marshal(doc)
			if err != nil {
				return err
			}
			doc["name"] = t.Name
			parsed, _, err := template.Parse(doc, template.Options{APIVersion: apiVersion})
			var inv *template.InvalidError
			if errors.As(err, &inv) {
				e := badRequest(inv.Code(), "The update is invalid: %s", inv.Error())
				for _, pr := range inv.Problems {
					e.Details = append(e.Details, Error{Code: pr.Code, Target: pr.Target, Message: pr.Message})
				}
				return e
			}
			if err != nil {
				return err
			}
			parsed.Location = t.Location
			t.Template, t.Submitted = parsed, submitted
		}
		if p.HasTags {
			t.Tags = p.Tags
			if t.Template != nil {
				t.Template.Tags = p.Tags
			}
		}
		t.SystemData.touch(tx.Now())
		return tx.PutJSON(ctx, t.ID, TypeImageTemplate, t)
	})
	return t, err
}

func keys(m map[string]bool) string {
	var ks []string
	for _, k := range []string{"tags", "identity", "properties"} {
		if m[k] {
			ks = append(ks, k)
		}
	}
	return strings.Join(ks, ", ")
}

// DeleteTemplate starts deleting a template: a run in progress is canceled,
// then the template, its runs, runOutputs and triggers, and its staging
// group with everything in it go. It returns the operation reporting the
// end; a template that does not exist is a not-found error.
func (s *Service) DeleteTemplate(ctx context.Context, id string) (Operation, error) {
	return s.startTemplateDelete(ctx, id)
}

func (s *Service) startTemplateDelete(ctx context.Context, id string) (Operation, error) {
	var op Operation
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var t ImageTemplate
		if err := getDoc(ctx, tx, id, &t); err != nil {
			return err
		}
		if t.ProvisioningState == StateDeleting {
			if t.DeleteOperation != "" {
				_, err := tx.GetJSON(ctx, t.DeleteOperation, &op)
				return err
			}
		}
		pid, err := parseID(t.ID)
		if err != nil {
			return err
		}
		op, err = newOperation(ctx, tx, pid.Subscription, "Microsoft.VirtualMachineImages", t.Location, t.ID, "delete")
		if err != nil {
			return err
		}
		if t.ActiveRun != "" {
			if err := s.cancelRunTx(ctx, tx, &t, "the image template is being deleted"); err != nil {
				return err
			}
		}
		t.ProvisioningState, t.DeleteOperation = StateDeleting, op.ID
		if err := tx.PutJSON(ctx, t.ID, TypeImageTemplate, t); err != nil {
			return err
		}
		_, err = s.q.Enqueue(ctx, tx, jobs.NewJob{Kind: jobDelete, Payload: opPayload{Resource: t.ID, Operation: op.ID}, MaxAttempts: 5})
		return err
	})
	return op, err
}

type deleteHandler struct{ s *Service }

func (h deleteHandler) Work(ctx context.Context, job jobs.Job) error {
	s := h.s
	var p opPayload
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return fmt.Errorf("decode job: %w", err)
	}
	// Wait for a run in progress to stop (it was asked to cancel).
	var t ImageTemplate
	for {
		err := s.st.View(ctx, func(tx *store.Tx) error { _, err := tx.GetJSON(ctx, p.Resource, &t); return err })
		if errors.Is(err, store.ErrNotFound) {
			return s.st.Update(ctx, func(tx *store.Tx) error {
				return s.succeedJob(ctx, tx, job, p.Operation)
			})
		}
		if err != nil {
			return err
		}
		if t.ActiveRun == "" {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	var remove []string
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		if err := getDoc(ctx, tx, p.Resource, &t); err != nil {
			return err
		}
		if t.ActiveRun != "" {
			return fmt.Errorf("template %s started a run while being deleted", t.Name)
		}
		docs, err := s.deleteTree(ctx, tx, t.ID)
		if err != nil {
			return err
		}
		for _, d := range docs {
			if strings.EqualFold(d.Type, TypeRun) {
				var r Run
				if json.Unmarshal(d.Body, &r) == nil {
					remove = append(remove, r.WorkDir, r.KeptDir)
				}
			}
		}
		if t.ExactStagingResourceGroup != "" {
			remove = append(remove, s.stagingDir(t.ExactStagingResourceGroup))
			if t.StagingCreated {
				if _, err := s.deleteTree(ctx, tx, t.ExactStagingResourceGroup); err != nil {
					return err
				}
			}
		}
		return s.succeedJob(ctx, tx, job, p.Operation)
	})
	if err != nil {
		return err
	}
	s.removeFiles(remove...)
	return nil
}

func (h deleteHandler) Interrupted(context.Context, *store.Tx, jobs.Job, error) (bool, error) {
	return true, nil // deleting again is safe
}
