package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/goldsmith-dev/goldsmith/download"
	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

// stagingDir is the data-directory-relative directory holding a staging
// group's files: downloads under files/, logs under packerlogs/{runId}/,
// VHD outputs under vhds/.
func (s *Service) stagingDir(groupID string) string {
	gid, err := resourceid.Parse(groupID)
	if err != nil {
		return path.Join("staging", "invalid", SafeName(groupID))
	}
	return path.Join("staging", SafeName(strings.ToLower(gid.Subscription)), SafeName(strings.ToLower(gid.ResourceGroup)))
}

// SafeName turns s into a name safe for one file in the data directory:
// characters other than letters, digits and -_.() become _.
func SafeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '(', r == ')':
			return r
		}
		return '_'
	}, s)
}

type submitHandler struct{ s *Service }

// Work validates a submitted template, makes its staging group and fills it
// with every file the template references, verified.
func (h submitHandler) Work(ctx context.Context, job jobs.Job) error {
	s := h.s
	var p opPayload
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return fmt.Errorf("decode job: %w", err)
	}
	var t ImageTemplate
	err := s.st.View(ctx, func(tx *store.Tx) error { _, err := tx.GetJSON(ctx, p.Resource, &t); return err })
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.ProvisioningState != StateCreating) {
		return nil // deleted or decided meanwhile
	}
	if err != nil {
		return err
	}
	if len(t.Problems) > 0 {
		return s.failSubmission(ctx, job, p, submissionError(t.Problems))
	}
	if src := t.Template.Properties.Source; src.Type == template.SourceManagedImage || src.Type == template.SourceSharedImageVersion {
		err := s.st.View(ctx, func(tx *store.Tx) error { return s.checkSource(ctx, tx, src, t.Location) })
		var e *Error
		if errors.As(err, &e) {
			return s.failSubmission(ctx, job, p, &ProvisioningError{Code: e.Code, Message: e.Message})
		}
		if err != nil {
			return err
		}
	}
	if err := s.ensureStaging(ctx, &t); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return s.failSubmission(ctx, job, p, &ProvisioningError{Code: e.Code, Message: e.Message})
		}
		return err
	}
	files, err := s.stageFiles(ctx, t)
	if err != nil {
		s.removeFiles(path.Join(s.stagingDir(t.ExactStagingResourceGroup), "files"))
		var pe *ProvisioningError
		if errors.As(err, &pe) {
			return s.failSubmission(ctx, job, p, pe)
		}
		if ctx.Err() != nil {
			return err
		}
		return s.failSubmission(ctx, job, p, &ProvisioningError{Code: "ServerError", Message: err.Error()})
	}
	stale := false
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		var cur ImageTemplate
		if _, err := tx.GetJSON(ctx, t.ID, &cur); err != nil || cur.ProvisioningState != StateCreating {
			stale = true
			return s.q.Finish(ctx, tx, job)
		}
		cur.StagedFiles = files
		cur.ExactStagingResourceGroup, cur.StagingCreated = t.ExactStagingResourceGroup, t.StagingCreated
		cur.ProvisioningState = StateSucceeded
		cur.SystemData.touch(tx.Now())
		if cur.Template.Properties.AutoRun != nil && cur.Template.Properties.AutoRun.State == "Enabled" {
			if _, err := s.startRunTx(ctx, tx, &cur, "autoRun (at submission)"); err != nil {
				return err
			}
		}
		if err := tx.PutJSON(ctx, cur.ID, TypeImageTemplate, cur); err != nil {
			return err
		}
		return s.succeedJob(ctx, tx, job, p.Operation)
	})
	if err == nil && stale {
		s.removeFiles(path.Join(s.stagingDir(t.ExactStagingResourceGroup), "files"))
	}
	return err
}

// Interrupted retries a submission (downloading again is safe); when no
// attempt is left the template fails.
func (h submitHandler) Interrupted(ctx context.Context, tx *store.Tx, job jobs.Job, cause error) (bool, error) {
	if job.Attempt < job.MaxAttempts {
		return true, nil
	}
	var p opPayload
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return false, err
	}
	return false, h.s.recordSubmissionFailure(ctx, tx, p, &ProvisioningError{Code: "ServerError",
		Message: "The submission was interrupted (" + cause.Error() + ") and gave up after " + fmt.Sprint(job.Attempt) + " attempts."})
}

func submissionError(problems []template.Problem) *ProvisioningError {
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.String()
	}
	msg := msgs[0]
	if len(msgs) > 1 {
		msg = fmt.Sprintf("The template has %d errors: %s", len(msgs), strings.Join(msgs, "; "))
	}
	return &ProvisioningError{Code: problems[0].Code, Message: msg}
}

