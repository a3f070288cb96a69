package template

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/goldsmith-dev/goldsmith/armtemplate"
)

// The corpus of real templates from public repositories lives beside the
// project (../shared/corpus); it is read in place, never copied here.
const corpusDir = "../../shared/corpus"

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

func readCorpusManifest(t *testing.T) (rows map[string]corpusRow, broken []string, companions map[string][]string) {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "README.md"))
	if err != nil {
		t.Skipf("corpus not present: %v", err)
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
				if _, ok := LookupAPIVersion(m[1]); !ok {
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
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows, broken, companions
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
	v, err := DecodeJSON(data)
	if err != nil {
		// Not JSON until its placeholders are filled in (bare <minutes>).
		s := string(data)
		for _, p := range row.placeholders {
			s = strings.ReplaceAll(s, p, valueFor(strings.Trim(p, "<>"), row))
		}
		if v, err = DecodeJSON([]byte(s)); err != nil {
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
	v, err := DecodeJSON(data)
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

// TestCorpus runs every real template through Load: files broken as
// committed must be refused with a clear message; every other file, with its
// documented placeholders filled in, must validate unless it is listed in
// corpusExpectedInvalid with the reason AIB would refuse it too. Nothing may
// panic.
func TestCorpus(t *testing.T) {
	rows, broken, companions := readCorpusManifest(t)
	root := filepath.Join(corpusDir, "templates")
	brokenSet := map[string]bool{}
	for _, b := range broken {
		brokenSet[b] = true
	}
	var files []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".json") {
			rel, _ := filepath.Rel(root, path)
			files = append(files, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	companionFiles := map[string]bool{}
	for _, cs := range companions {
		for _, c := range cs {
			companionFiles[c] = true
		}
	}
	counts := map[string]int{}
	reasons := map[string][]string{}
	for _, rel := range files {
		if companionFiles[rel] {
			counts["parameter files (used with their templates)"]++
			continue
		}
		row, listed := rows[rel]
		if !listed {
			counts["not in the manifest"]++
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if brokenSet[rel] {
			counts["broken as committed"]++
			err := loadErr(data, row, nil)
			if err == nil {
				t.Errorf("%s is broken as committed but was accepted", rel)
				continue
			}
			if msg := err.Error(); len(msg) < 20 {
				t.Errorf("%s: message too terse to help: %q", rel, msg)
			}
			counts["broken as committed: refused"]++
			// With its placeholders filled in, it must still not crash.
			_ = loadErr(substitute(data, row), row, nil)
			continue
		}
		sets := [][]byte{nil}
		for _, c := range companions[rel] {
			p, err := os.ReadFile(filepath.Join(root, c))
			if err != nil {
				t.Fatal(err)
			}
			sets = append(sets, p)
		}
		for i, paramFile := range sets {
			name := rel
			if i > 0 {
				name += " with " + companions[rel][i-1]
			}
			var given map[string]any
			if paramFile != nil {
				if given, err = armtemplate.ParseParameterFile(substitute(paramFile, row)); err != nil {
					t.Errorf("%s: parameter file: %v", name, err)
					continue
				}
				// Parameter files ship with "" where the user fills in a value.
				for k, v := range given {
					if v == "" {
						given[k] = valueFor(k, row)
					}
				}
			}
			counts["templates checked"]++
			err := loadErr(substitute(data, row), row, given)
			if err == nil {
				counts["valid"]++
				continue
			}
			if why, ok := corpusExpectedInvalid[name]; ok {
				counts["invalid, as AIB would say too"]++
				reasons[why] = append(reasons[why], name)
				continue
			}
			counts["INVALID (unexpected)"]++
			t.Errorf("%s: %v", name, err)
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-50s %d", k, counts[k])
	}
	for why, names := range reasons {
		t.Logf("expected invalid (%s): %s", why, strings.Join(names, ", "))
	}
}

// loadErr loads a corpus file and returns its first error, if any.
func loadErr(data []byte, row corpusRow, given map[string]any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("PANIC: %v", r)
		}
	}()
	opts := LoadOptions{Options: Options{APIVersion: row.apiHint}, Parameters: fillParameters(data, row, given)}
	if opts.APIVersion == "" {
		// No hint: the version current when most of the corpus was written.
		opts.APIVersion = "2022-07-01"
	}
	found, err := Load(data, opts)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range found {
		if f.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Resource, f.Err))
		}
	}
	return errors.Join(errs...)
}

// corpusExpectedInvalid lists corpus files that stay invalid after their
// placeholders are filled in, each with the reason AIB refuses them too.
var corpusExpectedInvalid = map[string]string{
	"bradcstevens_azvmimagebuilder/armTemplates/03_pir_image_deploy.json with bradcstevens_azvmimagebuilder/armTemplates/03_pir_image_params.json":                                                 "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"bradcstevens_azvmimagebuilder/armTemplates/03_pir_image_deploy.json with bradcstevens_azvmimagebuilder/armTemplates/rhel_iso_1customize_mdi_params.json":                                      "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"bradcstevens_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with bradcstevens_azvmimagebuilder/armTemplates/azplatform_image_params_sig.json":                                 "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"bradcstevens_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with bradcstevens_azvmimagebuilder/armTemplates/azplatform_image_params_sigmdi.json":                              "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"bradcstevens_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with bradcstevens_azvmimagebuilder/armTemplates/rhel_iso_image_params_sigmdi.json":                                "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_params_sig.json":                           "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_params_sigmdi.json":                        "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with danielsollondon_azvmimagebuilder/armTemplates/rhel_iso_image_params_mdi.json":                             "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json with danielsollondon_azvmimagebuilder/armTemplates/rhel_iso_image_params_sigmdi.json":                          "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"danielsollondon_azvmimagebuilder/solutions/3_rhel_sig_vhd/rhel_iso_image_deploy_sigmdi.json with danielsollondon_azvmimagebuilder/solutions/3_rhel_sig_vhd/rhel_iso_image_params_sigmdi.json": "its parameter file declares parameters the template does not have (ARM refuses undeclared parameters)",
	"345Nathan-Harrison_Testing/Image-Builder/Template/Win11Template.json":                                                                                                                         "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
	"345Nathan-Harrison_Testing/_history/7ed230028b/Image-Builder/Win11Template.json":                                                                                                              "no identity at api-version 2020-02-14 or later, where AIB requires one",
	"Azure_azvmimagebuilder/quickquickstarts/4_Creating_a_Custom_Linux_Image_to_VHD/helloImageTemplateVHD.json":                                                                                    "no identity at api-version 2020-02-14 or later, where AIB requires one",
	"Everink_AzureImageBuilder/AzureImageBuilder.json":                                                                                                                              "galleryImageId built from parameters left empty or malformed",
	"Martijn125_AVD/armTemplateWVD.json":                                                                                                                                            "parameter declarations without a valid type (ARM refuses the deployment)",
	"TheCloudTheory_Blog/content/1/image-template-sub.json":                                                                                                                         "identity object without a type",
	"TheCloudTheory_Blog/content/1/image-template.json":                                                                                                                             "identity object without a type",
	"achawla5_PSScripts/Templates/AddOfficeAppsTemplate.json":                                                                                                                       "two customizers share a name; AIB requires unique names",
	"achawla5_PSScripts/Templates/RemoveOfficeAppsTemplate.json":                                                                                                                    "two customizers share a name; AIB requires unique names",
	"achawla5_PSScripts/_history/4357acc0e8/Templates/TestTemplate.json":                                                                                                            "empty location",
	"adybfadel_azure-image-builder/json/linux-vm-image-template.json":                                                                                                               "empty location",
	"adybfadel_azure-image-builder/json/ubuntu1804-image-template.json":                                                                                                             "empty location",
	"aniisch_AIB_config/helloImageTemplateLinux.json":                                                                                                                               "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
	"bradcstevens_azvmimagebuilder/armTemplates/03_pir_image_deploy.json":                                                                                                           "its parameter files declare parameters the template does not have (ARM refuses undeclared parameters)",
	"bradcstevens_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json":                                                                                                   "its parameter files declare parameters the template does not have (ARM refuses undeclared parameters)",
	"bradcstevens_azvmimagebuilder/imageTemplates/rhel73_iso_1customize_sigmdi.json":                                                                                                "ISO source whose URL and checksum parameters are left empty",
	"bradcstevens_azvmimagebuilder/imageTemplates/ubuntu1804_mp_1customize_mdi.json":                                                                                                "Shell customizer whose script parameter is left empty",
	"casa-de-vops_azvmimagebuilder/_history/1b4c5679a2/templates/1_Creating_a_Custom_Linux_Shared_Image_Gallery_Image/GoldenImage.json":                                             "identity type UserAssigned without an identity id",
	"casa-de-vops_azvmimagebuilder/_history/551dd6dd2d/templates/0_Creating_a_Custom_Linux_Managed_Image/helloImageTemplateLinux.json":                                              "identity type UserAssigned without an identity id",
	"casa-de-vops_azvmimagebuilder/quickquickstarts/0_Creating_a_Custom_Linux_Managed_Image/helloImageTemplateLinux.json":                                                           "identity type UserAssigned without an identity id",
	"casa-de-vops_azvmimagebuilder/quickquickstarts/1_Creating_a_Custom_Linux_Shared_Image_Gallery_Image/helloImageTemplateforSIG.json":                                             "identity type UserAssigned without an identity id",
	"cramboeck_AzureImageBuilder/templates/1_image_template.json":                                                                                                                   "no identity at api-version 2020-02-14 or later, where AIB requires one",
	"danielsollondon_azvmimagebuilder/_history/2834d0fcbc/solutions/3_rhel_sig_vhd/rhel_iso_image_deploy_sigvhd.json":                                                               "galleryImageId built from parameters left empty or malformed",
	"danielsollondon_azvmimagebuilder/_history/8542e1545a/quickquickstarts/6_Creating_a_Custom_Image_using_Red_Hat_Subscription_Licences_to_VHD/helloImageTemplateRhelBYOSVhd.json": "VHD distribution in api-version 2018-02-01-preview, which has none",
	"danielsollondon_azvmimagebuilder/_history/856f878f9f/quickquickstarts/2_Creating_a_Custom_Win_Shared_Image_Gallery_Image_from_SIG/helloImageTemplateforSIGfromWinSIG.json":     "the deployment resource has no name (ARM requires one)",
	"danielsollondon_azvmimagebuilder/armTemplates/azplatform_image_deploy_mdi.json":                                                                                                "its parameter files declare parameters the template does not have (ARM refuses undeclared parameters)",
	"danielsollondon_azvmimagebuilder/rawImageBuilderConfigTemplates/rhel73_iso_1customize_sigmdi.json":                                                                             "ISO source whose URL and checksum parameters are left empty",
	"danielsollondon_azvmimagebuilder/rawImageBuilderConfigTemplates/ubuntu1804_mp_1customize_mdi.json":                                                                             "Shell customizer whose script parameter is left empty",
	"danielsollondon_azvmimagebuilder/solutions/3_Building_Images_Azure_Stack_Public/rhel_iso_image_deploy_sigvhd.json":                                                             "galleryImageId built from parameters left empty or malformed",
	"danielsollondon_azvmimagebuilder/solutions/3_rhel_sig_vhd/rhel_iso_image_deploy_sigmdi.json":                                                                                   "inline holds a nested array",
	"danielsollondon_azvmimagebuilder/testingArea/7_Creating_Custom_Win_Image_using_MSI_to_Access_Storage/helloImageTemplateMsi.json":                                               "a placeholder left unclosed (<pathToPowerShellFileInAzureStorage) where the script URL belongs",
	"danielsollondon_azvmimagebuilder/testingArea/suse/0_Creating_a_Custom_SLES_Managed_Image/SLESImageTemplateLinux.json":                                                          "uses 'script', which api-version 2019-05-01-preview renamed 'scriptUri'",
	"ganeshkumarsm_AzureImageBuilder/AIBWin10MS.json":                                                                                                                               "sharedImage without replicationRegions at the api-version its repository deploys with (targetRegions needs 2022-07-01)",
	"gbeaud_avd-automated-pipeline/avd-azure-image-builder/Backup files/helloImageTemplateWin.json":                                                                                 "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
	"gbeaud_avd-automated-pipeline/avd-azure-image-builder/helloImageTemplateWin.json":                                                                                              "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
	"gbeaud_avd-automated-pipeline/helloImageTemplateWin.json":                                                                                                                      "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
	"jamasten_AzureImageBuilder/solution.json":                                                                                                                                      "the image template depends on reference() or a linked deployment, which need live Azure",
	"jamasten_AzureImageBuilderAutomation/_history/0d13cdba26/solution.json":                                                                                                        "the image template depends on reference() or a linked deployment, which need live Azure",
	"kkamegawa_windowsjpimagebuilder/_history/13597b9d6b/windows2019image_gen2.json":                                                                                                "two customizers share a name; AIB requires unique names",
	"kkamegawa_windowsjpimagebuilder/_history/2e2e0e57e9/windows2022image.json":                                                                                                     "two customizers share a name; AIB requires unique names",
	"kkamegawa_windowsjpimagebuilder/_history/4f9e283df7/windows2022image.json":                                                                                                     "two customizers share a name; AIB requires unique names",
	"kkamegawa_windowsjpimagebuilder/windows2019image.json":                                                                                                                         "two customizers share a name; AIB requires unique names",
	"kkamegawa_windowsjpimagebuilder/windows2022image.json":                                                                                                                         "two customizers share a name; AIB requires unique names",
	"lahavana_AIB_customization/armTemplateWVD_V2.json":                                                                                                                             "validExitCodes given as a string",
	"lnochili_E2E_Example_Workflow_AzureImageBuilder/aib-template.json":                                                                                                             "File customizer writes outside /tmp on Linux, which AIB does not allow",
	"lnochili_E2E_Example_Workflow_AzureImageBuilder/aib_template.json":                                                                                                             "File customizer writes outside /tmp on Linux, which AIB does not allow",
	"lnochili_E2E_Example_Workflow_AzureImageBuilder/arm-template/aib_template.json":                                                                                                "File customizer writes outside /tmp on Linux, which AIB does not allow",
	"macquarie-cloud-services_azure-avd-azvmimagebuilder/AVD-Template-MSIXVM-to-SIG.json":                                                                                           "sharedImage without replicationRegions at the api-version its repository deploys with (targetRegions needs 2022-07-01)",
	"nataliakon_AzureImageBuilder-POC/archive/azuredeploy.json":                                                                                                                     "the image template depends on reference() or a linked deployment, which need live Azure",
	"shaunjacob_AzureImageBuilder/AzureImageBuilder-ManagedImage.json":                                                                                                              "the user-assigned identity is not a resource id (a bare GUID, an empty string or an id cut short)",
}
