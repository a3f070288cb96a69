package template

import (
	"fmt"
	"sort"
	"strings"

	"github.com/goldsmith-dev/goldsmith/armtemplate"
)

// Parse reads one image template resource (the object you PUT, or a
// resource of a deployment template after its expressions are evaluated).
// It returns the template and its warnings; when the template has errors it
// returns an *InvalidError listing all of them (and the partial template).
func Parse(doc map[string]any, opts Options) (*Template, []Problem, error) {
	t, warns, _, err := parse(doc, opts)
	return t, warns, err
}

// parse is Parse that also returns the JSON paths of the values only a live
// ARM deployment knows (armtemplate.Unknown, from reference() and the like).
// Such a value is read as the expression it stands for, so the checks that
// need it to be present pass; what the checks say about the value itself is
// dropped, since it is not the value ARM will send, and a warning says the
// field could not be checked offline.
func parse(doc map[string]any, opts Options) (*Template, []Problem, []string, error) {
	rep := &report{}
	unresolved := map[string]armtemplate.Unknown{}
	findUnknowns("", doc, unresolved)
	ver, ok := resolveAPIVersion(doc, opts, rep)
	if !ok {
		return nil, rep.warns, nil, &InvalidError{Problems: rep.errs}
	}
	d := &decoder{rep: rep, ver: ver, opts: opts}
	t := d.template(doc)
	paths := make([]string, 0, len(unresolved))
	for p := range unresolved {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if len(paths) > 0 {
		errs := rep.errs[:0:0]
		for _, e := range rep.errs {
			if !under(e.Target, paths) {
				errs = append(errs, e)
			}
		}
		rep.errs = errs
		for _, p := range paths {
			rep.warnf(p, "this field could not be checked offline: its value comes from %s, which only a live ARM deployment knows", unresolved[p].Source)
		}
	}
	if len(rep.errs) > 0 {
		return t, rep.warns, paths, &InvalidError{Problems: rep.errs}
	}
	return t, rep.warns, paths, nil
}

// findUnknowns records the path of every unknown value in v, named as the
// decoder names paths.
func findUnknowns(path string, v any, out map[string]armtemplate.Unknown) {
	switch v := v.(type) {
	case armtemplate.Unknown:
		out[path] = v
	case map[string]any:
		for k, e := range v {
			if u, ok := armtemplate.UnknownKey(k); ok {
				out[join(path, k)] = u
				continue
			}
			findUnknowns(join(path, k), e, out)
		}
	case []any:
		for i, e := range v {
			findUnknowns(fmt.Sprintf("%s[%d]", path, i), e, out)
		}
	}
}

// under reports whether target is one of paths or inside one.
func under(target string, paths []string) bool {
	for _, p := range paths {
		if target == p || strings.HasPrefix(target, p+".") || strings.HasPrefix(target, p+"[") {
			return true
		}
	}
	return false
}

func resolveAPIVersion(doc map[string]any, opts Options, rep *report) (APIVersion, bool) {
	name := opts.APIVersion
	path := "apiVersion"
	for k, v := range doc {
		if strings.EqualFold(k, "apiVersion") {
			if u, isUnknown := v.(armtemplate.Unknown); isUnknown {
				if opts.APIVersion == "" {
					rep.errorf(CodeInvalidTemplate, k, "apiVersion comes from %s, which only a live ARM deployment knows: pass --api-version", u.Source)
					return APIVersion{}, false
				}
				continue
			}
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
		rep.errorf(CodeNoRegisteredProvider, path, "apiVersion %q is not supported; supported versions are %s", name, strings.Join(APIVersions(), ", "))
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
