package armtemplate

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseParameterFile(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]any
		err  string
	}{
		{
			name: "ARM format",
			in: `{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
			      "contentVersion": "1.0.0.0",
			      "parameters": {"imageTemplateName": {"value": "win11"}, "count": {"value": 2}, "tags": {"value": {"a": "b"}}}}`,
			want: map[string]any{"imageTemplateName": "win11", "count": 2.0, "tags": map[string]any{"a": "b"}},
		},
		{
			name: "parameters object without envelope",
			in:   `{"parameters": {"x": {"value": true}}}`,
			want: map[string]any{"x": true},
		},
		{
			name: "wrapped entries at top level",
			in:   `{"x": {"value": "a"}, "y": {"value": [1], "metadata": {}}}`,
			want: map[string]any{"x": "a", "y": []any{1.0}},
		},
		{
			name: "bare values",
			in:   `{"x": "a", "y": {"nested": 1}}`,
			want: map[string]any{"x": "a", "y": map[string]any{"nested": 1.0}},
		},
		{
			name: "a bare parameter named parameters",
			in:   `{"parameters": "p", "other": 1}`,
			want: map[string]any{"parameters": "p", "other": 1.0},
		},
		{
			name: "envelope without parameters",
			in:   `{"$schema": "x", "contentVersion": "1.0.0.0"}`,
			want: map[string]any{},
		},
		{
			name: "key vault reference",
			in: `{"$schema": "x", "parameters": {"adminPassword": {"reference": {"keyVault": {"id": "/k"}, "secretName": "s"}},
			      "ok": {"value": 1}}}`,
			err: "parameter 'adminPassword' is a Key Vault reference",
		},
		{name: "mixed forms", in: `{"x": {"value": 1}, "y": 2}`, err: "mixes"},
		{name: "entry without value", in: `{"$schema": "x", "parameters": {"x": {"val": 1}}}`, err: "parameter 'x' has no \"value\""},
		{name: "not JSON", in: `{`, err: "not valid JSON"},
		{name: "not an object", in: `[1]`, err: "must hold a JSON object"},
	}
	for _, tt := range tests {
		got, err := ParseParameterFile([]byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: want error containing %q, got %v", tt.name, tt.err, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.name, got, tt.want)
		}
	}
}

// paramTemplate builds a template whose single resource name uses the
// given expression, with the given parameter declarations.
func paramTemplate(t *testing.T, params, name string) map[string]any {
	t.Helper()
	var doc map[string]any
	src := `{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
		"parameters": ` + params + `,
		"resources": [{"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-02-14",
		               "name": ` + name + `, "properties": {"a": "[parameters('p')]", "b": "[parameters('p')]"}}]}`
	if err := json.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatalf("bad test template: %v", err)
	}
	return doc
}

