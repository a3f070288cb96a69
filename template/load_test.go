package template

import (
	"encoding/json"
	"strings"
	"testing"
)

// deployment wraps one image template resource (given as JSON object
// members after type and apiVersion) in an ARM deployment template that
// also deploys an identity, as the quickstarts do.
func deployment(members string, extra ...string) []byte {
	res := append([]string{`{"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2018-11-30", "name": "aibId", "location": "westus2"}`}, extra...)
	return []byte(`{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {"_artifactsLocation": {"type": "string", "defaultValue": "[deployment().properties.templateLink.uri]"}},
  "resources": [
    {"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-07-01", ` + members + `},
    ` + strings.Join(res, ",\n    ") + `
  ]
}`)
}

// validMembers is a valid 2022-07-01 image template resource's members;
// tests replace one of its values with a deploy-time expression.
const validMembers = `"name": "img", "location": "westus2",
  "identity": {"type": "UserAssigned", "userAssignedIdentities": {"[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'aibId')]": {}}},
  "tags": {"owner": "team"},
  "properties": {
    "source": {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"},
    "customize": [{"type": "Shell", "name": "setup", "scriptUri": "https://example.com/setup.sh"}],
    "vmProfile": {"vmSize": "Standard_D2s_v3", "userAssignedIdentities": []},
    "distribute": [{"type": "SharedImage", "runOutputName": "sig",
      "galleryImageId": "[resourceId('Microsoft.Compute/galleries/images', 'gal', 'def')]", "replicationRegions": ["westus2"]}]
  }`

