package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/download"
	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
	"github.com/goldsmith-dev/goldsmith/template"
)

// stagingDir is the data-directory-relative directory holding a staging
// group's logs, under packerlogs/{runId}/. (Its downloaded files and VHD
// outputs are blobs in the staging store, shared by every node.) Its names
// never start with a dot: staging/.blobs is the local staging store.
func (s *Service) stagingDir(groupID string) string {
	gid, err := resourceid.Parse(groupID)
	if err != nil {
		return path.Join("staging", "invalid", SafeName(groupID))
	}
	name := func(s string) string {
		n := SafeName(strings.ToLower(s))
		if strings.HasPrefix(n, ".") {
			n = "_" + n
		}
		return n
	}
	return path.Join("staging", name(gid.Subscription), name(gid.ResourceGroup))
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
			// Deleted (or decided) meanwhile: its deletion did not know
			// these files.
			stale = true
			if err := s.releaseStaged(ctx, tx, t.ID, files); err != nil {
				return err
			}
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
		s.log.Info("a template was deleted while its files were staged", "template", t.ID)
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

// stageFiles downloads every referenced file with package download's
// limits, checks its sha256 and puts it in the staging store (under its
// sha256, referenced by the template), where any node's run fetches it. A
// failure is a *ProvisioningError naming the URI (and for a checksum
// mismatch, the expected and actual digests; for a cap, the limit); the
// references taken are dropped again.
func (s *Service) stageFiles(ctx context.Context, t ImageTemplate) ([]StagedFile, error) {
	dir, err := os.MkdirTemp(s.abs("downloads"), "submit-")
	if err != nil {
		return nil, fmt.Errorf("create download directory: %w", err)
	}
	defer os.RemoveAll(dir)
	staged, local, err := s.downloadFiles(ctx, t, dir)
	if err != nil {
		return nil, err
	}
	// The references first, then the blobs: another holder releasing the
	// same bytes meanwhile then cannot remove the blob once it is placed.
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		for _, f := range staged {
			if err := s.refs.Acquire(ctx, tx, stagingStore, f.SHA256, t.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, f := range staged {
		unlock := s.staging.Lock(f.SHA256)
		_, err = s.staging.Put(ctx, f.SHA256, local[i], blob.PutOptions{Link: true, TrustLinked: true})
		unlock()
		if err != nil {
			err = fmt.Errorf("stage %s: %w", f.URI, err)
			break
		}
	}
	if err != nil {
		if rerr := s.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error { return s.releaseStaged(ctx, tx, t.ID, staged) }); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return staged, nil
}

// downloadFiles downloads every referenced file into dir, verified; local
// are the files, in the order of staged.
func (s *Service) downloadFiles(ctx context.Context, t ImageTemplate, dir string) (staged []StagedFile, local []string, err error) {
	d := &download.Downloader{Client: s.http, Limits: s.limits}
	got := map[string]StagedFile{}
	for i, ref := range references(t.Template) {
		f, ok := got[ref.uri]
		if !ok {
			p := filepath.Join(dir, fmt.Sprintf("%03d-%s", i, SafeName(download.BaseName(ref.uri))))
			res, err := d.ToFile(ctx, ref.uri, ref.sha256, ref.kind, p)
			var bad *download.ChecksumError
			switch {
			case err == nil:
			case ctx.Err() != nil:
				return nil, nil, ctx.Err()
			case errors.As(err, &bad):
				return nil, nil, checksumMismatch(ref, bad.Got)
			default:
				return nil, nil, &ProvisioningError{Code: ref.code, Message: fmt.Sprintf("Failed to download %s for %s: %v", ref.uri, ref.what, err)}
			}
			f = StagedFile{URI: ref.uri, SHA256: strings.ToLower(res.SHA256), Size: res.Size}
			got[ref.uri] = f
			staged = append(staged, f)
			local = append(local, p)
		}
		// The same URI may be named twice, with other checksums or caps.
		if limit := s.limits.Of(ref.kind); f.Size > limit {
			return nil, nil, &ProvisioningError{Code: ref.code, Message: fmt.Sprintf("Failed to download %s for %s: %v", ref.uri, ref.what,
				&download.TooLargeError{URI: ref.uri, Kind: ref.kind, Limit: limit, Size: f.Size})}
		}
		if ref.sha256 != "" && !strings.EqualFold(ref.sha256, f.SHA256) {
			return nil, nil, checksumMismatch(ref, f.SHA256)
		}
	}
	return staged, local, nil
}

// releaseStaged drops, in tx, a template's references to its staged files.
func (s *Service) releaseStaged(ctx context.Context, tx *store.Tx, templateID string, files []StagedFile) error {
	for _, f := range files {
		if err := s.refs.Release(ctx, tx, stagingStore, f.SHA256, templateID); err != nil {
			return err
		}
	}
	return nil
}

// FetchStaged copies a template's staged file from the staging store to
// the local file dst (a run's scratch space), its sha256 verified: the run
// may be on another machine than the submission.
func (s *Service) FetchStaged(ctx context.Context, f StagedFile, dst string) error {
	n, err := blob.Fetch(ctx, s.staging, f.SHA256, dst)
	if err != nil {
		return fmt.Errorf("fetch the staged copy of %s: %w", f.URI, err)
	}
	if n != f.Size {
		os.Remove(dst)
		return fmt.Errorf("fetch the staged copy of %s: %d bytes, want %d", f.URI, n, f.Size)
	}
	return nil
}

func checksumMismatch(ref fileRef, got string) *ProvisioningError {
	return &ProvisioningError{Code: ref.code, Message: fmt.Sprintf(
		"The sha256 checksum of %s (%s) does not match: expected %s, actual %s.", ref.uri, ref.what, strings.ToLower(ref.sha256), got)}
}

// ProvisioningError is also an error.
func (e *ProvisioningError) Error() string { return e.Code + ": " + e.Message }
