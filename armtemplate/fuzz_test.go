package armtemplate

import (
	"testing"
)

// FuzzEvaluateExpression checks that no expression string, however
// malformed, makes the evaluator panic or hang. Seeds are expressions seen
// in real AIB deployment templates.
func FuzzEvaluateExpression(f *testing.F) {
	seeds := []string{
		"[parameters('imageTemplateName')]",
		"[resourceGroup().location]",
		"[concat('/subscriptions/', subscription().subscriptionId, '/resourceGroups/', resourceGroup().name)]",
		"[format('{0}/{1}', parameters('AutomationAccountName'), variables('Modules')[copyIndex()].name)]",
		"[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', parameters('identityName'))]",
		"[if(not(empty(parameters('SubnetName'))), createObject('subnetId', resourceId(parameters('VirtualNetworkResourceGroupName'), 'Microsoft.Network/virtualNetworks/subnets', parameters('VirtualNetworkName'), parameters('SubnetName'))), null())]",
		"[guid(variables('Roles')[range(0, length(variables('Roles')))[copyIndex()]].name, subscription().id)]",
		"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', guid(variables('Roles')[range(0, length(variables('Roles')))[copyIndex()]].name, subscription().id))]",
		"[format('https://{0}.blob.{1}/{2}/', parameters('StorageAccountName'), environment().suffixes.storage, parameters('StorageContainerName'))]",
		"[utcNow('yyyyMMddhhmmss')]",
		"[dateTimeAdd(parameters('Time'), 'PT15M')]",
		"[equals(environment().name, 'AzureUSGovernment')]",
		"[uniqueString(resourceGroup().id)]",
		"[split(parameters('ImageSku'), '-')[0]]",
		"[union(parameters('tags'), createObject('imagebuilderTemplate', 'win11'))]",
		"[or(or(parameters('DeployOffice'), parameters('DeployVisio')), parameters('DeployProject'))]",
		"[extensionResourceId(format('/subscriptions/{0}/resourceGroups/{1}', subscription().subscriptionId, parameters('rg')), 'Microsoft.Resources/deployments', 'x')]",
		"[toLower(substring(uniqueString(resourceGroup().id), 0, 5))]",
		"[reference(resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', parameters('Name')), '2018-11-30').principalId]",
		"[json('{\"a\": [1, 2]}').a[1]]",
		"[[literal]",
		"[padLeft(copyIndex(1), 3, '0')]",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		ev := testEvaluator(t)
		env := ev.rootEnv().with(loop{name: "loop", index: 2, resource: true})
		_, _ = evalString(expr, env)
		env.inDefault = true
		_, _ = evalString(expr, env)
	})
}
