package template

import (
	"fmt"
	"strings"
)

// Parse reads one image template resource (the object you PUT, or a
// resource of a deployment template after its expressions are evaluated).
// It returns the template and its warnings; when the template has errors it
// returns an *InvalidError listing all of them (and the partial template).
func Parse(doc map[string]any, opts Options) (*Template, []Problem, error) {
	rep := &report{}
	ver, ok := resolveAPIVersion(doc, opts, rep)
	if !ok {
		return nil, rep.warns, &InvalidError{Problems: rep.errs}
	}
	d := &decoder{rep: rep, ver: ver, opts: opts}
	t := d.template(doc)
	if len(rep.errs) > 0 {
		return t, rep.warns, &InvalidError{Problems: rep.errs}
	}
	return t, rep.warns, nil
}

func resolveAPIVersion(doc map[string]any, opts Options, rep *report) (APIVersion, bool) {
	name := opts.APIVersion
	path := "apiVersion"
	for k, v := range doc {
		if strings.EqualFold(k, "apiVersion") {
			s, isStr := v.(string)
			if !isStr {
				rep.errorf(CodeInvalidTemplate, k, "apiVersion must be a string such as %q", LatestAPIVersion())
				return APIVersion{}, false
			}
			// The document's own apiVersion wins, unless it is missing or an
			// unevaluated expression and the caller supplied one.
			if opts.APIVersion == "" || (s != "" && !strings.HasPrefix(s, "[")) {
				name, path = s, k
			}
		}
	}
	if name == "" {
		rep.errorf(CodeInvalidTemplate, "apiVersion", "the template has no apiVersion: add one (for example %q) or pass --api-version", LatestAPIVersion())
		return APIVersion{}, false
	}
	ver, ok := LookupAPIVersion(name)
	if !ok && strings.HasPrefix(name, "[") {
		rep.errorf(CodeInvalidTemplate, path, "apiVersion %q is an ARM template expression, but this file is not an ARM deployment template (no $schema and resources): give a concrete apiVersion or pass --api-version", name)
		return APIVersion{}, false
	}
	if !ok {
		rep.errorf(CodeInvalidTemplate, path, "apiVersion %q is not supported; supported versions are %s", name, strings.Join(APIVersions(), ", "))
		return APIVersion{}, false
	}
	return ver, true
}

// isPropertiesOnly tells a bare properties object (source/customize/distribute
// at the top, no properties key) from a resource.
func isPropertiesOnly(doc map[string]any) bool {
	if _, ok := doc["properties"]; ok {
		return false
	}
	_, hasSource := doc["source"]
	_, hasDistribute := doc["distribute"]
	_, hasType := doc["type"]
	return (hasSource || hasDistribute) && !hasType
}

// wrapProperties turns a bare properties object into a resource.
func wrapProperties(doc map[string]any, location string) map[string]any {
	res := map[string]any{"type": ResourceType, "properties": doc}
	if location != "" {
		res["location"] = location
	}
	return res
}

func describePath(prefix, target string) string {
	switch {
	case prefix == "":
		return target
	case target == "":
		return prefix
	}
	return fmt.Sprintf("%s.%s", prefix, target)
}
