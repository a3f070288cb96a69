package template

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goldsmith-dev/goldsmith/armtemplate"
)

// LoadOptions tune Load.
type LoadOptions struct {
	Options
	// Parameters for ARM deployment templates (from a parameter file).
	Parameters map[string]any
	// The deployment scope ARM functions such as resourceGroup() and
	// subscription() answer with. Location is also used for a bare
	// properties document, which carries none.
	SubscriptionID, ResourceGroup, Location string
}

// Scope defaults for offline use.
const (
	DefaultSubscriptionID = "00000000-0000-0000-0000-000000000000"
	DefaultResourceGroup  = "goldsmith"
	DefaultLocation       = "westus2"
)

// Found is one image template found in a file.
type Found struct {
	Resource string    // where in the file: "" for a resource document, "resources[1]" in a deployment template
	Template *Template // nil when the document could not be read at all
	Warnings []Problem
	Err      error // *InvalidError when the template is invalid
}

// Load reads a file holding an image template in any of the forms users keep
// them in: the resource you PUT, a bare properties object, or an ARM
// deployment template whose resources include image templates (their
// expressions evaluated with opts.Parameters). Malformed JSON returns a
// *SyntaxError; a document with nothing to validate returns an *InvalidError.
func Load(data []byte, opts LoadOptions) ([]Found, error) {
	v, err := DecodeJSON(data)
	if err != nil {
		return nil, err
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, invalid("", "the file must hold a JSON object (an image template or an ARM deployment template), not %s", typeName(v))
	}
	switch {
	case armtemplate.IsDeploymentTemplate(doc) && !isResource(doc):
		return loadDeployment(doc, opts)
	case isPropertiesOnly(doc):
		t, warns, err := Parse(wrapProperties(doc, opts.Location), opts.Options)
		return []Found{{Template: t, Warnings: warns, Err: err}}, nil
	default:
		t, warns, err := Parse(doc, opts.Options)
		return []Found{{Template: t, Warnings: warns, Err: err}}, nil
	}
}

// isResource tells an image template resource that carries a deployment
// template's $schema (users copy it around) from a deployment template.
func isResource(doc map[string]any) bool {
	typ, _ := doc["type"].(string)
	_, hasResources := doc["resources"]
	return !hasResources && (strings.EqualFold(typ, ResourceType) || strings.EqualFold(typ, legacyResourceTyp))
}

func loadDeployment(doc map[string]any, opts LoadOptions) ([]Found, error) {
	ctx := armtemplate.Context{
		SubscriptionID: or(opts.SubscriptionID, DefaultSubscriptionID),
		ResourceGroup:  or(opts.ResourceGroup, DefaultResourceGroup),
		Location:       or(opts.Location, DefaultLocation),
		DeploymentName: "goldsmith",
		Parameters:     opts.Parameters,
	}
	// Only image templates are evaluated: other resources (role assignments,
	// deployment scripts) often call reference(), which needs live Azure.
	resources, err := armtemplate.ImageTemplates(doc, ctx)
	if err != nil {
		return nil, armProblems(err)
	}
	var found []Found
	for _, r := range resources {
		if !strings.EqualFold(r.Type, ResourceType) && !strings.EqualFold(r.Type, legacyResourceTyp) {
			continue
		}
		t, warns, err := Parse(r.Body, opts.Options)
		found = append(found, Found{Resource: r.Path, Template: t, Warnings: prefix(r.Path, warns), Err: prefixErr(r.Path, err)})
	}
	if len(found) == 0 {
		return nil, invalid("resources", "the deployment template has no %s resource", ResourceType)
	}
	return found, nil
}

// armProblems turns evaluation errors into template problems.
func armProblems(err error) error {
	var list armtemplate.ErrorList
	var one *armtemplate.Error
	switch {
	case errors.As(err, &list):
	case errors.As(err, &one):
		list = armtemplate.ErrorList{one}
	default:
		return invalid("", "evaluate the deployment template: %v", err)
	}
	inv := &InvalidError{}
	for _, e := range list {
		msg := e.Msg
		if e.Column > 0 {
			msg += fmt.Sprintf(" (at column %d of the expression)", e.Column)
		}
		inv.Problems = append(inv.Problems, Problem{Code: CodeInvalidTemplate, Target: e.Path, Message: msg})
	}
	return inv
}

func invalid(target, format string, args ...any) error {
	return &InvalidError{Problems: []Problem{{Code: CodeInvalidTemplate, Target: target, Message: fmt.Sprintf(format, args...)}}}
}

func prefix(path string, ps []Problem) []Problem {
	out := make([]Problem, len(ps))
	for i, p := range ps {
		p.Target = describePath(path, p.Target)
		out[i] = p
	}
	return out
}

func prefixErr(path string, err error) error {
	var inv *InvalidError
	if !errors.As(err, &inv) {
		return err
	}
	return &InvalidError{Problems: prefix(path, inv.Problems)}
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
