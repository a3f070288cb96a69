package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/goldsmith-dev/goldsmith/jobs"
	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
)

// Input is the body of a PUT of a plain ARM resource.
type Input struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	ManagedBy  string            `json:"managedBy"`
	Properties map[string]any    `json:"properties"`
}

var groupNamePattern = regexp.MustCompile(`^[-\w._()]{1,90}$`)

// PutResourceGroup creates or updates a resource group; created tells which.
func (s *Service) PutResourceGroup(ctx context.Context, sub, name string, in Input) (Resource, bool, error) {
	if !groupNamePattern.MatchString(name) || strings.HasSuffix(name, ".") {
		return Resource{}, false, badRequest("InvalidResourceGroup",
			"The provided resource group name '%s' has these invalid characters or length: resource group names are 1-90 letters, digits, '_', '-', '.', '(' or ')', and do not end in '.'.", name)
	}
	loc := NormalizeLocation(in.Location)
	if loc == "" {
		return Resource{}, false, badRequest("LocationRequired", "The location property is required for this definition.")
	}
	var g Resource
	created := false
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		id := groupID(sub, name)
		_, err := tx.GetJSON(ctx, id, &g)
		switch {
		case errors.Is(err, store.ErrNotFound):
			created = true
			g = Resource{ID: id, Name: name, Type: TypeResourceGroup, Location: loc, Tags: in.Tags, ManagedBy: in.ManagedBy,
				Properties: map[string]any{"provisioningState": StateSucceeded}, SystemData: newSystemData(tx.Now())}
			return tx.CreateJSON(ctx, id, TypeResourceGroup, g)
		case err != nil:
			return err
		}
		if state, _ := g.Properties["provisioningState"].(string); state == StateDeleting {
			return conflict("ResourceGroupBeingDeleted", "The resource group '%s' is in deprovisioning state and cannot perform this operation.", g.Name)
		}
		if g.Location != loc {
			return conflict("InvalidResourceGroupLocation",
				"Invalid resource group location '%s'. The Resource group already exists in location '%s'.", loc, g.Location)
		}
		g.Tags = in.Tags
		if in.ManagedBy != "" {
			g.ManagedBy = in.ManagedBy
		}
		g.SystemData.touch(tx.Now())
		return tx.PutJSON(ctx, g.ID, TypeResourceGroup, g)
	})
	return g, created, err
}

// GetResourceGroup reads a resource group.
func (s *Service) GetResourceGroup(ctx context.Context, sub, name string) (Resource, error) {
	var g Resource
	err := s.st.View(ctx, func(tx *store.Tx) error {
		_, err := tx.GetJSON(ctx, groupID(sub, name), &g)
		if errors.Is(err, store.ErrNotFound) {
			return groupNotFound(name)
		}
		return err
	})
	return g, err
}

// ListResourceGroups lists a subscription's resource groups.
func (s *Service) ListResourceGroups(ctx context.Context, sub string, p Page) ([]Resource, string, error) {
	var out []Resource
	var next string
	err := s.st.View(ctx, func(tx *store.Tx) (err error) {
		out, next, err = list[Resource](ctx, tx, TypeResourceGroup, "/subscriptions/"+sub, p)
		return err
	})
	return out, next, err
}

// DeleteResourceGroup starts deleting a group and everything in it: its
// templates (canceling their runs, deleting their staging groups), images,
// galleries and identities. It returns the operation that reports the end.
func (s *Service) DeleteResourceGroup(ctx context.Context, sub, name string) (Operation, error) {
	var op Operation
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var g Resource
		id := groupID(sub, name)
		if _, err := tx.GetJSON(ctx, id, &g); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return groupNotFound(name)
			}
			return err
		}
		if g.DeleteOperation != "" {
			_, err := tx.GetJSON(ctx, g.DeleteOperation, &op)
			return err
		}
		var err error
		op, err = newOperation(ctx, tx, sub, "Microsoft.Resources", g.Location, g.ID, "delete")
		if err != nil {
			return err
		}
		g.Properties["provisioningState"] = StateDeleting
		g.DeleteOperation = op.ID
		if err := tx.PutJSON(ctx, g.ID, TypeResourceGroup, g); err != nil {
			return err
		}
		_, err = s.q.Enqueue(ctx, tx, jobs.NewJob{Kind: jobDeleteGroup, Payload: opPayload{Resource: g.ID, Operation: op.ID}, MaxAttempts: 5})
		return err
	})
	return op, err
}

// opPayload is the payload of jobs that finish an operation.
type opPayload struct {
	Resource  string `json:"resource"`
	Operation string `json:"operation"`
}

type deleteGroupHandler struct{ s *Service }

func (h deleteGroupHandler) Work(ctx context.Context, job jobs.Job) error {
	s := h.s
	var p opPayload
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return fmt.Errorf("decode job: %w", err)
	}
	// Templates first: their runs must stop and their staging groups go too.
	// Their deletions are jobs of their own: this one steps aside (snoozes)
	// until they are done, so it never holds the only worker they need.
	var tmpls []ImageTemplate
	err := s.st.View(ctx, func(tx *store.Tx) (err error) {
		tmpls, _, err = list[ImageTemplate](ctx, tx, TypeImageTemplate, p.Resource, Page{})
		return err
	})
	if err != nil {
		return err
	}
	if len(tmpls) > 0 {
		for _, t := range tmpls {
			if _, err := s.startTemplateDelete(ctx, t.ID); err != nil && !IsNotFound(err) {
				return err
			}
		}
		return jobs.Snooze(200 * time.Millisecond)
	}
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		if _, err := s.deleteTree(ctx, tx, p.Resource); err != nil {
			return err
		}
		return s.succeedJob(ctx, tx, job, p.Operation)
	})
	return err
}

func (h deleteGroupHandler) Interrupted(context.Context, *store.Tx, jobs.Job, error) (bool, error) {
	return true, nil // deleting again is safe
}

// removeFiles removes data-directory-relative files and directories.
func (s *Service) removeFiles(rel ...string) {
	for _, r := range rel {
		if r == "" {
			continue
		}
		if err := os.RemoveAll(s.abs(r)); err != nil {
			s.log.Warn("remove file", "path", r, "err", err)
		}
	}
}

// parseID parses an id, answering a bad request when it is malformed.
func parseID(id string) (resourceid.ID, error) {
	pid, err := resourceid.Parse(id)
	if err != nil {
		return pid, badRequest("InvalidResourceId", "%v", err)
	}
	return pid, nil
}
