package armtemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func mustDoc(t *testing.T, src string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("bad test template: %v", err)
	}
	return doc
}

func summary(res []Resource) string {
	var parts []string
	for _, r := range res {
		parts = append(parts, fmt.Sprintf("%s %s %s #%d", r.Path, r.Type, r.Name, r.CopyIndex))
	}
	return strings.Join(parts, "\n")
}

const aibWrapped = `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "imageTemplateName": {"type": "string"},
    "api-version": {"type": "string", "defaultValue": "2022-02-14"},
    "svclocation": {"type": "string", "defaultValue": "[resourceGroup().location]"},
    "buildTimeout": {"type": "int", "defaultValue": 80}
  },
  "variables": {"scriptBase": "https://example.org/scripts/"},
  "resources": [
    {
      "name": "[parameters('imageTemplateName')]",
      "type": "Microsoft.VirtualMachineImages/imageTemplates",
      "apiVersion": "[parameters('api-version')]",
      "location": "[parameters('svclocation')]",
      "dependsOn": [],
      "identity": {"type": "UserAssigned", "userAssignedIdentities": {
        "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'aibId')]": {}}},
      "properties": {
        "buildTimeoutInMinutes": "[parameters('buildTimeout')]",
        "source": {"type": "PlatformImage", "publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS", "version": "latest"},
        "customize": [
          {"type": "Shell", "name": "a", "scriptUri": "[concat(variables('scriptBase'), 'a.sh')]"},
          {"type": "Shell", "name": "b", "inline": ["[[ -f /etc/x ]", "[[ -f /etc/y ] && echo", "echo [not an expression"]}
        ],
        "distribute": [{"type": "ManagedImage", "imageId": "[resourceId('Microsoft.Compute/images', parameters('imageTemplateName'))]",
                        "location": "[parameters('svclocation')]", "runOutputName": "out", "artifactTags": {}}]
      }
    }
  ]
}`

func TestEvaluateImageTemplate(t *testing.T) {
	doc := mustDoc(t, aibWrapped)
	if !IsDeploymentTemplate(doc) {
		t.Fatal("IsDeploymentTemplate = false")
	}
	ctx := Context{SubscriptionID: "sub", ResourceGroup: "rg", Location: "westus2", Parameters: map[string]any{"imageTemplateName": "ubuntu"}}
	res, err := Evaluate(doc, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("want 1 resource, got %d", len(res))
	}
	r := res[0]
	if r.Path != "resources[0]" || r.Type != ImageTemplateType || r.Name != "ubuntu" || r.APIVersion != "2022-02-14" || r.CopyIndex != -1 {
		t.Fatalf("unexpected resource header %+v", r)
	}
	got, _ := json.Marshal(r.Body)
	for _, want := range []string{
		`"location":"westus2"`,
		`"buildTimeoutInMinutes":80`,
		`"scriptUri":"https://example.org/scripts/a.sh"`,
		`"inline":["[ -f /etc/x ]","[[ -f /etc/y ] \u0026\u0026 echo","echo [not an expression"]`,
		`"imageId":"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/images/ubuntu"`,
		// Property names are expressions too.
		`"/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aibId":{}`,
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("body lacks %s:\n%s", want, got)
		}
	}
	if _, isFloat := r.Body["properties"].(map[string]any)["buildTimeoutInMinutes"].(float64); !isFloat {
		t.Error("numbers in Body must be float64, as encoding/json decodes them")
	}
	if doc["resources"].([]any)[0].(map[string]any)["name"] != "[parameters('imageTemplateName')]" {
		t.Error("Evaluate modified the input document")
	}
}

func TestEvaluateCollectsAllErrors(t *testing.T) {
	doc := mustDoc(t, `{
	  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
	  "parameters": {"imageTemplateName": {"type": "string"}},
	  "variables": {"good": "x"},
	  "resources": [{
	    "type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-02-14",
	    "name": "[parameters('imageTemplateName')]",
	    "location": "[parameters('imageTemplateName')]",
	    "properties": {
	      "customize": [
	        {"type": "Shell", "scriptUri": "[fooBar('x')]"},
	        {"type": "Shell", "scriptUri": "[variables('missing')]"},
	        {"type": "Shell", "scriptUri": "[concat('a' 'b')]"}
	      ],
	      "vmProfile": {"vmSize": "[parameters('imageTemplateName')]"}
	    }
	  }]
	}`)
	_, err := Evaluate(doc, Context{})
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("want ErrorList, got %v", err)
	}
	want := []string{
		"parameters.imageTemplateName: parameter 'imageTemplateName' has no value: give it in --parameters or a defaultValue",
		"resources[0].properties.customize[0].scriptUri: unknown ARM template function 'fooBar' (at column 2 of the expression)",
		"resources[0].properties.customize[1].scriptUri: variable 'missing' is not defined (at column 2 of the expression)",
		"resources[0].properties.customize[2].scriptUri: expected ',' or ')' in the arguments of 'concat', found string 'b' (at column 13 of the expression)",
	}
	if len(list) != len(want) {
		t.Fatalf("want %d errors, got %d:\n%v", len(want), len(list), err)
	}
	for i := range want {
		if list[i].Error() != want[i] {
			t.Errorf("error %d:\n got %s\nwant %s", i, list[i].Error(), want[i])
		}
	}
	if list[3].Path != "resources[0].properties.customize[2].scriptUri" || list[3].Column != 13 {
		t.Errorf("structured fields wrong: %+v", list[3])
	}
}

