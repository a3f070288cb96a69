// Package corpus reads, for tests, what the project keeps beside it in
// ../shared: the example templates (shared/templates) and the corpus of real
// AIB templates from public repositories (shared/corpus), with the corpus's
// placeholders filled in and its parameter files paired with their
// templates the way the repositories' READMEs use them. The files are read
// in place, never copied into the project (they are other people's files).
//
// A test that needs them skips when they are absent, except in CI: there
// (GOLDSMITH_REQUIRE_CORPUS or CI set, as .ci/run does) a missing corpus
// fails the test, so a green CI run means the corpus was checked.
package corpus

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/armtemplate"
	"github.com/goldsmith-dev/goldsmith/template"
)

// Required reports whether the shared files must be present: in CI.
func Required() bool {
	return os.Getenv("GOLDSMITH_REQUIRE_CORPUS") != "" || os.Getenv("CI") != ""
}

// Shared returns the directory sub of the shared files: $GOLDSMITH_SHARED/sub,
// or ../shared/sub from the module root. When it is absent the test fails
// if Required, and is skipped otherwise.
func Shared(t testing.TB, sub string) string {
	t.Helper()
	root := os.Getenv("GOLDSMITH_SHARED")
	if root == "" {
		mod, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		root = filepath.Join(mod, "..", "shared")
		if _, err := os.Stat(root); err != nil {
			// A clone (CI's clean one) finds the shared files beside the
			// repository it was cloned from.
			if origin := localOrigin(mod); origin != "" {
				root = filepath.Join(origin, "..", "shared")
			}
		}
	}
	dir := filepath.Join(root, sub)
	if _, err := os.Stat(dir); err != nil {
		if Required() {
			t.Fatalf("the shared %s is required here (GOLDSMITH_REQUIRE_CORPUS or CI is set) but absent: %v; set GOLDSMITH_SHARED to the shared directory", sub, err)
		}
		t.Skipf("the shared %s is absent (%v); set GOLDSMITH_SHARED to the shared directory", sub, err)
	}
	return dir
}

// localOrigin is the path of the repository dir was cloned from, when that
// is a directory on this machine.
func localOrigin(dir string) string {
	out, err := exec.Command("git", "-C", dir, "config", "--get", "remote.origin.url").Output()
	if err != nil {
		return ""
	}
	url := strings.TrimPrefix(strings.TrimSpace(string(out)), "file://")
	if !filepath.IsAbs(url) {
		return ""
	}
	if st, err := os.Stat(url); err != nil || !st.IsDir() {
		return ""
	}
	return url
}

// moduleRoot finds the directory holding go.mod above the working directory
// (a test runs in its package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// Case is one way a corpus file is checked.
type Case struct {
	// Name is the file under corpus/templates, followed by " with " and its
	// parameter file when one is used.
	Name string
	File string
	// Data is the file with its documented placeholders filled in; for a
	// file broken as committed, the file as committed.
	Data []byte
	// Filled is a broken file with its placeholders filled in.
	Filled []byte
	// Options are what to load it with: the apiVersion its repository
	// deploys with (when it carries none) and a value for every parameter.
	Options template.LoadOptions
	// Broken marks a file the manifest lists as broken as committed.
	Broken bool
}

// Corpus is every case of the corpus, and what was not a case.
type Corpus struct {
	Files          int // .json files under corpus/templates
	ParameterFiles int // used with their templates rather than on their own
	NotInManifest  int
	Cases          []Case
}

// DefaultAPIVersion is used for a file that carries no apiVersion and whose
// repository names none: the version current when most of the corpus was
// written.
const DefaultAPIVersion = "2022-07-01"