func TestParameters(t *testing.T) {
	tests := []struct {
		name   string
		params string
		given  map[string]any
		want   string // resulting resource name
		errs   []string
	}{
		{name: "default", params: `{"p": {"type": "string", "defaultValue": "d"}}`, want: "d"},
		{name: "given wins", params: `{"p": {"type": "string", "defaultValue": "d"}}`, given: map[string]any{"p": "g"}, want: "g"},
		{name: "case-insensitive given", params: `{"p": {"type": "string"}}`, given: map[string]any{"P": "g"}, want: "g"},
		{name: "default from another parameter", params: `{"p": {"type": "string", "defaultValue": "[concat(parameters('q'), '-x')]"}, "q": {"type": "string", "defaultValue": "[resourceGroup().name]"}}`, want: "goldsmith-x"},
		{name: "int given as text", params: `{"p": {"type": "int"}}`, given: map[string]any{"p": "5"}, want: "5"},
		{name: "securestring", params: `{"p": {"type": "securestring"}}`, given: map[string]any{"p": "s3cret"}, want: "s3cret"},
		{name: "allowed value matches", params: `{"p": {"type": "string", "allowedValues": ["a", "b"]}}`, given: map[string]any{"p": "b"}, want: "b"},
		{
			name:   "missing value reported once",
			params: `{"p": {"type": "string"}}`,
			errs:   []string{"parameters.p: parameter 'p' has no value: give it in --parameters or a defaultValue"},
		},
		{
			name:   "not allowed",
			params: `{"p": {"type": "string", "allowedValues": ["a", "b"]}}`,
			given:  map[string]any{"p": "x"},
			errs:   []string{`parameter 'p': value "x" is not one of allowedValues [a b]`},
		},
		{
			name:   "array elements checked against allowedValues",
			params: `{"p": {"type": "array", "allowedValues": ["a", "b"]}, "n": {"type": "string", "defaultValue": "n"}}`,
			given:  map[string]any{"p": []any{"a", "c"}},
			errs:   []string{`parameter 'p': value "c" is not one of allowedValues [a b]`},
		},
		{name: "minValue", params: `{"p": {"type": "int", "minValue": 2}}`, given: map[string]any{"p": 1}, errs: []string{"value 1 is less than minValue 2"}},
		{name: "maxValue", params: `{"p": {"type": "int", "maxValue": 2}}`, given: map[string]any{"p": 3}, errs: []string{"value 3 is greater than maxValue 2"}},
		{name: "minLength", params: `{"p": {"type": "string", "minLength": 3}}`, given: map[string]any{"p": "ab"}, errs: []string{"length 2 is less than minLength 3"}},
		{name: "maxLength", params: `{"p": {"type": "array", "maxLength": 1}}`, given: map[string]any{"p": []any{1, 2}}, errs: []string{"length 2 is greater than maxLength 1"}},
		{name: "wrong type", params: `{"p": {"type": "int"}}`, given: map[string]any{"p": "many"}, errs: []string{"parameter 'p' is declared as an int, but its value is string 'many'"}},
		{name: "bool type", params: `{"p": {"type": "bool"}}`, given: map[string]any{"p": 3}, errs: []string{"declared as a bool"}},
		{name: "unknown type", params: `{"p": {"type": "avd-vm"}}`, given: map[string]any{"p": "x"}, errs: []string{"unknown type 'avd-vm'"}},
		{name: "undeclared given", params: `{"p": {"type": "string", "defaultValue": "d"}}`, given: map[string]any{"zz": 1}, errs: []string{"parameter 'zz' was given but the template does not declare it"}},
		{
			name:   "cycle",
			params: `{"p": {"type": "string", "defaultValue": "[parameters('q')]"}, "q": {"type": "string", "defaultValue": "[parameters('p')]"}}`,
			errs:   []string{"parameter 'p' depends on itself: parameter 'p' -> parameter 'q' -> parameter 'p'"},
		},
		{
			name:   "utcNow outside defaults",
			params: `{"p": {"type": "string", "defaultValue": "d"}}`,
			errs:   []string{"utcNow() can only be used in a parameter's defaultValue"},
		},
	}
	for _, tt := range tests {
		name := `"[string(parameters('p'))]"`
		if tt.name == "utcNow outside defaults" {
			name = `"[utcNow()]"`
		}
		doc := paramTemplate(t, tt.params, name)
		res, err := Evaluate(doc, Context{Parameters: tt.given})
		if len(tt.errs) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
				continue
			}
			if len(res) != 1 || res[0].Name != tt.want {
				t.Errorf("%s: got %+v, want name %q", tt.name, res, tt.want)
			}
			continue
		}
		var list ErrorList
		if !errors.As(err, &list) {
			t.Errorf("%s: want ErrorList, got %v", tt.name, err)
			continue
		}
		if len(list) != len(tt.errs) {
			t.Errorf("%s: want %d error(s), got %d:\n%v", tt.name, len(tt.errs), len(list), err)
			continue
		}
		for i, want := range tt.errs {
			if !strings.Contains(list[i].Error(), want) {
				t.Errorf("%s: error %d = %q, want it to contain %q", tt.name, i, list[i].Error(), want)
			}
		}
	}
}
