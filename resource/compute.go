package resource

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/goldsmith-dev/goldsmith/resourceid"
	"github.com/goldsmith-dev/goldsmith/store"
)

// kind says what the API may do with a plain resource type.
type kind struct {
	put      func(s *Service, tx *store.Tx, id resourceid.ID, in Input, old *Resource) (map[string]any, error)
	deletion bool
	// children are nested types that must be gone before deletion.
	children []string
}

var kinds = map[string]kind{
	strings.ToLower(TypeGallery):             {put: putGallery, deletion: true, children: []string{TypeGalleryImage}},
	strings.ToLower(TypeGalleryImage):        {put: putGalleryImage, deletion: true, children: []string{TypeGalleryImageVersion}},
	strings.ToLower(TypeGalleryImageVersion): {deletion: true},
	strings.ToLower(TypeImage):               {deletion: true},
	strings.ToLower(TypeIdentity):            {put: putIdentity, deletion: true},
}

// CanonicalType returns a known plain resource type in ARM's casing.
func CanonicalType(typ string) (string, bool) {
	for _, t := range []string{TypeGallery, TypeGalleryImage, TypeGalleryImageVersion, TypeImage, TypeIdentity} {
		if strings.EqualFold(t, typ) {
			return t, true
		}
	}
	return "", false
}

// PutResource creates or updates a gallery, gallery image definition or
// user-assigned identity; created tells which.
func (s *Service) PutResource(ctx context.Context, id resourceid.ID, in Input) (Resource, bool, error) {
	k, ok := kinds[strings.ToLower(id.Type())]
	if !ok || k.put == nil {
		return Resource{}, false, newErr(KindNotAllowed, "MethodNotAllowed",
			"goldsmith does not create %s resources through PUT; they are made by image template runs.", id.Type())
	}
	typ, _ := CanonicalType(id.Type())
	var r Resource
	created := false
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		if _, err := requireGroup(ctx, tx, id); err != nil {
			return err
		}
		if err := requireParent(ctx, tx, id); err != nil {
			return err
		}
		var old *Resource
		var cur Resource
		_, err := tx.GetJSON(ctx, id.String(), &cur)
		switch {
		case errors.Is(err, store.ErrNotFound):
			created = true
		case err != nil:
			return err
		default:
			old = &cur
		}
		loc := NormalizeLocation(in.Location)
		if loc == "" {
			return badRequest("LocationRequired", "The location property is required for this definition.")
		}
		props, err := k.put(s, tx, id, in, old)
		if err != nil {
			return err
		}
		if old != nil {
			r = *old
			r.Tags, r.Properties, r.Location = in.Tags, props, loc
			r.SystemData.touch(tx.Now())
		} else {
			r = Resource{ID: id.String(), Name: id.Name(), Type: typ, Location: loc, Tags: in.Tags,
				Properties: props, SystemData: newSystemData(tx.Now())}
		}
		return tx.PutJSON(ctx, r.ID, typ, r)
	})
	return r, created, err
}

// requireParent checks that a nested resource's parent exists.
func requireParent(ctx context.Context, tx *store.Tx, id resourceid.ID) error {
	if len(id.Types) < 2 {
		return nil
	}
	parent := id
	parent.Types, parent.Names = id.Types[:len(id.Types)-1], id.Names[:len(id.Names)-1]
	if _, err := tx.Get(ctx, parent.String()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return parentNotFound(parent)
		}
		return err
	}
	return nil
}

// GetResource reads a plain resource.
func (s *Service) GetResource(ctx context.Context, id string) (Resource, error) {
	var r Resource
	return r, s.viewDoc(ctx, id, &r)
}

// ListResources lists the resources of one type under a scope: a
// subscription, a resource group or a parent resource (which must exist).
func (s *Service) ListResources(ctx context.Context, typ, scope string, p Page) ([]Resource, string, error) {
	var out []Resource
	var next string
	err := s.st.View(ctx, func(tx *store.Tx) error {
		if err := requireScope(ctx, tx, scope); err != nil {
			return err
		}
		var err error
		out, next, err = list[Resource](ctx, tx, typ, scope, p)
		return err
	})
	return out, next, err
}

// requireScope checks that the group or parent resource a list is about exists.
func requireScope(ctx context.Context, tx *store.Tx, scope string) error {
	sid, err := parseID(scope)
	if err != nil {
		return err
	}
	if sid.ResourceGroup == "" {
		return nil
	}
	if _, err := tx.Get(ctx, scope); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if sid.Namespace == "" {
			return groupNotFound(sid.ResourceGroup)
		}
		return getDoc(ctx, tx, scope, &struct{}{})
	}
	return nil
}

