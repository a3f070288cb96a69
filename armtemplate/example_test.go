package armtemplate_test

import (
	"encoding/json"
	"fmt"

	"github.com/goldsmith-dev/goldsmith/armtemplate"
)

func ExampleImageTemplates() {
	var doc map[string]any
	_ = json.Unmarshal([]byte(`{
	  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
	  "contentVersion": "1.0.0.0",
	  "parameters": {"imageTemplateName": {"type": "string"}},
	  "resources": [{
	    "type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-02-14",
	    "name": "[parameters('imageTemplateName')]", "location": "[resourceGroup().location]",
	    "properties": {"distribute": [{"type": "ManagedImage", "runOutputName": "out",
	      "imageId": "[resourceId('Microsoft.Compute/images', parameters('imageTemplateName'))]"}]}
	  }]
	}`), &doc)

	params, err := armtemplate.ParseParameterFile([]byte(`{"parameters": {"imageTemplateName": {"value": "ubuntu"}}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := armtemplate.ImageTemplates(doc, armtemplate.Context{
		SubscriptionID: "sub", ResourceGroup: "rg", Location: "westus2", Parameters: params,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range res {
		props := r.Body["properties"].(map[string]any)
		fmt.Println(r.Path, r.Name, r.Body["location"], props["distribute"].([]any)[0].(map[string]any)["imageId"])
	}
	// Output:
	// resources[0] ubuntu westus2 /subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/images/ubuntu
}
