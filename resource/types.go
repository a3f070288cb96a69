// Package resource owns goldsmith's resource model and what happens to it:
// resource groups, image templates (submission, runs, cancellation,
// deletion), runOutputs and triggers, managed images, galleries, gallery
// image definitions and versions, user-assigned identities, and the
// asynchronous operations that report on long work.
//
// It speaks in resources and ARM error codes, not HTTP: package arm turns
// requests into calls on Service and answers into each apiVersion's shape.
// State lives in package store (one transaction per change); long work (a
// template's submission, a deletion) is a job of package jobs, so it
// survives restarts. A run is recorded here (started, canceled, retried,
// ended, what it published) but run by package runner: Service queues its
// job through a RunQueue and is the runner's Records. Blob references are
// package blobref's.
package resource

import (
	"encoding/json"
	"time"

	"github.com/goldsmith-dev/goldsmith/template"
)

// Resource types, as ARM spells them.
const (
	TypeResourceGroup       = "Microsoft.Resources/resourceGroups"
	TypeImageTemplate       = "Microsoft.VirtualMachineImages/imageTemplates"
	TypeRunOutput           = "Microsoft.VirtualMachineImages/imageTemplates/runOutputs"
	TypeTrigger             = "Microsoft.VirtualMachineImages/imageTemplates/triggers"
	TypeOperation           = "Microsoft.VirtualMachineImages/locations/operations"
	TypeImage               = "Microsoft.Compute/images"
	TypeGallery             = "Microsoft.Compute/galleries"
	TypeGalleryImage        = "Microsoft.Compute/galleries/images"
	TypeGalleryImageVersion = "Microsoft.Compute/galleries/images/versions"
	TypeIdentity            = "Microsoft.ManagedIdentity/userAssignedIdentities"
	// TypeRun is goldsmith's record of one run of a template; AIB has no
	// such resource (it keeps only lastRunStatus).
	TypeRun = "Goldsmith/imageTemplates/runs"
)

// SystemData is ARM's creation and modification record.
type SystemData struct {
	CreatedBy          string    `json:"createdBy,omitempty"`
	CreatedByType      string    `json:"createdByType,omitempty"`
	CreatedAt          time.Time `json:"createdAt"`
	LastModifiedBy     string    `json:"lastModifiedBy,omitempty"`
	LastModifiedByType string    `json:"lastModifiedByType,omitempty"`
	LastModifiedAt     time.Time `json:"lastModifiedAt"`
}

func newSystemData(now time.Time) SystemData {
	return SystemData{CreatedBy: "goldsmith", CreatedByType: "Application", CreatedAt: now,
		LastModifiedBy: "goldsmith", LastModifiedByType: "Application", LastModifiedAt: now}
}

func (s *SystemData) touch(now time.Time) {
	s.LastModifiedAt = now
	s.LastModifiedBy, s.LastModifiedByType = "goldsmith", "Application"
}

// Resource is every ARM resource goldsmith keeps that is not an image
// template: resource groups, images, galleries, definitions, versions,
// identities, runOutputs and triggers. Properties is the resource's own
// JSON properties object, with the read-only values goldsmith fills in.
type Resource struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	ManagedBy  string            `json:"managedBy,omitempty"`
	Properties map[string]any    `json:"properties,omitempty"`
	SystemData SystemData        `json:"systemData"`
	// Artifact is the disk behind an image or gallery image version
	// (goldsmith's own; never part of the ARM shape).
	Artifact *Artifact `json:"goldsmithArtifact,omitempty"`
	// DeleteOperation is the operation of a deletion in progress.
	DeleteOperation string `json:"goldsmithDeleteOperation,omitempty"`
}

// Artifact is the disk behind a managed image or gallery image version: a
// blob (by sha256) in the blob store of each region listed.
type Artifact struct {
	Format      string   `json:"format"` // qcow2, raw or vhd
	SHA256      string   `json:"sha256"`
	Size        int64    `json:"size"`
	VirtualSize int64    `json:"virtualSize,omitempty"`
	OSType      string   `json:"osType,omitempty"`
	Regions     []string `json:"regions"`
	// Holder is the name the resource's blob references are kept under.
	Holder string `json:"holder"`
	// Run is the run publishing the resource while it is Creating (a
	// gallery version replicating): a node's start-up sweep leaves it to
	// that run while the run is in progress, perhaps on another node.
	Run string `json:"run,omitempty"`
}

// ProvisioningState values.
const (
	StateCreating  = "Creating"
	StateUpdating  = "Updating"
	StateSucceeded = "Succeeded"
	StateFailed    = "Failed"
	StateDeleting  = "Deleting"
	StateCanceled  = "Canceled"
)

// Run states (lastRunStatus.runState).
const (
	RunRunning            = "Running"
	RunCanceling          = "Canceling"
	RunSucceeded          = "Succeeded"
	RunPartiallySucceeded = "PartiallySucceeded"
	RunFailed             = "Failed"
	RunCanceled           = "Canceled"
)

// ProvisioningError says why a template's submission failed.
type ProvisioningError struct {
	Code    string `json:"provisioningErrorCode"`
	Message string `json:"message"`
}

