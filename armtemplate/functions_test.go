package armtemplate

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// testTemplate declares parameters and variables that function tests use.
const testTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.2.3.4",
  "parameters": {
    "name":  {"type": "string", "defaultValue": "demo"},
    "count": {"type": "int", "defaultValue": 3},
    "flag":  {"type": "bool", "defaultValue": true},
    "obj":   {"type": "object", "defaultValue": {"a": 1, "b": {"c": "x"}}},
    "arr":   {"type": "array", "defaultValue": ["x", "y"]},
    "stamp": {"type": "string", "defaultValue": "[utcNow('yyyyMMdd-HHmm')]"}
  },
  "variables": {
    "prefix": "[concat(parameters('name'), '-v')]",
    "nested": {"k": "[variables('prefix')]", "list": ["[parameters('count')]"]},
    "copy": [{"name": "disks", "count": 2, "input": {"lun": "[copyIndex('disks')]"}}]
  },
  "resources": []
}`

var testNow = time.Date(2024, 3, 5, 14, 7, 9, 0, time.UTC)

func testEvaluator(t *testing.T) *evaluator {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(testTemplate), &doc); err != nil {
		t.Fatal(err)
	}
	ctx := Context{SubscriptionID: "sub-id", ResourceGroup: "rg1", Location: "westeurope", TenantID: "tenant-id", DeploymentName: "dep1", Now: testNow}
	return newEvaluator(normalize(doc).(map[string]any), ctx, &errorSink{}, "", nil, 0)
}

// evalFor evaluates one expression string in the test template.
func evalFor(t *testing.T, expr string, loops ...loop) (any, error) {
	t.Helper()
	ev := testEvaluator(t)
	env := ev.rootEnv()
	for _, l := range loops {
		env = env.with(l)
	}
	v, err := evalString(expr, env)
	if err == nil && len(ev.sink.list) > 0 {
		err = ev.sink.list
	}
	return v, err
}

func TestFunctions(t *testing.T) {
	tests := []struct {
		expr string
		want string // JSON of the expected value
	}{
		// Literals and escapes.
		{"plain text", `"plain text"`},
		{"[[not an expression]", `"[not an expression]"`},
		{"['it''s']", `"it's"`},
		{"[true()]", `true`},
		{"[false()]", `false`},
		{"[null()]", `null`},
		{"[-5]", `-5`},
		// Parameters and variables, case-insensitive names.
		{"[parameters('name')]", `"demo"`},
		{"[PARAMETERS('Name')]", `"demo"`},
		{"[parameters('obj').b.c]", `"x"`},
		{"[parameters('obj').B.C]", `"x"`},
		{"[parameters('obj')['a']]", `1`},
		{"[parameters('arr')[1]]", `"y"`},
		{"[variables('prefix')]", `"demo-v"`},
		{"[variables('nested')]", `{"k":"demo-v","list":[3]}`},
		{"[variables('disks')]", `[{"lun":0},{"lun":1}]`},
		{"[parameters('stamp')]", `"20240305-1407"`},
		// Strings.
		{"[concat('a', 'b', 'c')]", `"abc"`},
		{"[concat('n', 1, true())]", `"n1True"`},
		{"[concat(createArray(1), createArray(2, 3))]", `[1,2,3]`},
		{"[format('{0}-{1}', 'a', 2)]", `"a-2"`},
		{"[format('{0:D3}|{1,4}|{1,-4}|{{x}}', 7, 'ab')]", `"007|  ab|ab  |{x}"`},
		{"[format('{0:N0} {0:X} {0:000000}', 1234567)]", `"1,234,567 12D687 1234567"`},
		{"[format('{0}', true())]", `"True"`},
		{"[string(42)]", `"42"`},
		{"[string(createObject('a', 1, 'b', createArray('x')))]", `"{\"a\":1,\"b\":[\"x\"]}"`},
		{"[string('<&>')]", `"<&>"`},
		{"[string(createArray('<'))]", `"[\"<\"]"`},
		{"[int('17')]", `17`},
		{"[bool('True')]", `true`},
		{"[bool(0)]", `false`},
		{"[json('{\"a\": [1, 2.5, null]}')]", `{"a":[1,2.5,null]}`},
		{"[json('null')]", `null`},
		{"[toLower('ABC')]", `"abc"`},
		{"[toUpper('abc')]", `"ABC"`},
		{"[trim('  x y  ')]", `"x y"`},
		{"[replace('a-b-c', '-', '+')]", `"a+b+c"`},
		{"[split('a,b,,c', ',')]", `["a","b","","c"]`},
		{"[split('a,b;c', createArray(',', ';'))]", `["a","b","c"]`},
		{"[join(createArray('a', 1, true()), '/')]", `"a/1/True"`},
		{"[substring('hello', 1, 3)]", `"ell"`},
		{"[substring('hello', 2)]", `"llo"`},
		{"[indexOf('Hello', 'LL')]", `2`},
		{"[indexOf('hello', 'z')]", `-1`},
		{"[lastIndexOf('abcabc', 'BC')]", `4`},
		{"[indexOf(createArray('a', 'b'), 'b')]", `1`},
		{"[startsWith('Hello', 'he')]", `true`},
		{"[endsWith('Hello', 'LO')]", `true`},
		{"[contains('Hello', 'ell')]", `true`},
		{"[contains('Hello', 'ELL')]", `false`},
		{"[contains(createArray(1, 2), 2)]", `true`},
		{"[contains(parameters('obj'), 'A')]", `true`},
		{"[padLeft('7', 3, '0')]", `"007"`},
		{"[padLeft(42, 5)]", `"   42"`},
		{"[base64('hello')]", `"aGVsbG8="`},
		{"[base64ToString('aGVsbG8=')]", `"hello"`},
		{"[base64ToJson('eyJhIjoxfQ==')]", `{"a":1}`},
		{"[dataUri('Hello')]", `"data:text/plain;charset=utf8;base64,SGVsbG8="`},
		{"[dataUriToString('data:;base64,SGVsbG8=')]", `"Hello"`},
		{"[uri('http://contoso.com/resources/', 'nested/azuredeploy.json')]", `"http://contoso.com/resources/nested/azuredeploy.json"`},
		{"[uri('http://contoso.com/resources/a.json', 'b.json')]", `"http://contoso.com/resources/b.json"`},
		{"[uriComponent('http://contoso.com/a b?x=1&y=ü')]", `"http%3A%2F%2Fcontoso.com%2Fa%20b%3Fx%3D1%26y%3D%C3%BC"`},
		{"[uriComponentToString('http%3A%2F%2Fcontoso.com%2Fa%20b')]", `"http://contoso.com/a b"`},
		// Arrays and objects.
		{"[length('héllo')]", `5`},
		{"[length(parameters('arr'))]", `2`},
		{"[length(parameters('obj'))]", `2`},
		{"[empty('')]", `true`},
		{"[empty(createArray())]", `true`},
		{"[empty(createObject())]", `true`},
		{"[empty(null())]", `true`},
		{"[empty(parameters('arr'))]", `false`},
		{"[first(parameters('arr'))]", `"x"`},
		{"[first('abc')]", `"a"`},
		{"[first(createArray())]", `null`},
		{"[last(parameters('arr'))]", `"y"`},
		{"[last('abc')]", `"c"`},
		{"[take(createArray(1, 2, 3), 2)]", `[1,2]`},
		{"[take('abc', 10)]", `"abc"`},
		{"[skip(createArray(1, 2, 3), 2)]", `[3]`},
		{"[skip('abc', -1)]", `"abc"`},
		{"[union(createArray(1, 2), createArray(2, 3))]", `[1,2,3]`},
		{"[union(createObject('a', 1, 'n', createObject('x', 1)), createObject('b', 2, 'n', createObject('y', 2)))]", `{"a":1,"b":2,"n":{"x":1,"y":2}}`},
		{"[intersection(createArray(1, 2, 3), createArray(3, 2, 9))]", `[2,3]`},
		{"[intersection(createObject('a', 1, 'b', 2), createObject('a', 1, 'b', 3))]", `{"a":1}`},
		{"[createArray('a', 1, createObject())]", `["a",1,{}]`},
		{"[createObject('k', 'v', 'n', null())]", `{"k":"v","n":null}`},
		{"[array('x')]", `["x"]`},
		{"[array(createArray(1))]", `[1]`},
		{"[range(5, 3)]", `[5,6,7]`},
		{"[range(0, 0)]", `[]`},
		{"[items(createObject('b', 2, 'a', 1))]", `[{"key":"a","value":1},{"key":"b","value":2}]`},
		{"[objectKeys(createObject('b', 2, 'a', 1))]", `["a","b"]`},
		{"[shallowMerge(createArray(createObject('a', 1), createObject('a', 2, 'b', 3)))]", `{"a":2,"b":3}`},
		{"[flatten(createArray(createArray(1), createArray(2, 3)))]", `[1,2,3]`},
		{"[tryGet(parameters('obj'), 'b', 'c')]", `"x"`},
		{"[tryGet(parameters('obj'), 'missing')]", `null`},
		{"[coalesce(null(), null(), 'x', 'y')]", `"x"`},
		{"[coalesce(null())]", `null`},
		// Logic, with lazy branches.
		{"[if(true(), 'yes', 'no')]", `"yes"`},
		{"[if(false(), reference('x').id, 'safe')]", `"safe"`},
		{"[and(true(), true(), false())]", `false`},
		{"[and(false(), reference('x'))]", `false`},
		{"[or(false(), true())]", `true`},
		{"[not(parameters('flag'))]", `false`},
		{"[equals('a', 'a')]", `true`},
		{"[equals('a', 'A')]", `false`},
		{"[equals(createArray(1, createObject('a', 'b')), createArray(1, createObject('a', 'b')))]", `true`},
		{"[equals(1, json('1.0'))]", `true`},
		{"[less(1, 2)]", `true`},
		{"[less('b', 'a')]", `false`},
		{"[lessOrEquals(2, 2)]", `true`},
		{"[greater(3, 2)]", `true`},
		{"[greaterOrEquals('b', 'a')]", `true`},
		// Numbers.
		{"[add(2, 3)]", `5`},
		{"[sub(2, 3)]", `-1`},
		{"[mul(4, -3)]", `-12`},
		{"[div(7, 2)]", `3`},
		{"[div(-7, 2)]", `-3`},
		{"[mod(7, 3)]", `1`},
		{"[min(3, 1, 2)]", `1`},
		{"[max(createArray(3, 9, 2))]", `9`},
		// Scope.
		{"[resourceGroup().name]", `"rg1"`},
		{"[resourceGroup().location]", `"westeurope"`},
		{"[resourceGroup().id]", `"/subscriptions/sub-id/resourceGroups/rg1"`},
		{"[resourceGroup().properties.provisioningState]", `"Succeeded"`},
		{"[subscription().subscriptionId]", `"sub-id"`},
		{"[subscription().id]", `"/subscriptions/sub-id"`},
		{"[subscription().tenantId]", `"tenant-id"`},
		{"[tenant().tenantId]", `"tenant-id"`},
		{"[deployment().name]", `"dep1"`},
		{"[deployment().properties.template.contentVersion]", `"1.2.3.4"`},
		{"[environment().name]", `"AzureCloud"`},
		{"[environment().suffixes.storage]", `"core.windows.net"`},
		{"[environment().resourceManager]", `"https://management.azure.com/"`},
		{"[resourceId('Microsoft.Compute/images', 'x')]", `"/subscriptions/sub-id/resourceGroups/rg1/providers/Microsoft.Compute/images/x"`},
		{"[resourceId('otherRg', 'Microsoft.Compute/images', 'x')]", `"/subscriptions/sub-id/resourceGroups/otherRg/providers/Microsoft.Compute/images/x"`},
		{"[resourceId('s2', 'otherRg', 'Microsoft.Compute/images', 'x')]", `"/subscriptions/s2/resourceGroups/otherRg/providers/Microsoft.Compute/images/x"`},
		{"[resourceId('Microsoft.Compute/galleries/images/versions', 'g', 'i', '1.0.0')]", `"/subscriptions/sub-id/resourceGroups/rg1/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0"`},
		{"[resourceId('Microsoft.Network/virtualNetworks/subnets', 'vnet/sub')]", `"/subscriptions/sub-id/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet/subnets/sub"`},
		{"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'abc')]", `"/subscriptions/sub-id/providers/Microsoft.Authorization/roleDefinitions/abc"`},
		{"[subscriptionResourceId('s2', 'Microsoft.Authorization/roleDefinitions', 'abc')]", `"/subscriptions/s2/providers/Microsoft.Authorization/roleDefinitions/abc"`},
		{"[tenantResourceId('Microsoft.Authorization/policyDefinitions', 'p')]", `"/providers/Microsoft.Authorization/policyDefinitions/p"`},
		{"[extensionResourceId(resourceGroup().id, 'Microsoft.Resources/deployments', 'd')]", `"/subscriptions/sub-id/resourceGroups/rg1/providers/Microsoft.Resources/deployments/d"`},
		// Dates.
		{"[dateTimeAdd('2020-04-07 14:53:14Z', 'P3Y')]", `"2023-04-07T14:53:14Z"`},
		{"[dateTimeAdd('2020-04-07T14:53:14Z', '-PT1H30M')]", `"2020-04-07T13:23:14Z"`},
		{"[dateTimeAdd('2020-04-07T14:53:14Z', 'P1D', 'yyyy-MM-dd')]", `"2020-04-08"`},
		{"[dateTimeToEpoch('2020-01-01T00:00:00Z')]", `1577836800`},
		{"[dateTimeFromEpoch(1577836800)]", `"2020-01-01T00:00:00Z"`},
		// Hashes (known values are checked in hash_test.go).
		{"[length(uniqueString(resourceGroup().id))]", `13`},
		{"[guid('a', 'b')]", `"2d796349-8c7e-55ec-9624-54ece82ed031"`},
		// Copy loops.
		{"[copyIndex()]", `4`},
		{"[copyIndex(10)]", `14`},
		{"[copyIndex('outer')]", `4`},
		{"[copyIndex('outer', 1)]", `5`},
	}
	for _, tt := range tests {
		got, err := evalFor(t, tt.expr, loop{name: "outer", index: 4, resource: true})
		if err != nil {
			t.Errorf("%s: unexpected error: %v", tt.expr, err)
			continue
		}
		var want any
		if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
			t.Fatalf("bad want %s: %v", tt.want, err)
		}
		if g, w := compactJSON(got), compactJSON(normalize(want)); g != w {
			t.Errorf("%s\n got %s\nwant %s", tt.expr, g, w)
		}
	}
}

func TestFunctionErrors(t *testing.T) {
	tests := []struct {
		expr string
		msg  string
	}{
		{"[fooBar()]", "unknown ARM template function 'fooBar' (at column 2"},
		{"[concat('a', foo())]", "unknown ARM template function 'foo' (at column 14"},
		{"[reference(parameters('nope')).id]", "parameter 'nope' is not declared"},
		{"[map(createArray(1), lambda('x', 1))]", "lambda functions are not supported"},
		{"[ns.func()]", "user-defined function 'ns.func' is not supported"},
		{"[variables('nope')]", "variable 'nope' is not defined (at column 2"},
		{"[parameters('nope')]", "parameter 'nope' is not declared"},
		{"[concat()]", "concat' takes at least 1 argument, but 0 given"},
		{"[not(1, 2)]", "not' takes 1 argument, but 2 given"},
		{"[substring('abc', 5)]", "start index 5 is outside the string"},
		{"[substring('abc', 1, 5)]", "goes past the end"},
		{"[parameters('arr')[5]]", "index 5 is out of range for an array of length 2 (at column 19"},
		{"[parameters('obj').missing]", "property 'missing' does not exist; available properties are a, b"},
		{"[parameters('name').x]", "cannot read property 'x' of string 'demo'"},
		{"[div(1, 0)]", "division by zero"},
		{"[add(9223372036854775807, 1)]", "integer overflow"},
		{"[int('x1')]", "cannot convert string 'x1' to an integer"},
		{"[json('{')]", "not valid JSON"},
		{"[if('yes', 1, 2)]", "argument 1 must be a bool"},
		{"[createObject('a')]", "key, value pairs"},
		{"[range(0, 10001)]", "between 0 and 10000"},
		{"[format('{1}', 'a')]", "format item {1} refers to argument 1, but only 1 values"},
		{"[format('{0', 'a')]", "never closed"},
		{"[format('{0:Q}', 1)]", "numeric format 'Q' is not supported"},
		{"[utcNow()]", "utcNow() can only be used in a parameter's defaultValue"},
		{"[newGuid()]", "newGuid() can only be used in a parameter's defaultValue"},
		{"[resourceId('x', 'y')]", "no resource type"},
		{"[resourceId('Microsoft.Compute/galleries/images', 'g')]", "needs 2 name segment(s), but 1 were given"},
		{"[resourceId('a', 'b', 'c', 'Microsoft.Compute/images', 'x')]", "takes at most 2 scope arguments"},
		{"[replace('abc', '', 'x')]", "must not be empty"},
		{"[padLeft('x', 3, 'ab')]", "single character"},
		{"[copyIndex('nope')]", "no copy loop named 'nope'"},
		{"[concat('a', createArray(1))]", "concatenate strings with strings"},
		{"[dateTimeAdd('2020-01-01T00:00:00Z', '1D')]", "not an ISO 8601 duration"},
		{"[less('a', 1)]", "arguments must be two integers or two strings"},
		{"[base64ToString('!!')]", "not valid base64"},
		{"[uri('relative/', 'x')]", "not an absolute URI"},
	}
	for _, tt := range tests {
		_, err := evalFor(t, tt.expr, loop{name: "outer", index: 4, resource: true})
		if err == nil {
			t.Errorf("%s: want error containing %q, got none", tt.expr, tt.msg)
			continue
		}
		msg := err.Error()
		if ee, ok := err.(*exprError); ok {
			msg = (&Error{Column: ee.col, Msg: ee.msg}).Error()
		}
		if !strings.Contains(msg, tt.msg) {
			t.Errorf("%s:\n got %s\nwant it to contain %s", tt.expr, msg, tt.msg)
		}
	}
}

func TestCopyIndexOutsideLoop(t *testing.T) {
	_, err := evalFor(t, "[copyIndex()]")
	if err == nil || !strings.Contains(err.Error(), "only be used inside a copy loop") {
		t.Fatalf("got %v", err)
	}
}

func TestNewGUIDInDefault(t *testing.T) {
	doc := map[string]any{
		"parameters": map[string]any{"g": map[string]any{"type": "string", "defaultValue": "[newGuid()]"}},
		"resources":  []any{map[string]any{"type": "A.B/c", "apiVersion": "1", "name": "[parameters('g')]"}},
	}
	res, err := Evaluate(doc, Context{})
	if err != nil {
		t.Fatal(err)
	}
	if n := res[0].Name; len(n) != 36 || n[14] != '4' {
		t.Fatalf("want a random v4 GUID, got %q", n)
	}
}

// TestDeployTimeValues: what only a live deployment knows evaluates to an
// Unknown naming its source, and so does everything computed from it;
// values that do not depend on it are computed as usual.
func TestDeployTimeValues(t *testing.T) {
	tests := []struct {
		expr string
		want string // the Unknown's source, or the JSON of a known value
	}{
		{"[reference('x')]", "reference()"},
		{"[reference('x').id]", "reference()"},
		{"[reference(resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'id1'), '2018-11-30').principalId]", "reference()"},
		{"[reference('x').outputs['a'].value]", "reference()"},
		{"[listKeys('id', '2021-01-01').keys[0].value]", "listKeys()"},
		{"[listSecrets('id', '2021-01-01')]", "listSecrets()"},
		{"[pickZones('Microsoft.Compute', 'virtualMachines', 'westus2')]", "pickZones()"},
		{"[deployment().properties.templateLink.uri]", "deployment().properties.templateLink"},
		{"[uri(deployment().properties.templateLink.uri, 'scripts/a.sh')]", "deployment().properties.templateLink"},
		{"[concat('https://', reference('x').host, '/a')]", "reference()"},
		{"[format('{0}-{1}', 'a', reference('x').name)]", "reference()"},
		{"[toLower(reference('x').name)]", "reference()"},
		{"[createArray('a', reference('x'))[0]]", `"a"`},
		{"[createArray('a', reference('x'))[1]]", "reference()"},
		{"[length(createArray('a', reference('x')))]", `2`},
		{"[string(createObject('a', reference('x')))]", "reference()"},
		{"[if(equals(reference('x').state, 'on'), 'a', 'b')]", "reference()"},
		{"[if(true(), reference('x').id, 'safe')]", "reference()"},
		{"[coalesce(reference('x').id, 'fallback')]", "reference()"},
		{"[coalesce('first', reference('x').id)]", `"first"`},
		{"[and(true(), reference('x').on)]", "reference()"},
		{"[or(true(), reference('x').on)]", `true`},
		{"[parameters('obj')[reference('x').key]]", "reference()"},
	}
	for _, tt := range tests {
		v, err := evalFor(t, tt.expr)
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		got := ""
		if u, ok := v.(Unknown); ok {
			got = u.Source
		} else {
			b, _ := json.Marshal(plainJSON(v))
			got = string(b)
		}
		if got != tt.want {
			t.Errorf("%s = %s, want %s", tt.expr, got, tt.want)
		}
	}
	if u, ok := UnknownKey(Unknown{Source: "reference()"}.String()); !ok || u.Source != "reference()" {
		t.Errorf("UnknownKey does not read back an Unknown's String: %v %v", u, ok)
	}
	if _, ok := UnknownKey("plain"); ok {
		t.Error("UnknownKey took a plain key for an unknown one")
	}
	if _, err := json.Marshal(map[string]any{"a": Unknown{Source: "reference()"}}); err == nil || !strings.Contains(err.Error(), "known only when ARM deploys") {
		t.Errorf("an Unknown must not marshal to JSON: %v", err)
	}
}