// Load reads the corpus (see Shared for when it is absent).
func Load(t testing.TB) *Corpus {
	t.Helper()
	dir := Shared(t, "corpus")
	rows, broken, companions, err := readManifest(dir)
	if err != nil {
		t.Fatalf("corpus manifest: %v", err)
	}
	root := filepath.Join(dir, "templates")
	brokenSet := map[string]bool{}
	for _, b := range broken {
		brokenSet[b] = true
	}
	companionFiles := map[string]bool{}
	for _, cs := range companions {
		for _, c := range cs {
			companionFiles[c] = true
		}
	}
	c := &Corpus{}
	var files []string
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".json") {
			rel, _ := filepath.Rel(root, path)
			files = append(files, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	c.Files = len(files)
	for _, rel := range files {
		if companionFiles[rel] {
			c.ParameterFiles++
			continue
		}
		row, listed := rows[rel]
		if !listed {
			c.NotInManifest++
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if brokenSet[rel] {
			c.Cases = append(c.Cases, Case{Name: rel, File: rel, Data: data, Filled: substitute(data, row), Broken: true,
				Options: options(data, row, nil)})
			continue
		}
		filled := substitute(data, row)
		c.Cases = append(c.Cases, Case{Name: rel, File: rel, Data: filled, Options: options(filled, row, nil)})
		for _, comp := range companions[rel] {
			p, err := os.ReadFile(filepath.Join(root, comp))
			if err != nil {
				t.Fatal(err)
			}
			given, err := armtemplate.ParseParameterFile(substitute(p, row))
			if err != nil {
				t.Fatalf("%s: parameter file %s: %v", rel, comp, err)
			}
			// Parameter files ship with "" where the user fills in a value.
			for k, v := range given {
				if v == "" {
					given[k] = valueFor(k, row)
				}
			}
			c.Cases = append(c.Cases, Case{Name: rel + " with " + comp, File: rel, Data: filled, Options: options(filled, row, given)})
		}
	}
	return c
}

func options(data []byte, row corpusRow, given map[string]any) template.LoadOptions {
	opts := template.LoadOptions{Options: template.Options{APIVersion: row.apiHint}, Parameters: fillParameters(data, row, given)}
	if opts.APIVersion == "" {
		opts.APIVersion = DefaultAPIVersion
	}
	return opts
}

// corpusRow is what the corpus manifest says about one file.
type corpusRow struct {
	file         string
	apiHint      string   // the apiVersion the file uses or its repository deploys with
	placeholders []string // <tokens> to substitute
	params       []string // ARM parameters without a default
	brokenJSON   bool     // INVALID JSON as written
	windows      bool     // the manifest's OS column
}

var (
	hintRe        = regexp.MustCompile(`(\d{4}-\d{2}-\d{2}(?:-preview)?)(?: \([^)]*?x(\d+)\))?`)
	placeholderRe = regexp.MustCompile(`<[^<>|\s]+>`)
	paramRe       = regexp.MustCompile(`param:([A-Za-z0-9_\-]+)`)
)

func readManifest(dir string) (rows map[string]corpusRow, broken []string, companions map[string][]string, err error) {
	f, err := os.Open(filepath.Join(dir, "README.md"))
	if err != nil {
		return nil, nil, nil, err
	}
	defer f.Close()
	rows = map[string]corpusRow{}
	companions = map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			section = line
			continue
		}
		switch {
		case strings.Contains(section, "broken as committed") && strings.HasPrefix(line, "- `"):
			broken = append(broken, strings.SplitN(line[3:], "`", 2)[0])
		case strings.Contains(section, "Companion") && strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| file") && !strings.HasPrefix(line, "|---"):
			cols := strings.Split(line, " | ")
			if len(cols) >= 3 {
				target := strings.TrimSuffix(strings.TrimSpace(cols[2]), " |")
				companions[target] = append(companions[target], strings.TrimPrefix(cols[0], "| "))
			}
		case section == "## Templates" && strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| file") && !strings.HasPrefix(line, "|---"):
			cols := strings.Split(line, " | ")
			if len(cols) < 9 {
				continue
			}
			r := corpusRow{file: strings.TrimPrefix(cols[0], "| "), brokenJSON: strings.Contains(cols[7], "INVALID JSON")}
			r.windows = strings.TrimSpace(cols[3]) == "Windows"
			// The supported version the repository mentions most (its
			// scripts also name other resource providers' versions).
			best := 0
			for _, m := range hintRe.FindAllStringSubmatch(cols[2], -1) {
				if _, ok := template.LookupAPIVersion(m[1]); !ok {
					continue
				}
				n := 1
				if m[2] != "" {
					n, _ = strconv.Atoi(m[2])
				}
				if n > best {
					r.apiHint, best = m[1], n
				}
			}
			r.placeholders = placeholderRe.FindAllString(cols[8], -1)
			for _, m := range paramRe.FindAllStringSubmatch(cols[8], -1) {
				r.params = append(r.params, m[1])
			}
			rows[r.file] = r
		}
	}
	return rows, broken, companions, sc.Err()
}

const corpusSub = "00000000-0000-0000-0000-000000000001"