func (s *Service) failSubmission(ctx context.Context, job jobs.Job, p opPayload, pe *ProvisioningError) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		if err := s.recordSubmissionFailure(ctx, tx, p, pe); err != nil {
			return err
		}
		return s.q.Finish(ctx, tx, job)
	})
}

func (s *Service) recordSubmissionFailure(ctx context.Context, tx *store.Tx, p opPayload, pe *ProvisioningError) error {
	var t ImageTemplate
	if _, err := tx.GetJSON(ctx, p.Resource, &t); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if t.ProvisioningState != StateCreating {
		return nil
	}
	t.ProvisioningState, t.ProvisioningError = StateFailed, pe
	t.SystemData.touch(tx.Now())
	if err := tx.PutJSON(ctx, t.ID, TypeImageTemplate, t); err != nil {
		return err
	}
	return endOperation(ctx, tx, p.Operation, OpFailed, &OperationError{Code: pe.Code, Message: pe.Message})
}

// maxGroupName is ARM's limit on resource group names.
const maxGroupName = 90

// ensureStaging creates (or adopts) the template's staging resource group.
func (s *Service) ensureStaging(ctx context.Context, t *ImageTemplate) error {
	if t.ExactStagingResourceGroup != "" {
		return nil
	}
	tid, err := resourceid.Parse(t.ID)
	if err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return badRequest(template.CodeBadStagingResourceGroup, format, args...)
	}
	return s.st.Update(ctx, func(tx *store.Tx) error {
		var gid resourceid.ID
		custom := t.Template.Properties.StagingResourceGroup
		if custom != "" {
			gid, err = resourceid.ParseAs(custom, resourceid.ResourceGroup)
			switch {
			case err != nil:
				return bad("The staging resource group is invalid: %v", err)
			case !strings.EqualFold(gid.Subscription, tid.Subscription):
				return bad("The staging resource group '%s' must be in the template's subscription %s.", custom, tid.Subscription)
			case strings.EqualFold(gid.ResourceGroup, tid.ResourceGroup):
				return bad("The staging resource group '%s' must not be the resource group the template is in.", custom)
			}
		} else {
			name := fmt.Sprintf("IT_%s_%s_%s", tid.ResourceGroup, t.Name, newGUID())
			if len(name) > maxGroupName {
				keep := maxGroupName - len(name) + len(t.Name)
				name = fmt.Sprintf("IT_%s_%s_%s", tid.ResourceGroup, t.Name[:max(keep, 1)], newGUID())
				name = name[:min(len(name), maxGroupName)]
			}
			gid = resourceid.ID{Subscription: tid.Subscription, ResourceGroup: name}
		}
		tags := map[string]string{"createdBy": "AzureVMImageBuilder", "imageTemplateName": t.Name, "imageTemplateResourceGroupName": tid.ResourceGroup}
		for k, v := range t.Template.Properties.ManagedResourceTags {
			tags[k] = v
		}
		var g Resource
		_, err := tx.GetJSON(ctx, gid.String(), &g)
		switch {
		case errors.Is(err, store.ErrNotFound):
			g = Resource{ID: gid.String(), Name: gid.ResourceGroup, Type: TypeResourceGroup, Location: t.Location, Tags: tags,
				ManagedBy: t.ID, Properties: map[string]any{"provisioningState": StateSucceeded}, SystemData: newSystemData(tx.Now())}
			t.StagingCreated = true
		case err != nil:
			return err
		default:
			if g.ManagedBy != "" && !strings.EqualFold(g.ManagedBy, t.ID) {
				return bad("The staging resource group '%s' is already used by %s.", g.Name, g.ManagedBy)
			}
			n, err := tx.Count(ctx, g.ID)
			if err != nil {
				return err
			}
			if n > 0 {
				return bad("The staging resource group '%s' is not empty: it holds %d resources. Name an empty or new group.", g.Name, n)
			}
			if g.Tags == nil {
				g.Tags = map[string]string{}
			}
			for k, v := range tags {
				g.Tags[k] = v
			}
			g.ManagedBy = t.ID
			t.StagingCreated = false
		}
		t.ExactStagingResourceGroup = g.ID
		if err := tx.PutJSON(ctx, g.ID, TypeResourceGroup, g); err != nil {
			return err
		}
		var cur ImageTemplate
		if _, err := tx.GetJSON(ctx, t.ID, &cur); err != nil {
			return err
		}
		cur.ExactStagingResourceGroup, cur.StagingCreated = t.ExactStagingResourceGroup, t.StagingCreated
		return tx.PutJSON(ctx, cur.ID, TypeImageTemplate, cur)
	})
}