func TestConditionCopyAndChildren(t *testing.T) {
	doc := mustDoc(t, `{
	  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
	  "parameters": {"n": {"type": "int", "defaultValue": 3}, "deploy": {"type": "bool", "defaultValue": false}},
	  "resources": [
	    {"type": "Microsoft.Compute/galleries", "apiVersion": "2022-03-03", "name": "gal",
	     "resources": [
	       {"type": "images", "apiVersion": "2022-03-03", "name": "img", "dependsOn": ["gal"],
	        "resources": [{"type": "versions", "apiVersion": "2022-03-03", "name": "1.0.0"}]}
	     ]},
	    {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "skipped", "condition": "[parameters('deploy')]"},
	    {"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-02-14",
	     "name": "[format('tpl-{0}', copyIndex(1))]",
	     "condition": "[not(equals(copyIndex(), 1))]",
	     "copy": {"name": "tplLoop", "count": "[parameters('n')]"},
	     "properties": {
	       "index": "[copyIndex('tplLoop')]",
	       "copy": [{"name": "customize", "count": 2,
	                 "input": {"type": "Shell", "inline": ["[format('echo {0}-{1}', copyIndex('tplLoop'), copyIndex('customize'))]"]}}]
	     }},
	    {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2023-01-01", "name": "none", "copy": {"name": "zero", "count": 0}}
	  ]
	}`)
	res, err := Evaluate(doc, Context{})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"resources[0] Microsoft.Compute/galleries gal #-1",
		"resources[0].resources[0] Microsoft.Compute/galleries/images gal/img #-1",
		"resources[0].resources[0].resources[0] Microsoft.Compute/galleries/images/versions gal/img/1.0.0 #-1",
		"resources[2] Microsoft.VirtualMachineImages/imageTemplates tpl-1 #0",
		"resources[2] Microsoft.VirtualMachineImages/imageTemplates tpl-3 #2",
	}, "\n")
	if got := summary(res); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	body, _ := json.Marshal(res[4].Body)
	if !strings.Contains(string(body), `"customize":[{"inline":["echo 2-0"],"type":"Shell"},{"inline":["echo 2-1"],"type":"Shell"}],"index":2`) {
		t.Errorf("property copy not expanded: %s", body)
	}
	if _, has := res[0].Body["resources"]; has {
		t.Error("children must not stay in the parent's Body")
	}
	if res[1].Body["type"] != "Microsoft.Compute/galleries/images" || res[1].Body["name"] != "gal/img" {
		t.Errorf("child Body should carry full type and name: %v", res[1].Body)
	}
	if _, has := res[3].Body["copy"]; has {
		t.Error("copy must be removed from Body")
	}
}

func TestVariables(t *testing.T) {
	doc := mustDoc(t, `{
	  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
	  "variables": {
	    "a": "[concat(variables('b'), '-a')]",
	    "b": "[toUpper(variables('c').name)]",
	    "c": {"name": "c", "items": {"copy": [{"name": "list", "count": 2, "input": "[concat('i', copyIndex('list'))]"}]}},
	    "copy": [{"name": "ports", "count": "[length(variables('c').items.list)]", "input": "[add(8000, copyIndex('ports'))]"}],
	    "loop1": "[variables('loop2')]",
	    "loop2": "[variables('loop1')]"
	  },
	  "resources": [
	    {"type": "A.B/c", "apiVersion": "1", "name": "[variables('a')]", "properties": {"ports": "[variables('ports')]", "c": "[variables('c')]"}},
	    {"type": "A.B/c", "apiVersion": "1", "name": "[variables('loop1')]"},
	    {"type": "A.B/c", "apiVersion": "1", "name": "other", "properties": {"x": "[variables('loop2')]"}}
	  ]
	}`)
	res, err := Evaluate(doc, Context{})
	if len(res) != 1 || res[0].Name != "C-a" {
		t.Fatalf("got %s", summary(res))
	}
	body, _ := json.Marshal(res[0].Body["properties"])
	if string(body) != `{"c":{"items":{"list":["i0","i1"]},"name":"c"},"ports":[8000,8001]}` {
		t.Errorf("properties = %s", body)
	}
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("want exactly one cycle error, got %v", err)
	}
	if want := "variables.loop2: variable 'loop1' depends on itself: variable 'loop1' -> variable 'loop2' -> variable 'loop1'"; !strings.HasPrefix(list[0].Error(), want) {
		t.Errorf("got %s\nwant %s", list[0].Error(), want)
	}
}

const nestedTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "parameters": {"prefix": {"type": "string", "defaultValue": "outer"}},
  "variables": {"v": "outer-var"},
  "resources": [
    {"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2018-11-30", "name": "id1"},
    {"type": "Microsoft.Authorization/roleAssignments", "apiVersion": "2022-04-01", "name": "[guid('x')]",
     "properties": {"principalId": "[reference(resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'id1')).principalId]"}},
    {"type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "inner-dep",
     "resourceGroup": "other-rg",
     "properties": {
       "mode": "Incremental",
       "expressionEvaluationOptions": {"scope": "inner"},
       "parameters": {"name": {"value": "[concat(parameters('prefix'), '-img')]"}, "loc": {"value": "northeurope"}},
       "template": {
         "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
         "parameters": {"name": {"type": "string"}, "loc": {"type": "string"}, "v": {"type": "string", "defaultValue": "[deployment().name]"}},
         "variables": {"v": "inner-var"},
         "resources": [{"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-02-14",
           "name": "[parameters('name')]", "location": "[parameters('loc')]",
           "properties": {"v": "[variables('v')]", "dep": "[parameters('v')]", "rg": "[resourceGroup().name]"}}]
       }
     }},
    {"type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "outer-dep",
     "properties": {"mode": "Incremental", "template": {
       "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
       "resources": [{"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-02-14",
         "name": "[concat(parameters('prefix'), '-outer')]", "properties": {"v": "[variables('v')]"}}]}}},
    {"type": "Microsoft.Resources/deployments", "apiVersion": "2022-09-01", "name": "unrelated",
     "properties": {"mode": "Incremental", "expressionEvaluationOptions": {"scope": "inner"},
       "parameters": {"p": {"value": "[reference('id1').principalId]"}},
       "template": {"parameters": {"p": {"type": "string"}}, "resources": [{"type": "Microsoft.Authorization/roleAssignments", "apiVersion": "1", "name": "[parameters('p')]"}]}}}
  ]
}`

func TestNestedDeployments(t *testing.T) {
	doc := mustDoc(t, nestedTemplate)
	imgs, err := ImageTemplates(doc, Context{})
	if err != nil {
		t.Fatalf("ImageTemplates must not trip over reference() in unrelated resources: %v", err)
	}
	want := strings.Join([]string{
		"resources[2].properties.template.resources[0] Microsoft.VirtualMachineImages/imageTemplates outer-img #-1",
		"resources[3].properties.template.resources[0] Microsoft.VirtualMachineImages/imageTemplates outer-outer #-1",
	}, "\n")
	if got := summary(imgs); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	inner, _ := json.Marshal(imgs[0].Body)
	for _, w := range []string{`"v":"inner-var"`, `"dep":"inner-dep"`, `"rg":"other-rg"`, `"location":"northeurope"`} {
		if !strings.Contains(string(inner), w) {
			t.Errorf("inner-scope body lacks %s: %s", w, inner)
		}
	}
	if outer, _ := json.Marshal(imgs[1].Body); !strings.Contains(string(outer), `"v":"outer-var"`) {
		t.Errorf("outer-scope template must see the parent's variables: %s", outer)
	}

	// Evaluate leaves reference() values unknown, even in a name: a nested
	// deployment's parameter is known when that deployment starts.
	all, err := Evaluate(doc, Context{})
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	if len(all) != 8 { // id1, the role assignment, inner-dep, its template, outer-dep, its template, unrelated, its role assignment
		t.Errorf("got %d resources:\n%s", len(all), summary(all))
	}
	if r := all[len(all)-1]; r.Name != "[reference()]" || r.Body["name"] != (Unknown{Source: "reference()"}) {
		t.Errorf("a name from reference(): %s %#v", r.Name, r.Body["name"])
	}
	for _, r := range all {
		if r.Name == "51c0fe04-91fa-5688-abb4-481ca7437854" { // the role assignment of resources[1]
			if u, ok := r.Body["properties"].(map[string]any)["principalId"].(Unknown); !ok || u.Source != "reference()" {
				t.Errorf("principalId = %#v, want the Unknown of reference()", r.Body["properties"])
			}
		}
	}
	for _, r := range all {
		if r.Name == "inner-dep" {
			tmpl := r.Body["properties"].(map[string]any)["template"].(map[string]any)
			if _, ok := tmpl["resources"]; !ok {
				t.Error("a deployment's Body keeps its template as written")
			}
		}
	}
}

func TestSymbolicResources(t *testing.T) {
	doc := mustDoc(t, `{
	  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
	  "languageVersion": "2.0",
	  "resources": {
	    "gallery": {"type": "Microsoft.Compute/galleries", "apiVersion": "2022-03-03", "name": "g", "existing": true},
	    "tpl": {"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-02-14", "name": "t"}
	  }
	}`)
	res, err := Evaluate(doc, Context{})
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(res); got != "resources.tpl Microsoft.VirtualMachineImages/imageTemplates t #-1" {
		t.Fatalf("got %s", got)
	}
}

func TestResourceErrors(t *testing.T) {
	tests := []struct {
		resource string
		want     string
	}{
		{`{"apiVersion": "1", "name": "x"}`, "resources[0]: resource has no 'type' string"},
		{`{"type": "A.B/c", "apiVersion": "1"}`, "resources[0].name: resource name must be a non-empty string, not null"},
		{`{"type": "A.B/c", "name": "x", "condition": "yes"}`, "resources[0].condition: condition must be a bool, not string 'yes'"},
		{`{"type": "A.B/c", "name": "x", "copy": {"name": "l", "count": 801}}`, "resources[0].copy.count: copy count 801 must be between 0 and 800"},
		{`{"type": "A.B/c", "name": "x", "copy": {"name": "l"}}`, "resources[0].copy: copy loop 'l' has no 'count'"},
		{`{"type": "A.B/c", "name": "[copyIndex()]"}`, "resources[0].name: copyIndex() can only be used inside a copy loop"},
		{`"text"`, "resources[0]: a resource must be an object, not string 'text'"},
	}
	for _, tt := range tests {
		doc := mustDoc(t, `{"$schema": "deploymentTemplate.json", "resources": [`+tt.resource+`]}`)
		_, err := Evaluate(doc, Context{})
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s:\n got %v\nwant %s", tt.resource, err, tt.want)
		}
	}
}

func TestIsDeploymentTemplate(t *testing.T) {
	tests := []struct {
		doc  string
		want bool
	}{
		{`{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", "resources": []}`, true},
		{`{"$schema": "https://schema.management.azure.com/schemas/2018-05-01/subscriptionDeploymentTemplate.json#"}`, true},
		{`{"resources": [], "parameters": {}}`, true},
		{`{"resources": [], "contentVersion": "1.0.0.0"}`, true},
		{`{"resources": []}`, false},
		{`{"type": "Microsoft.VirtualMachineImages/imageTemplates", "properties": {}}`, false},
		{`{"properties": {"source": {}, "customize": [], "distribute": []}}`, false},
	}
	for _, tt := range tests {
		if got := IsDeploymentTemplate(mustDoc(t, tt.doc)); got != tt.want {
			t.Errorf("IsDeploymentTemplate(%s) = %v", tt.doc, got)
		}
	}
}

func TestExpressionPropertyNames(t *testing.T) {
	doc := map[string]any{
		"$schema":    "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
		"parameters": map[string]any{"id": map[string]any{"type": "string", "defaultValue": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aib"}},
		"resources": []any{map[string]any{
			"type": ImageTemplateType, "apiVersion": "2020-02-14", "name": "t",
			"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{
				"[parameters('id')]": map[string]any{},
				"[[literal]":         map[string]any{},
			}},
		}},
	}
	res, err := ImageTemplates(doc, Context{})
	if err != nil {
		t.Fatal(err)
	}
	ids := res[0].Body["identity"].(map[string]any)["userAssignedIdentities"].(map[string]any)
	if _, ok := ids["/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aib"]; !ok {
		t.Errorf("expression key not evaluated: %v", ids)
	}
	if _, ok := ids["[literal]"]; !ok {
		t.Errorf("escaped key not unescaped: %v", ids)
	}
}
