package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/goldsmith-dev/goldsmith/blob"
	"github.com/goldsmith-dev/goldsmith/blobref"
	"github.com/goldsmith-dev/goldsmith/download"
	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
)

// Job kinds this package puts on the queue.
const (
	jobSubmit      = "template.submit"
	jobDelete      = "template.delete"
	jobDeleteGroup = "group.delete"
)

// RunQueue queues and cancels the jobs that run templates' runs, in the
// transaction that records the run's state; package runner's Queue is it,
// and its Runner takes the jobs.
type RunQueue interface {
	// Run queues the job that builds and distributes a run.
	Run(ctx context.Context, tx *store.Tx, runID string) (jobID int64, err error)
	// Redistribute queues the job that distributes a run's kept outputs again.
	Redistribute(ctx context.Context, tx *store.Tx, runID string) (jobID int64, err error)
	// Cancel asks a run's job to stop; running says a worker has it and
	// will end the run, otherwise the job will never run.
	Cancel(ctx context.Context, tx *store.Tx, jobID int64) (running bool, err error)
}

// Options configure a Service.
type Options struct {
	Store *store.Store
	// Queue runs the service's own jobs: submissions and deletions.
	Queue *jobs.Queue
	// Runs queues the runs' jobs.
	Runs RunQueue
	// DataDir holds the staging groups' files, run scratch space and
	// artifacts (the database may live there too).
	DataDir string
	// HTTPClient downloads scripts, files and ISOs; default has a 30 minute
	// timeout.
	HTTPClient *http.Client
	// MaxISOBytes caps an ISO source's download at submission; 0 means
	// download.DefaultMaxISOBytes. Scripts and Files keep AIB's caps
	// (download.MaxScriptBytes, download.MaxFileBytes).
	MaxISOBytes int64
	Logger      *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Regions are the regions served, each with its blob store; default
	// blob.DefaultRegionNames with stores under DataDir/regions.
	Regions *blob.Regions
	// Staging is the content-addressed store of the files templates
	// reference (downloaded at submission) and of VHD outputs, shared by
	// every server and worker of a site (blob.StagingS3 says which bucket);
	// nil: a local directory, DataDir/staging/.blobs, for one machine.
	Staging blob.Store
}

// Service is the resource model's behaviour.
type Service struct {
	st      *store.Store
	q       *jobs.Queue
	runs    RunQueue
	refs    *blobref.Refs
	dataDir string
	http    *http.Client
	limits  download.Limits
	log     *slog.Logger
	now     func() time.Time
	regions *blob.Regions
	signer  *blob.Signer
	staging blob.Store
	// cache holds local copies of stored disks read from bucket regions, for
	// builds to start from (see StoredDisk).
	cache *blob.Dir
}

// New makes a Service and registers its job handlers (submissions and
// deletions) on the queue; start the queue (jobs.Queue.Run) afterwards. The runs
// are package runner's.
func New(opts Options) (*Service, error) {
	if opts.Store == nil || opts.Queue == nil || opts.Runs == nil || opts.DataDir == "" {
		return nil, errors.New("resource: Store, Queue, Runs and DataDir are required")
	}
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	for _, d := range []string{"staging", "downloads"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	s := &Service{st: opts.Store, q: opts.Queue, runs: opts.Runs, dataDir: dir,
		http: opts.HTTPClient, limits: download.Limits{ISO: opts.MaxISOBytes}, log: opts.Logger, now: opts.Now, regions: opts.Regions,
		staging: opts.Staging}
	if s.staging == nil {
		if s.staging, err = blob.NewDir(filepath.Join(dir, localStagingStore)); err != nil {
			return nil, err
		}
	}
	if s.cache, err = blob.NewDir(filepath.Join(dir, "cache", "stored-disks")); err != nil {
		return nil, err
	}
	if s.regions == nil {
		if s.regions, err = blob.OpenRegions(context.Background(), filepath.Join(dir, "regions"), nil); err != nil {
			return nil, err
		}
	}
	key, err := blob.LoadOrCreateKey(filepath.Join(dir, "blob-signing.key"))
	if err != nil {
		return nil, err
	}
	if s.signer, err = blob.NewSigner(key); err != nil {
		return nil, err
	}
	if s.http == nil {
		s.http = &http.Client{Timeout: 30 * time.Minute}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.refs = blobref.New(s.st, stores{s.regions, s.staging}, s.log.With("component", "blobref"))
	s.q.Handle(jobSubmit, submitHandler{s})
	s.q.Handle(jobDelete, deleteHandler{s})
	s.q.Handle(jobDeleteGroup, deleteGroupHandler{s})
	return s, nil
}

// Regions are the regions this site serves.
func (s *Service) Regions() *blob.Regions { return s.regions }

// BlobSigner signs and checks download URLs of artifacts.
func (s *Service) BlobSigner() *blob.Signer { return s.signer }

// DataDir is the absolute data directory.
func (s *Service) DataDir() string { return s.dataDir }

// abs turns a data-directory-relative path into an absolute one.
func (s *Service) abs(rel string) string { return filepath.Join(s.dataDir, filepath.FromSlash(rel)) }

// rel turns an absolute path under the data directory into a relative one.
func (s *Service) rel(abs string) string {
	r, err := filepath.Rel(s.dataDir, abs)
	if err != nil {
		return abs
	}
	return filepath.ToSlash(r)
}

// newGUID is a random (version 4) GUID, as ARM's ids and request ids are.
func newGUID() string { return uuid.NewString() }

// NormalizeLocation turns "West US 2" into "westus2", as ARM does.
func NormalizeLocation(loc string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(loc), " ", ""))
}