// fileRef is one file a template references.
type fileRef struct {
	uri    string
	sha256 string
	kind   download.Kind
	code   string // the provisioningError code when it cannot be fetched
	what   string
}

// References lists the URIs of every script, file and ISO a template needs.
func references(t *template.Template) []fileRef {
	var refs []fileRef
	p := t.Properties
	if p.Source.Type == template.SourceISO && p.Source.SourceURI != "" {
		refs = append(refs, fileRef{p.Source.SourceURI, p.Source.SHA256Checksum, download.ISO, template.CodeBadISOSource, "the ISO source"})
	}
	add := func(list []template.Customizer, code, what string) {
		for i, c := range list {
			desc := fmt.Sprintf("%s[%d]", what, i)
			if c.Name != "" {
				desc += fmt.Sprintf(" (%s)", c.Name)
			}
			if c.ScriptURI != "" {
				refs = append(refs, fileRef{c.ScriptURI, c.SHA256Checksum, download.Script, code, desc})
			}
			if c.Type == template.CustomizeFile && c.SourceURI != "" {
				refs = append(refs, fileRef{c.SourceURI, c.SHA256Checksum, download.File, code, desc})
			}
		}
	}
	add(p.Customize, template.CodeNoCustomizerScript, "customize")
	if p.Validate != nil {
		add(p.Validate.InVMValidations, template.CodeNoValidatorScript, "validate.inVMValidations")
	}
	if p.Optimize != nil && p.Optimize.WorkloadScript != "" {
		refs = append(refs, fileRef{p.Optimize.WorkloadScript, p.Optimize.WorkloadSHA256, download.Script, "Other", "optimize.workload"})
	}
	return refs
}

// stageFiles downloads every referenced file into the staging group with
// package download's limits and checks its sha256. A failure is a
// *ProvisioningError naming the URI (and for a checksum mismatch, the
// expected and actual digests; for a cap, the limit).
func (s *Service) stageFiles(ctx context.Context, t ImageTemplate) ([]StagedFile, error) {
	dir := path.Join(s.stagingDir(t.ExactStagingResourceGroup), "files")
	if err := os.MkdirAll(s.abs(dir), 0o700); err != nil {
		return nil, fmt.Errorf("create staging directory: %w", err)
	}
	d := &download.Downloader{Client: s.http, Limits: s.limits}
	var staged []StagedFile
	got := map[string]StagedFile{}
	for i, ref := range references(t.Template) {
		f, ok := got[ref.uri]
		if !ok {
			rel := path.Join(dir, fmt.Sprintf("%03d-%s", i, SafeName(download.BaseName(ref.uri))))
			local, err := d.ToFile(ctx, ref.uri, ref.sha256, ref.kind, s.abs(rel))
			var bad *download.ChecksumError
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return nil, ctx.Err()
			case errors.As(err, &bad):
				return nil, checksumMismatch(ref, bad.Got)
			default:
				return nil, &ProvisioningError{Code: ref.code, Message: fmt.Sprintf("Failed to download %s for %s: %v", ref.uri, ref.what, err)}
			}
			f = StagedFile{URI: ref.uri, Path: rel, SHA256: local.SHA256, Size: local.Size}
			got[ref.uri] = f
			staged = append(staged, f)
		}
		// The same URI may be named twice, with other checksums or caps.
		if limit := s.limits.Of(ref.kind); f.Size > limit {
			return nil, &ProvisioningError{Code: ref.code, Message: fmt.Sprintf("Failed to download %s for %s: %v", ref.uri, ref.what,
				&download.TooLargeError{URI: ref.uri, Kind: ref.kind, Limit: limit, Size: f.Size})}
		}
		if ref.sha256 != "" && !strings.EqualFold(ref.sha256, f.SHA256) {
			return nil, checksumMismatch(ref, f.SHA256)
		}
	}
	return staged, nil
}

func checksumMismatch(ref fileRef, got string) *ProvisioningError {
	return &ProvisioningError{Code: ref.code, Message: fmt.Sprintf(
		"The sha256 checksum of %s (%s) does not match: expected %s, actual %s.", ref.uri, ref.what, strings.ToLower(ref.sha256), got)}
}

// ProvisioningError is also an error.
func (e *ProvisioningError) Error() string { return e.Code + ": " + e.Message }