// LastRunStatus is the template's view of its latest run.
type LastRunStatus struct {
	StartTime   time.Time  `json:"startTime"`
	EndTime     *time.Time `json:"endTime,omitempty"`
	RunState    string     `json:"runState"`
	RunSubState string     `json:"runSubState,omitempty"`
	Message     string     `json:"message"`
}

// ImageTemplate is a stored image template: what was submitted and where it is.
type ImageTemplate struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Location string            `json:"location"`
	Tags     map[string]string `json:"tags,omitempty"`
	// APIVersion is the apiVersion the template was submitted with.
	APIVersion string `json:"apiVersion"`
	// Template is the canonical template; nil when the submission did not
	// validate (then Submitted holds what was sent).
	Template *template.Template `json:"template,omitempty"`
	// Submitted is the resource body as the client sent it.
	Submitted json.RawMessage `json:"submitted"`
	// Problems are the validation errors found at submission.
	Problems []template.Problem `json:"problems,omitempty"`

	ProvisioningState         string             `json:"provisioningState"`
	ProvisioningError         *ProvisioningError `json:"provisioningError,omitempty"`
	LastRunStatus             *LastRunStatus     `json:"lastRunStatus,omitempty"`
	ExactStagingResourceGroup string             `json:"exactStagingResourceGroup,omitempty"`
	// StagingCreated says goldsmith created the staging group (and deletes it
	// with the template); a group the user named is only emptied.
	StagingCreated bool         `json:"stagingCreated,omitempty"`
	StagedFiles    []StagedFile `json:"stagedFiles,omitempty"`
	// DeleteOperation is the operation of a deletion in progress.
	DeleteOperation string `json:"deleteOperation,omitempty"`
	// ActiveRun is the id of the run in progress, if any.
	ActiveRun string `json:"activeRun,omitempty"`
	// Runs counts the runs started, for numbering.
	Runs       int        `json:"runs"`
	SystemData SystemData `json:"systemData"`
}

// StagedFile is a script, file or ISO the template references, downloaded
// at submission, verified and kept in the staging store under its sha256
// (see Service.FetchStaged).
type StagedFile struct {
	URI    string `json:"uri"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Run is one run of a template.
type Run struct {
	ID         string     `json:"id"` // resource id: template id + /runs/{runId}
	RunID      string     `json:"runId"`
	Number     int        `json:"number"`
	TemplateID string     `json:"templateId"`
	State      string     `json:"state"`    // a runState
	SubState   string     `json:"subState"` // a runSubState
	Message    string     `json:"message"`
	StartTime  time.Time  `json:"startTime"`
	EndTime    *time.Time `json:"endTime,omitempty"`
	// StartedBy is who started the run: the caller's name as the API
	// logs it, "autoRun (at submission)" or "trigger ID".
	StartedBy   string `json:"startedBy,omitempty"`
	JobID       int64  `json:"jobId"`
	OperationID string `json:"operationId"`
	// CancelOperationID is the operation of a cancel request, if any.
	CancelOperationID string   `json:"cancelOperationId,omitempty"`
	LogPath           string   `json:"logPath"` // relative to the data directory
	WorkDir           string   `json:"workDir"` // relative to the data directory
	Outputs           []string `json:"outputs,omitempty"`
	// Kept are the build outputs kept after a distribution that failed for
	// some targets, so it can be retried without building again; they go
	// when every target has succeeded, the template runs again or is
	// deleted. KeptDir (data-directory-relative) holds them.
	Kept    []KeptOutput `json:"kept,omitempty"`
	KeptDir string       `json:"keptDir,omitempty"`
	// Phases are the runSubStates the run entered and when, oldest first:
	// a live timeline before the build's manifest exists.
	Phases []RunPhase `json:"phases,omitempty"`
}

// RunPhase is a phase a run entered.
type RunPhase struct {
	Name  string    `json:"name"` // a runSubState
	Start time.Time `json:"start"`
}

// KeptOutput is a build output kept for a retried distribution.
type KeptOutput struct {
	RunOutputName    string `json:"runOutputName"`
	Path             string `json:"path"` // relative to the data directory
	Format           string `json:"format"`
	SHA256           string `json:"sha256"`
	Size             int64  `json:"size"`
	OSType           string `json:"osType"`
	HyperVGeneration string `json:"hyperVGeneration"`
}

// Active tells whether the run has not ended.
func (r Run) Active() bool { return r.EndTime == nil }

// Operation is an asynchronous operation's status resource.
type Operation struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Status     string          `json:"status"` // InProgress, Succeeded, Failed, Canceled
	StartTime  time.Time       `json:"startTime"`
	EndTime    *time.Time      `json:"endTime,omitempty"`
	Error      *OperationError `json:"error,omitempty"`
	ResourceID string          `json:"resourceId"`
	Action     string          `json:"action"` // create, update, delete, run, cancel
}

// OperationError is a failed operation's error.
type OperationError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Operation statuses.
const (
	OpInProgress = "InProgress"
	OpSucceeded  = "Succeeded"
	OpFailed     = "Failed"
	OpCanceled   = "Canceled"
)

// Done tells whether the operation has ended.
func (o Operation) Done() bool { return o.Status != OpInProgress }
