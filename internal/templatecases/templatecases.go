// Package templatecases holds image template documents for tests: a valid
// template of any apiVersion to break one thing at a time (Base), and the
// table of broken ones, each with the problem validation must report
// (Invalids). template's tests check the table offline; arm's check that the
// service gives each the same verdict.
package templatecases

import (
	"encoding/json"
	"strings"

	"github.com/goldsmith-dev/goldsmith/template"
)

const (
	// Sub is the subscription of the ids in the documents.
	Sub            = "00000000-0000-0000-0000-000000000001"
	ImageID        = "/subscriptions/" + Sub + "/resourceGroups/images/providers/Microsoft.Compute/images/img"
	GalleryImageID = "/subscriptions/" + Sub + "/resourceGroups/images/providers/Microsoft.Compute/galleries/g/images/def"
	IdentityID     = "/subscriptions/" + Sub + "/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aib"
)

// Base returns a valid template of the given apiVersion as a JSON object,
// for tests to break one thing at a time.
func Base(apiVersion string) map[string]any {
	doc := map[string]any{
		"type":       template.ResourceType,
		"apiVersion": apiVersion,
		"location":   "westus2",
		"properties": map[string]any{
			"source":    map[string]any{"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
			"customize": []any{map[string]any{"type": "Shell", "name": "a", "inline": []any{"true"}}},
			"distribute": []any{
				map[string]any{"type": "ManagedImage", "imageId": ImageID, "location": "westus2", "runOutputName": "out"},
			},
		},
	}
	if apiVersion >= "2020" {
		doc["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{IdentityID: map[string]any{}}}
	}
	return doc
}

// Props returns a document's properties.
func Props(doc map[string]any) map[string]any { return doc["properties"].(map[string]any) }

// Customizer returns a document's i-th customizer.
func Customizer(doc map[string]any, i int) map[string]any {
	return Props(doc)["customize"].([]any)[i].(map[string]any)
}

// Dist returns a document's i-th distribute target.
func Dist(doc map[string]any, i int) map[string]any {
	return Props(doc)["distribute"].([]any)[i].(map[string]any)
}

// Invalid is a broken template and the problem it must be refused with.
type Invalid struct {
	Name       string
	APIVersion string
	Mutate     func(doc map[string]any) // breaks Base(APIVersion)
	Code       string
	Target     string // JSON path of the (first) matching problem
	Contains   string // a substring of its message
}

// Doc returns the broken document.
func (c Invalid) Doc() map[string]any {
	doc := Base(c.APIVersion)
	c.Mutate(doc)
	return doc
}

// Invalids is the table of broken templates.
func Invalids() []Invalid {
	const v = "2022-07-01"
	return []Invalid{
		{"no source type", v, func(d map[string]any) { delete(Props(d)["source"].(map[string]any), "type") },
			template.CodeBadSourceType, "properties.source.type", "required"},
		{"unknown source type", v, func(d map[string]any) { Props(d)["source"].(map[string]any)["type"] = "Marketplace" },
			template.CodeBadSourceType, "properties.source.type", "Marketplace"},
		{"ISO after the previews", "2020-02-14", func(d map[string]any) {
			Props(d)["source"] = map[string]any{"type": "ISO", "sourceUri": "https://x/rhel.iso", "sha256Checksum": strings.Repeat("a", 64)}
		}, template.CodeBadSourceType, "properties.source.type", "only the preview api-versions had them, until AIB stopped accepting them on 31 March 2020"},
		{"ISO in the previews", "2019-05-01-preview", func(d map[string]any) {
			Props(d)["source"] = map[string]any{"type": "ISO", "sourceUri": "https://x/rhel.iso", "sha256Checksum": strings.Repeat("a", 64)}
		}, template.CodeBadSourceType, "properties.source.type", "stopped accepting templates with ISO sources on 31 March 2020 and building them on 30 April 2020"},
		{"no source", v, func(d map[string]any) { delete(Props(d), "source") }, template.CodeBadSourceType, "properties.source", "required"},
		{"PIR without sku", v, func(d map[string]any) { delete(Props(d)["source"].(map[string]any), "sku") },
			template.CodeBadPIRSource, "properties.source.sku", "sku"},
		{"latest in 2019-02-01-preview", "2019-02-01-preview", func(d map[string]any) {}, template.CodeBadPIRSource, "properties.source.version", "latest"},
		{"ISO without checksum", "2018-02-01-preview", func(d map[string]any) {
			Props(d)["source"] = map[string]any{"type": "ISO", "sourceURI": "https://x/rhel.iso"}
			Props(d)["customize"] = []any{}
			Dist(d, 0)["type"] = "managedImage"
		}, template.CodeBadISOSource, "properties.source.sha256Checksum", "sha256Checksum"},
		{"ISO with file URI", "2019-05-01-preview", func(d map[string]any) {
			Props(d)["source"] = map[string]any{"type": "ISO", "sourceUri": "file:///tmp/rhel.iso", "sha256Checksum": strings.Repeat("a", 64)}
		}, template.CodeBadISOSource, "properties.source.sourceUri", "http"},
		{"managed image source id malformed", v, func(d map[string]any) {
			Props(d)["source"] = map[string]any{"type": "ManagedImage", "imageId": "/subscriptions/" + Sub + "/resourceGroups/images/providers/Microsoft.Compute/disks/x"}
		}, template.CodeBadManagedImageSource, "properties.source.imageId", "managed image"},
		{"gallery version source is a definition", v, func(d map[string]any) {
			Props(d)["source"] = map[string]any{"type": "SharedImageVersion", "imageVersionId": GalleryImageID}
		}, template.CodeBadSharedImageVersionSrc, "properties.source.imageVersionId", "gallery image version"},
		{"customizer without type", v, func(d map[string]any) { delete(Customizer(d, 0), "type") },
			template.CodeBadCustomizerType, "properties.customize[0].type", "required"},
		{"unknown customizer", v, func(d map[string]any) { Customizer(d, 0)["type"] = "Ansible" },
			template.CodeBadCustomizerType, "properties.customize[0].type", "Ansible"},
		{"WindowsRestart on Linux", v, func(d map[string]any) {
			Props(d)["customize"] = []any{map[string]any{"type": "WindowsRestart", "restartTimeout": "5m"}}
		}, template.CodeUnsupportedCustomizerType, "properties.customize[0].type", "Linux"},
		{"WindowsUpdate on Linux", v, func(d map[string]any) {
			Props(d)["customize"] = []any{map[string]any{"type": "WindowsUpdate"}}
		}, template.CodeUnsupportedCustomizerType, "properties.customize[0].type", "Windows"},
		{"File before 2019-05-01-preview", "2019-02-01-preview", func(d map[string]any) {
			Props(d)["source"].(map[string]any)["version"] = "1.0.0"
			Props(d)["customize"] = []any{map[string]any{"type": "File", "sourceUri": "https://x/y", "destination": "/tmp/y"}}
		}, template.CodeUnsupportedCustomizerType, "properties.customize[0].type", "2019-02-01-preview"},
		{"Shell with no script", v, func(d map[string]any) { delete(Customizer(d, 0), "inline") },
			template.CodeNoCustomizerScript, "properties.customize[0]", "no script"},
		{"Shell with script and inline", v, func(d map[string]any) { Customizer(d, 0)["scriptUri"] = "https://x/s.sh" },
			template.CodeInvalidTemplate, "properties.customize[0].inline", "not both"},
		{"script under the old name", v, func(d map[string]any) {
			delete(Customizer(d, 0), "inline")
			Customizer(d, 0)["script"] = "https://x/s.sh"
		}, template.CodeNoCustomizerScript, "properties.customize[0].script", "scriptUri"},
		{"file:// script", v, func(d map[string]any) {
			delete(Customizer(d, 0), "inline")
			Customizer(d, 0)["scriptUri"] = "file:///etc/passwd"
		}, template.CodeInvalidTemplate, "properties.customize[0].scriptUri", `scheme "file"`},
		{"ftp script", v, func(d map[string]any) {
			delete(Customizer(d, 0), "inline")
			Customizer(d, 0)["scriptUri"] = "ftp://x/s.sh"
		}, template.CodeInvalidTemplate, "properties.customize[0].scriptUri", "http"},
		{"short checksum", v, func(d map[string]any) {
			delete(Customizer(d, 0), "inline")
			Customizer(d, 0)["scriptUri"] = "https://x/s.sh"
			Customizer(d, 0)["sha256Checksum"] = "abc"
		}, template.CodeInvalidTemplate, "properties.customize[0].sha256Checksum", "64 hexadecimal"},
		{"duplicate customizer names", v, func(d map[string]any) {
			Props(d)["customize"] = append(Props(d)["customize"].([]any), map[string]any{"type": "Shell", "name": "A", "inline": []any{"true"}})
		}, template.CodeInvalidTemplate, "properties.customize[1].name", "unique"},
		{"File outside /tmp on Linux", v, func(d map[string]any) {
			Props(d)["customize"] = []any{map[string]any{"type": "File", "sourceUri": "https://x/y", "destination": "/etc/y"}}
		}, template.CodeInvalidTemplate, "properties.customize[0].destination", "/tmp"},
		{"validator without type", v, func(d map[string]any) {
			Props(d)["validate"] = map[string]any{"inVMValidations": []any{map[string]any{"name": "v", "inline": []any{"true"}}}}
		}, template.CodeBadValidatorType, "properties.validate.inVMValidations[0].type", "required"},
		{"unknown validator", v, func(d map[string]any) {
			Props(d)["validate"] = map[string]any{"inVMValidations": []any{map[string]any{"type": "Pester", "inline": []any{"true"}}}}
		}, template.CodeBadValidatorType, "properties.validate.inVMValidations[0].type", "Pester"},
		{"WindowsRestart validator", v, func(d map[string]any) {
			Props(d)["validate"] = map[string]any{"inVMValidations": []any{map[string]any{"type": "WindowsRestart"}}}
		}, template.CodeUnsupportedValidatorType, "properties.validate.inVMValidations[0].type", "not supported"},
		{"validator without script", v, func(d map[string]any) {
			Props(d)["validate"] = map[string]any{"inVMValidations": []any{map[string]any{"type": "Shell", "name": "v"}}}
		}, template.CodeNoValidatorScript, "properties.validate.inVMValidations[0]", "no script"},
		{"source validation without validators", v, func(d map[string]any) {
			Props(d)["validate"] = map[string]any{"sourceValidationOnly": true}
		}, template.CodeInvalidTemplate, "properties.validate.inVMValidations", "none"},
		{"no distribute", v, func(d map[string]any) { delete(Props(d), "distribute") },
			template.CodeBadDistributeType, "properties.distribute", "at least one"},
		{"unknown distribute type", v, func(d map[string]any) { Dist(d, 0)["type"] = "S3" },
			template.CodeBadDistributeType, "properties.distribute[0].type", "S3"},
		{"gallery id malformed", v, func(d map[string]any) {
			Props(d)["distribute"] = []any{map[string]any{"type": "SharedImage", "galleryImageId": "/subscriptions/" + Sub + "/resourceGroups/images/providers/Microsoft.Compute/galleries/g", "runOutputName": "o"}}
		}, template.CodeBadSharedImageDistribute, "properties.distribute[0].galleryImageId", "gallery image definition"},
		{"replicationRegions required before 2022-07-01", "2021-10-01", func(d map[string]any) {
			Props(d)["distribute"] = []any{map[string]any{"type": "SharedImage", "galleryImageId": GalleryImageID, "runOutputName": "o"}}
		}, template.CodeBadSharedImageDistribute, "properties.distribute[0].replicationRegions", "replicationRegions"},
		{"targetRegions and replicationRegions", v, func(d map[string]any) {
			Props(d)["distribute"] = []any{map[string]any{"type": "SharedImage", "galleryImageId": GalleryImageID, "runOutputName": "o",
				"replicationRegions": []any{"westus2"}, "targetRegions": []any{map[string]any{"name": "westus2"}}}}
		}, template.CodeBadSharedImageDistribute, "properties.distribute[0].targetRegions", "not both"},
		{"bad staging resource group", "2022-02-14", func(d map[string]any) {
			Props(d)["stagingResourceGroup"] = "/subscriptions/" + Sub + "/resourceGroups/rg/providers/Microsoft.Compute/images/x"
		}, template.CodeBadStagingResourceGroup, "properties.stagingResourceGroup", "resource group"},
		{"runOutputName missing", v, func(d map[string]any) { delete(Dist(d, 0), "runOutputName") },
			template.CodeInvalidTemplate, "properties.distribute[0].runOutputName", "required"},
		{"runOutputName pattern", v, func(d map[string]any) { Dist(d, 0)["runOutputName"] = "has space" },
			template.CodeInvalidTemplate, "properties.distribute[0].runOutputName", "1-64"},
		{"runOutputName dot before 2020-02-14", "2019-05-01-preview", func(d map[string]any) { Dist(d, 0)["runOutputName"] = "a.b" },
			template.CodeInvalidTemplate, "properties.distribute[0].runOutputName", "2019-05-01-preview"},
		{"runOutputName duplicate", v, func(d map[string]any) {
			Props(d)["distribute"] = append(Props(d)["distribute"].([]any), map[string]any{"type": "VHD", "runOutputName": "OUT"})
		}, template.CodeInvalidTemplate, "properties.distribute[1].runOutputName", "already used"},
		{"managed image id malformed", v, func(d map[string]any) { Dist(d, 0)["imageId"] = "images/x" },
			template.CodeInvalidTemplate, "properties.distribute[0].imageId", "/subscriptions/"},
		{"timeout above 960", v, func(d map[string]any) { Props(d)["buildTimeoutInMinutes"] = json.Number("961") },
			template.CodeInvalidTemplate, "properties.buildTimeoutInMinutes", "960"},
		{"negative timeout", v, func(d map[string]any) { Props(d)["buildTimeoutInMinutes"] = json.Number("-1") },
			template.CodeInvalidTemplate, "properties.buildTimeoutInMinutes", "between 0"},
		{"timeout not a number", v, func(d map[string]any) { Props(d)["buildTimeoutInMinutes"] = "an hour" },
			template.CodeInvalidTemplate, "properties.buildTimeoutInMinutes", "integer"},
		{"negative disk size", v, func(d map[string]any) { Props(d)["vmProfile"] = map[string]any{"osDiskSizeGB": json.Number("-5")} },
			template.CodeInvalidTemplate, "properties.vmProfile.osDiskSizeGB", "0"},
		{"two identities", v, func(d map[string]any) {
			d["identity"].(map[string]any)["userAssignedIdentities"].(map[string]any)[IdentityID+"2"] = map[string]any{}
		}, template.CodeInvalidTemplate, "identity.userAssignedIdentities", "one user-assigned identity"},
		{"identity id malformed", v, func(d map[string]any) {
			d["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{"aib": map[string]any{}}}
		}, template.CodeInvalidTemplate, "identity.userAssignedIdentities.aib", "user-assigned identity"},
		{"identity required from 2020-02-14", "2020-02-14", func(d map[string]any) { delete(d, "identity") },
			template.CodeInvalidTemplate, "identity", "required"},
		{"wrongly cased property in 2024-02-01", "2024-02-01", func(d map[string]any) {
			delete(Customizer(d, 0), "inline")
			Customizer(d, 0)["ScriptUri"] = "https://x/s.sh"
		}, template.CodeInvalidTemplate, "properties.customize[0].ScriptUri", "case-sensitive"},
		{"no location", v, func(d map[string]any) { delete(d, "location") }, template.CodeLocationRequired, "location", "required"},
		{"bad name", v, func(d map[string]any) { d["name"] = "a b" }, template.CodeInvalidParameter, "name", "letters, digits"},
		{"unsupported apiVersion", "2021-01-01", func(d map[string]any) {}, template.CodeNoRegisteredProvider, "apiVersion", "not supported"},
		{"properties misplaced", v, func(d map[string]any) {
			for k, val := range Props(d) {
				d[k] = val
			}
			delete(d, "properties")
		}, template.CodeInvalidTemplate, "properties", "top level"},
		{"unknown vmSize", v, func(d map[string]any) { Props(d)["vmProfile"] = map[string]any{"vmSize": "Huge"} },
			template.CodeInvalidTemplate, "properties.vmProfile.vmSize", "unknown VM size"},
		{"gallery version not MAJOR.MINOR.PATCH", v, func(d map[string]any) {
			Props(d)["distribute"] = []any{map[string]any{"type": "SharedImage", "runOutputName": "sig", "galleryImageId": GalleryImageID + "/versions/1.2"}}
		}, template.CodeBadSharedImageDistribute, "properties.distribute[0].galleryImageId", "MAJOR.MINOR.PATCH"},
		{"gallery version and versioning both", v, func(d map[string]any) {
			Props(d)["distribute"] = []any{map[string]any{"type": "SharedImage", "runOutputName": "sig", "galleryImageId": GalleryImageID + "/versions/1.2.3",
				"versioning": map[string]any{"scheme": "Latest"}}}
		}, template.CodeBadSharedImageDistribute, "properties.distribute[0].versioning", "use one of them"},
		{"wrong resource type", v, func(d map[string]any) { d["type"] = "Microsoft.Compute/images" },
			template.CodeInvalidTemplate, "type", "imageTemplates"},
	}
}