// Page asks for one page of a list.
type Page struct {
	After string // the token from the previous page
	Limit int    // 0: everything
}

// list reads one page of documents of a type under a scope and decodes them.
func list[T any](ctx context.Context, tx *store.Tx, typ, scope string, p Page) ([]T, string, error) {
	limit := p.Limit
	if limit > 0 {
		limit++ // one more tells whether there is a next page
	}
	docs, err := tx.List(ctx, store.Query{Type: typ, Scope: scope, After: p.After, Limit: limit})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if p.Limit > 0 && len(docs) > p.Limit {
		docs = docs[:p.Limit]
		next = store.Key(docs[len(docs)-1].ID)
	}
	out := make([]T, 0, len(docs))
	for _, d := range docs {
		var v T
		if err := json.Unmarshal(d.Body, &v); err != nil {
			return nil, "", fmt.Errorf("decode %s: %w", d.ID, err)
		}
		out = append(out, v)
	}
	return out, next, nil
}

// groupID is the id of a resource group.
func groupID(sub, name string) string { return "/subscriptions/" + sub + "/resourceGroups/" + name }

// requireGroup returns the resource group a new resource goes in, or
// ResourceGroupNotFound; a group being deleted takes nothing new.
func requireGroup(ctx context.Context, tx *store.Tx, id resourceid.ID) (Resource, error) {
	var g Resource
	if _, err := tx.GetJSON(ctx, groupID(id.Subscription, id.ResourceGroup), &g); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return g, groupNotFound(id.ResourceGroup)
		}
		return g, err
	}
	if state, _ := g.Properties["provisioningState"].(string); state == StateDeleting {
		return g, conflict("ResourceGroupBeingDeleted",
			"The resource group '%s' is in deprovisioning state and cannot perform this operation.", g.Name)
	}
	return g, nil
}

// operationID is the id of an operation status resource.
func operationID(sub, namespace, location, name string) string {
	return fmt.Sprintf("/subscriptions/%s/providers/%s/locations/%s/operations/%s", sub, namespace, location, name)
}

// newOperation records an operation in progress.
func newOperation(ctx context.Context, tx *store.Tx, sub, namespace, location, resourceID, action string) (Operation, error) {
	name := newGUID()
	op := Operation{ID: operationID(sub, namespace, location, name), Name: name, Status: OpInProgress,
		StartTime: tx.Now(), ResourceID: resourceID, Action: action}
	return op, tx.CreateJSON(ctx, op.ID, TypeOperation, op)
}

// endOperation records an operation's end; ending an ended one is a no-op.
func endOperation(ctx context.Context, tx *store.Tx, id, status string, opErr *OperationError) error {
	if id == "" {
		return nil
	}
	var op Operation
	if _, err := tx.GetJSON(ctx, id, &op); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if op.Done() {
		return nil
	}
	now := tx.Now()
	op.Status, op.EndTime, op.Error = status, &now, opErr
	return tx.PutJSON(ctx, op.ID, TypeOperation, op)
}

// Operation reads an operation status resource by id.
func (s *Service) Operation(ctx context.Context, id string) (Operation, error) {
	var op Operation
	err := s.st.View(ctx, func(tx *store.Tx) error {
		_, err := tx.GetJSON(ctx, id, &op)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return op, newErr(KindNotFound, "ResourceNotFound", "The operation '%s' was not found.", id)
	}
	return op, err
}

// OperationByName finds an operation from its name alone, under a subscription.
func (s *Service) OperationByName(ctx context.Context, sub, namespace, location, name string) (Operation, error) {
	return s.Operation(ctx, operationID(sub, namespace, location, name))
}

// viewDoc reads one document into v, mapping absence to ARM's not-found errors.
func (s *Service) viewDoc(ctx context.Context, id string, v any) error {
	return s.st.View(ctx, func(tx *store.Tx) error { return getDoc(ctx, tx, id, v) })
}

// getDoc reads one document in tx, answering ResourceGroupNotFound when the
// group is missing too, and ResourceNotFound otherwise.
func getDoc(ctx context.Context, tx *store.Tx, id string, v any) error {
	_, err := tx.GetJSON(ctx, id, v)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	pid, perr := resourceid.Parse(id)
	if perr != nil {
		return newErr(KindNotFound, "ResourceNotFound", "The resource '%s' was not found.", id)
	}
	if pid.ResourceGroup != "" && pid.Namespace != "" {
		if _, gerr := tx.Get(ctx, groupID(pid.Subscription, pid.ResourceGroup)); errors.Is(gerr, store.ErrNotFound) {
			return groupNotFound(pid.ResourceGroup)
		}
	}
	return notFound(pid)
}
