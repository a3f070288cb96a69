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
	// Unresolved are the JSON paths of values only a live ARM deployment
	// knows (reference() and the like). Each is a warning: such a template
	// validates, but it cannot be built or submitted until ARM resolves them.
	Unresolved []string
}

// Form is how a file holds its image templates.
type Form int

const (
	FormResource   Form = iota // the image template resource you PUT
	FormProperties             // a bare properties object
	FormDeployment             // resources of an ARM deployment template
)

// Document is one image template resource found in a file, not yet
// validated: what a client PUTs, and what Load parses.
type Document struct {
	Form       Form
	Resource   string         // where in a deployment template, e.g. "resources[1]"
	Name       string         // as the document names it ("" when it does not)
	APIVersion string         // as the document gives it ("" when it does not)
	Body       map[string]any // the resource, its ARM expressions evaluated; armtemplate.Unknown where only a live deployment knows the value
	Warnings   []Problem      // what the deployment template left undecided about the resource (full paths)
}

// Documents finds the image templates in a file in any of the forms users
// keep them in: the resource you PUT, a bare properties object (wrapped into
// a resource in opts.Location), or an ARM deployment template whose resources
// include image templates (their expressions evaluated with opts.Parameters).
// Malformed JSON returns a *SyntaxError; a document with no image template
// returns an *InvalidError.
func Documents(data []byte, opts LoadOptions) ([]Document, error) {
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
		return deploymentDocuments(doc, opts)
	case isPropertiesOnly(doc):
		return []Document{{Form: FormProperties, Body: wrapProperties(doc, opts.Location)}}, nil
	default:
		name, _ := doc["name"].(string)
		apiVersion, _ := doc["apiVersion"].(string)
		return []Document{{Form: FormResource, Name: name, APIVersion: apiVersion, Body: doc}}, nil
	}
}

// Load reads the image templates of a file (see Documents) and parses each.
func Load(data []byte, opts LoadOptions) ([]Found, error) {
	docs, err := Documents(data, opts)
	if err != nil {
		return nil, err
	}
	found := make([]Found, len(docs))
	for i, d := range docs {
		t, warns, unresolved, err := parse(d.Body, opts.Options)
		found[i] = Found{Resource: d.Resource, Template: t, Warnings: append(d.Warnings, prefix(d.Resource, warns)...),
			Err: prefixErr(d.Resource, err)}
		for _, p := range unresolved {
			found[i].Unresolved = append(found[i].Unresolved, describePath(d.Resource, p))
		}
	}
	return found, nil
}

// isResource tells an image template resource that carries a deployment
// template's $schema (users copy it around) from a deployment template.
func isResource(doc map[string]any) bool {
	typ, _ := doc["type"].(string)
	_, hasResources := doc["resources"]
	return !hasResources && (strings.EqualFold(typ, ResourceType) || strings.EqualFold(typ, legacyResourceTyp))
}

func deploymentDocuments(doc map[string]any, opts LoadOptions) ([]Document, error) {
	ctx := armtemplate.Context{
		SubscriptionID: or(opts.SubscriptionID, DefaultSubscriptionID),
		ResourceGroup:  or(opts.ResourceGroup, DefaultResourceGroup),
		Location:       or(opts.Location, DefaultLocation),
		DeploymentName: "goldsmith",
		Parameters:     opts.Parameters,
	}
	// Only image templates are evaluated: other resources (role assignments,
	// deployment scripts) are not goldsmith's to check.
	resources, err := armtemplate.ImageTemplates(doc, ctx)
	if err != nil {
		return nil, armProblems(err)
	}
	var docs []Document
	for _, r := range resources {
		if !strings.EqualFold(r.Type, ResourceType) && !strings.EqualFold(r.Type, legacyResourceTyp) {
			continue
		}
		doc := Document{Form: FormDeployment, Resource: r.Path, Name: r.Name, APIVersion: r.APIVersion, Body: r.Body}
		for _, w := range r.Warnings {
			doc.Warnings = append(doc.Warnings, Problem{Code: "Warning", Target: w.Path, Message: w.Msg})
		}
		docs = append(docs, doc)
	}
	if len(docs) == 0 {
		return nil, invalid("resources", "the deployment template has no %s resource", ResourceType)
	}
	return docs, nil
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