// valueFor invents a plausible value for a placeholder or parameter by its
// name, the way a user following the repository's README would fill it in.
func valueFor(name string, row corpusRow) string {
	apiHint := row.apiHint
	n := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]`).ReplaceAllString(name, ""))
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(n, s) {
				return true
			}
		}
		return false
	}
	switch {
	case has("apiversion"):
		if apiHint == "" {
			return "2022-07-01"
		}
		return apiHint
	case has("subscr", "subcr") || n == "subid":
		return corpusSub
	case has("resourcegroupid"):
		return "/subscriptions/" + corpusSub + "/resourceGroups/rg-images"
	case has("vmsize"): // before "msi", which "vmsize" contains
		return "Standard_D2s_v3"
	case has("versionnumber"):
		return "1.0.0"
	case has("imgbuilderid", "identityid", "useridentity", "msi"):
		return "/subscriptions/" + corpusSub + "/resourcegroups/rg-images/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aibIdentity"
	case has("principalid"):
		return "11111111-1111-1111-1111-111111111111"
	case has("region2", "replicationregion"):
		return "eastus"
	case has("region", "location"):
		return "westus2"
	// The danielsollondon ARM templates concatenate an id prefix and a name.
	case has("resgroupid"):
		return "/subscriptions/" + corpusSub + "/resourceGroups/rg-images/providers/Microsoft.Compute/images/"
	case n == "galleryimageid":
		return "/subscriptions/" + corpusSub + "/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/gal/images/"
	case has("imagedefinitionid", "imagedefinnitionid", "imagedefid", "sigimageid"):
		return "/subscriptions/" + corpusSub + "/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/gal/images/def"
	case has("galleryid"):
		return "/subscriptions/" + corpusSub + "/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/gal"
	case has("scriptpath", "scriptfile"):
		return "https://example.com/scripts/" + n + ".sh"
	case has("sigdefimgversionid", "imageversionid"):
		return "/subscriptions/" + corpusSub + "/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/gal/images/def/versions/1.0.0"
	case has("sourceimageid", "srcimageid"):
		return "/subscriptions/" + corpusSub + "/resourceGroups/rg-images/providers/Microsoft.Compute/images/src"
	case has("checksum"):
		return strings.Repeat("ab", 32)
	case has("link", "url", "uri", "pathtofile"):
		return "https://example.com/files/" + n
	case has("apiversion"):
		return apiHint
	case has("vmsize"):
		return "Standard_D2s_v3"
	case has("osdisk", "sizeingb"):
		return "30"
	case has("timeout", "minutes"):
		return "60"
	case n == "type" || has("imgsource"):
		return "PlatformImage"
	case has("publisher") && row.windows:
		return "MicrosoftWindowsDesktop"
	case has("publisher"):
		return "Canonical"
	case has("offer") && row.windows:
		return "windows-10"
	case has("offer"):
		return "UbuntuServer"
	case has("sku") && row.windows:
		return "win10-22h2-avd"
	case has("sku"):
		return "18.04-LTS"
	case n == "version" || has("imageversion", "imgbase"):
		return "1.0.0"
	case has("year"):
		return "2024"
	case has("rg", "resourcegroup"):
		return "rg-" + n
	}
	return "p" + n
}

// paramValue invents a value of the declared type for a parameter without a default.
func paramValue(name, typ string, row corpusRow) any {
	switch strings.ToLower(typ) {
	case "int":
		return 1
	case "bool":
		return false
	case "array":
		return []any{}
	case "object", "secureobject":
		return map[string]any{}
	}
	return valueFor(name, row)
}

// anyPlaceholder matches the <token> convention of Microsoft's quickstarts.
var anyPlaceholder = regexp.MustCompile(`<[A-Za-z][A-Za-z0-9_\-]*>`)

// substitute fills in placeholders the way the repositories' READMEs do
// (sed over the file): first the tokens the manifest documents, as text, so
// files that are not JSON until then parse; then every remaining <token> in
// JSON keys and values, except inside inline commands, where <...> is shell.
func substitute(data []byte, row corpusRow) []byte {
	v, err := template.DecodeJSON(data)
	if err != nil {
		// Not JSON until its placeholders are filled in (bare <minutes>).
		s := string(data)
		for _, p := range row.placeholders {
			s = strings.ReplaceAll(s, p, valueFor(strings.Trim(p, "<>"), row))
		}
		if v, err = template.DecodeJSON([]byte(s)); err != nil {
			return []byte(s)
		}
	}
	out, err := json.Marshal(fillTokens(v, "", row))
	if err != nil {
		return data
	}
	return out
}

func fillTokens(v any, key string, row corpusRow) any {
	if strings.EqualFold(key, "inline") {
		return v
	}
	fill := func(s string) string {
		whole := anyPlaceholder.FindString(s) == s
		return anyPlaceholder.ReplaceAllStringFunc(s, func(tok string) string {
			name := strings.Trim(tok, "<>")
			if whole {
				// The property says what kind of id a whole-value token stands for.
				switch strings.ToLower(key) {
				case "imageversionid":
					name = "imageVersionId"
				case "imageid":
					name = "sourceImageId"
				}
			}
			v := valueFor(name, row)
			if !whole && strings.HasPrefix(v, "/") {
				// Inside a longer id a token is one segment: a name.
				v = "p" + strings.ToLower(name)
			}
			return v
		})
	}
	switch t := v.(type) {
	case string:
		return fill(t)
	case []any:
		for i, e := range t {
			t[i] = fillTokens(e, key, row)
		}
		return t
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[fill(k)] = fillTokens(e, k, row)
		}
		return out
	}
	return v
}

// fillParameters supplies every parameter that has no default.
func fillParameters(data []byte, row corpusRow, given map[string]any) map[string]any {
	params := map[string]any{}
	for k, v := range given {
		params[k] = v
	}
	v, err := template.DecodeJSON(data)
	if err != nil {
		return params
	}
	doc, _ := v.(map[string]any)
	decls, _ := doc["parameters"].(map[string]any)
	for name, d := range decls {
		decl, _ := d.(map[string]any)
		if _, ok := decl["defaultValue"]; ok {
			continue
		}
		if _, ok := params[name]; ok {
			continue
		}
		typ, _ := decl["type"].(string)
		if allowed, ok := decl["allowedValues"].([]any); ok && len(allowed) > 0 {
			params[name] = allowed[0]
			continue
		}
		params[name] = paramValue(name, typ, row)
	}
	return params
}
