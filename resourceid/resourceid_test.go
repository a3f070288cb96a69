package resourceid

import "testing"

func TestParseAs(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		kind    Kind
		wantErr bool
		want    string // canonical String()
	}{
		{"managed image", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/images/img", ManagedImage, false,
			"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/images/img"},
		{"case-insensitive fixed segments", "/SUBSCRIPTIONS/s1/resourcegroups/RG/Providers/microsoft.compute/IMAGES/Img", ManagedImage, false,
			"/subscriptions/s1/resourceGroups/RG/providers/microsoft.compute/IMAGES/Img"},
		{"gallery image", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i", GalleryImage, false,
			"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i"},
		{"version is not a definition", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0", GalleryImage, true, ""},
		{"version", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0", GalleryImageVersion, false,
			"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0"},
		{"identity", "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1", UserAssignedIdentity, false,
			"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"},
		{"resource group", "/subscriptions/s/resourceGroups/rg", ResourceGroup, false, "/subscriptions/s/resourceGroups/rg"},
		{"trailing slash", "/subscriptions/s/resourceGroups/rg/", ResourceGroup, false, "/subscriptions/s/resourceGroups/rg"},
		{"placeholder", "/subscriptions/<subscriptionID>/resourceGroups/rg/providers/Microsoft.Compute/images/x", ManagedImage, true, ""},
		{"no leading slash", "subscriptions/s/resourceGroups/rg", ResourceGroup, true, ""},
		{"missing name", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/images", ManagedImage, true, ""},
		{"empty segment", "/subscriptions//resourceGroups/rg", ResourceGroup, true, ""},
		{"wrong type", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d", ManagedImage, true, ""},
		{"no group", "/subscriptions/s/providers/Microsoft.Compute/images/x", ManagedImage, true, ""},
		{"empty", "", ManagedImage, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ParseAs(tt.id, tt.kind)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseAs(%q) error = %v, wantErr %v", tt.id, err, tt.wantErr)
			}
			if err == nil && id.String() != tt.want {
				t.Errorf("String() = %q, want %q", id.String(), tt.want)
			}
		})
	}
}

func TestName(t *testing.T) {
	id, err := Parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if id.Name() != "1.2.3" || id.Type() != "Microsoft.Compute/galleries/images/versions" {
		t.Errorf("Name %q Type %q", id.Name(), id.Type())
	}
}