// TestDeployTimeValues: values only a live ARM deployment knows (reference(),
// list*(), the template's own link) are warnings with their JSON path, never
// refusals; the rest of the template is still checked.
func TestDeployTimeValues(t *testing.T) {
	swap := func(old, new string) string {
		if !strings.Contains(validMembers, old) {
			panic("test template lacks " + old)
		}
		return strings.Replace(validMembers, old, new, 1)
	}
	tests := []struct {
		name       string
		file       []byte
		unresolved []string // JSON paths that could not be checked offline
		warning    string   // a warning message must contain this
		errCode    string   // "" when the template must validate
		errTarget  string
	}{
		{name: "reference() in a tag",
			file:       deployment(swap(`"owner": "team"`, `"owner": "[reference(resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'aibId')).principalId]"`)),
			unresolved: []string{"resources[0].tags.owner"}, warning: "comes from reference()"},
		{name: "script from the template's own link (_artifactsLocation)",
			file:       deployment(swap(`"https://example.com/setup.sh"`, `"[uri(parameters('_artifactsLocation'), 'scripts/setup.sh')]"`)),
			unresolved: []string{"resources[0].properties.customize[0].scriptUri"}, warning: "deployment().properties.templateLink"},
		{name: "required galleryImageId from reference()",
			file:       deployment(swap(`"[resourceId('Microsoft.Compute/galleries/images', 'gal', 'def')]"`, `"[reference('galDeploy').outputs.imageDefinitionId.value]"`)),
			unresolved: []string{"resources[0].properties.distribute[0].galleryImageId"}, warning: "this field could not be checked offline"},
		{name: "listKeys() in a vmProfile identity",
			file:       deployment(swap(`"userAssignedIdentities": []`, `"userAssignedIdentities": ["[listKeys('x', '2021-01-01').id]"]`)),
			unresolved: []string{"resources[0].properties.vmProfile.userAssignedIdentities[0]"}, warning: "listKeys()"},
		{name: "identity keyed by reference()",
			file:       deployment(swap(`"[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'aibId')]": {}`, `"[reference('idDeploy').outputs.id.value]": {}`)),
			unresolved: []string{"resources[0].identity.userAssignedIdentities.[reference()]"}, warning: "reference()"},
		{name: "whole source object from reference()",
			file:       deployment(swap(`{"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"}`, `"[reference('src').outputs.source.value]"`)),
			unresolved: []string{"resources[0].properties.source"}},
		{name: "condition from reference()",
			file:    deployment(`"condition": "[reference('x').enabled]", ` + validMembers),
			warning: "the resource is checked as if it were deployed"},
		{name: "deploy-time value and a bad distribute type",
			file:       deployment(strings.Replace(swap(`"owner": "team"`, `"owner": "[reference('x').owner]"`), `"type": "SharedImage"`, `"type": "Blob"`, 1)),
			unresolved: []string{"resources[0].tags.owner"}, errCode: CodeBadDistributeType, errTarget: "resources[0].properties.distribute[0].type"},
		{name: "name from reference()",
			file:       deployment(swap(`"name": "img"`, `"name": "[reference('x').name]"`)),
			unresolved: []string{"resources[0].name"}},
		{name: "copy count from reference() cannot be expanded",
			file:    deployment(`"copy": {"name": "imgs", "count": "[reference('x').n]"}, ` + validMembers),
			errCode: CodeInvalidTemplate, errTarget: "resources[0].copy.count"},
		{name: "apiVersion from reference() without --api-version",
			file:       []byte(strings.Replace(string(deployment(validMembers)), `"apiVersion": "2022-07-01"`, `"apiVersion": "[reference('x').v]"`, 1)),
			unresolved: []string{}, errCode: CodeInvalidTemplate, errTarget: "resources[0].apiVersion"},
		{name: "reference() in a nested deployment's parameter the image template does not use",
			file: []byte(`{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "resources": [{"type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "images",
    "properties": {"mode": "Incremental", "expressionEvaluationOptions": {"scope": "inner"},
      "parameters": {"principalId": {"value": "[reference('aibId').principalId]"}, "galleryImageId": {"value": "[reference('gallery').outputs.id.value]"}},
      "template": {"parameters": {"principalId": {"type": "string"}, "galleryImageId": {"type": "string"}},
        "resources": [{"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-07-01", ` + swap(`"[resourceId('Microsoft.Compute/galleries/images', 'gal', 'def')]"`, `"[parameters('galleryImageId')]"`) + `}]}}}]
}`),
			unresolved: []string{"resources[0].properties.template.resources[0].properties.distribute[0].galleryImageId"}, warning: "reference()"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, err := Load(tt.file, LoadOptions{})
			if err != nil {
				if tt.errCode != "" && strings.Contains(err.Error(), tt.errTarget) {
					return // refused while evaluating the deployment template
				}
				t.Fatalf("Load: %v", err)
			}
			if len(found) != 1 {
				t.Fatalf("found %d image templates", len(found))
			}
			f := found[0]
			if tt.errCode == "" && f.Err != nil {
				t.Fatalf("want valid, got %v", f.Err)
			}
			if tt.errCode != "" {
				inv, ok := f.Err.(*InvalidError)
				if !ok || len(inv.Problems) != 1 || inv.Problems[0].Code != tt.errCode || inv.Problems[0].Target != tt.errTarget {
					t.Fatalf("want exactly %s at %s, got %v", tt.errCode, tt.errTarget, f.Err)
				}
			}
			if tt.unresolved != nil && strings.Join(f.Unresolved, ",") != strings.Join(tt.unresolved, ",") {
				t.Errorf("Unresolved = %q, want %q", f.Unresolved, tt.unresolved)
			}
			for _, p := range f.Unresolved {
				if !hasWarning(f.Warnings, p, "could not be checked offline") {
					t.Errorf("no warning at %s; warnings: %v", p, f.Warnings)
				}
			}
			if tt.warning != "" && !hasWarning(f.Warnings, "", tt.warning) {
				t.Errorf("no warning containing %q; warnings: %v", tt.warning, f.Warnings)
			}
		})
	}
}

func hasWarning(ws []Problem, target, contains string) bool {
	for _, w := range ws {
		if (target == "" || w.Target == target) && strings.Contains(w.Message, contains) {
			return true
		}
	}
	return false
}

// TestUnresolvedCannotBeSent: a document holding a deploy-time value cannot
// be written as JSON, so no client sends a stand-in for it.
func TestUnresolvedCannotBeSent(t *testing.T) {
	docs, err := Documents(deployment(strings.Replace(validMembers, `"owner": "team"`, `"owner": "[reference('x').owner]"`, 1)), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(docs[0].Body); err == nil || !strings.Contains(err.Error(), "reference()") {
		t.Errorf("json.Marshal of an unresolved body: %v", err)
	}
}