// DeleteResource deletes a plain resource and the disk behind it; deleted
// is false when there was nothing to delete.
func (s *Service) DeleteResource(ctx context.Context, id resourceid.ID) (bool, error) {
	k, ok := kinds[strings.ToLower(id.Type())]
	if !ok || !k.deletion {
		return false, newErr(KindNotAllowed, "MethodNotAllowed", "%s resources cannot be deleted.", id.Type())
	}
	deleted := false
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var r Resource
		if _, err := tx.GetJSON(ctx, id.String(), &r); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		for _, child := range k.children {
			docs, err := tx.List(ctx, store.Query{Type: child, Scope: r.ID, Limit: 1})
			if err != nil {
				return err
			}
			if len(docs) > 0 {
				return conflict("CannotDeleteResource",
					"Can not delete resource before nested resources are deleted: %s '%s' still holds %s.", r.Type, r.Name, docs[0].ID)
			}
		}
		if state, _ := r.Properties["provisioningState"].(string); state == StateCreating && strings.EqualFold(r.Type, TypeGalleryImageVersion) {
			return conflict("OperationNotAllowed",
				"The gallery image version '%s' is being replicated; delete it when its provisioningState is Succeeded.", r.Name)
		}
		_, err := s.deleteTree(ctx, tx, r.ID)
		deleted = err == nil
		return err
	})
	return deleted, err
}

var galleryNamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.]{0,78}[A-Za-z0-9])?$`)

func putGallery(_ *Service, _ *store.Tx, id resourceid.ID, in Input, _ *Resource) (map[string]any, error) {
	if !galleryNamePattern.MatchString(id.Name()) {
		return nil, badRequest("InvalidParameter",
			"The gallery name '%s' is invalid: use 1-80 letters, digits, '_' and '.', starting and ending with a letter or digit.", id.Name())
	}
	props := copyProps(in.Properties)
	props["identifier"] = map[string]any{"uniqueName": id.Subscription + "-" + strings.ToUpper(id.Name())}
	props["provisioningState"] = StateSucceeded
	return props, nil
}

func putGalleryImage(_ *Service, _ *store.Tx, id resourceid.ID, in Input, old *Resource) (map[string]any, error) {
	props := copyProps(in.Properties)
	var problems []string
	enum := func(name string, def string, allowed ...string) {
		v, _ := props[name].(string)
		if v == "" {
			if def == "" {
				problems = append(problems, fmt.Sprintf("properties.%s is required (one of %s)", name, strings.Join(allowed, ", ")))
				return
			}
			v = def
		}
		for _, a := range allowed {
			if strings.EqualFold(a, v) {
				props[name] = a
				return
			}
		}
		problems = append(problems, fmt.Sprintf("properties.%s %q is not one of %s", name, v, strings.Join(allowed, ", ")))
	}
	enum("osType", "", "Linux", "Windows")
	enum("osState", "", "Generalized", "Specialized")
	enum("hyperVGeneration", "V1", "V1", "V2")
	enum("architecture", "x64", "x64", "Arm64")
	ident, _ := props["identifier"].(map[string]any)
	for _, f := range []string{"publisher", "offer", "sku"} {
		if v, _ := ident[f].(string); v == "" {
			problems = append(problems, fmt.Sprintf("properties.identifier.%s is required", f))
		}
	}
	if len(problems) > 0 {
		return nil, badRequest("InvalidParameter", "The gallery image definition '%s' is invalid: %s.", id.Name(), strings.Join(problems, "; "))
	}
	if old != nil {
		for _, f := range []string{"osType", "osState", "hyperVGeneration"} {
			if was, _ := old.Properties[f].(string); was != "" && !strings.EqualFold(was, props[f].(string)) {
				return nil, conflict("PropertyChangeNotAllowed", "Changing property 'galleryImage.properties.%s' is not allowed.", f)
			}
		}
		if oldIdent, _ := old.Properties["identifier"].(map[string]any); oldIdent != nil {
			for _, f := range []string{"publisher", "offer", "sku"} {
				if !strings.EqualFold(fmt.Sprint(oldIdent[f]), fmt.Sprint(ident[f])) {
					return nil, conflict("PropertyChangeNotAllowed", "Changing property 'galleryImage.properties.identifier.%s' is not allowed.", f)
				}
			}
		}
	}
	props["provisioningState"] = StateSucceeded
	return props, nil
}

func putIdentity(_ *Service, _ *store.Tx, _ resourceid.ID, _ Input, old *Resource) (map[string]any, error) {
	if old != nil {
		return old.Properties, nil
	}
	return map[string]any{
		"tenantId":    "00000000-0000-0000-0000-000000000000",
		"principalId": newGUID(),
		"clientId":    newGUID(),
	}, nil
}

func copyProps(in map[string]any) map[string]any {
	out := make(map[string]any, len(in)+2)
	for k, v := range in {
		out[k] = v
	}
	delete(out, "provisioningState")
	return out
}
