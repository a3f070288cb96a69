package template

import "slices"

// APIVersion describes what one imageTemplates apiVersion accepts. Versions are
// ordered; a feature is available from the version that introduced it on.
type APIVersion struct {
	Name    string
	Preview bool
	// StrictCase: property names must match exactly (2024-02-01 and later).
	// Earlier versions matched property names case-insensitively.
	StrictCase bool
	// LatestVersionAllowed: PlatformImage version may be "latest".
	LatestVersionAllowed bool
	// ScriptField is the property holding a script URI: "script" in the oldest
	// previews, "scriptUri" later.
	ScriptField string
	// ISOField is the ISO source's URI property name.
	ISOField         string
	ISO              bool // the schema has ISO sources (previews only); refused since 31 March 2020, see isoRefusal
	IdentityRequired bool // identity must be present (2020-02-14 and later)
	Identity         bool
	SharedImageVer   bool // SharedImageVersion source
	VMProfile        bool // vmProfile and buildTimeoutInMinutes
	ManagedImageSrc  bool // ManagedImage source (2019-02-01-preview and later)
	VHD              bool // VHD distribution (2019-02-01-preview and later)
	FileCustomizer   bool
	WindowsUpdate    bool
	PowerShell       bool
	WindowsRestart   bool
	PlanInfo         bool // PlatformImage planInfo, PowerShell runAsSystem, gallery excludeFromLatest/storageAccountType
	DottedNames      bool // names may contain '.' (2020-02-14 and later)
	VMIdentities     bool // vmProfile.userAssignedIdentities
	VNetSubnetID     bool // vnetConfig.subnetId (older previews: name/subnetName/resourceGroupName)
	ProxyVMSize      bool
	Validate         bool // validate, stagingResourceGroup
	Optimize         bool
	Triggers         bool
	TargetRegions    bool // sharedImage targetRegions and versioning; replicationRegions optional; VHD uri; File validator
	ErrorHandling    bool
	ReplicationMode  bool // sharedImage replicationMode, optimize.workload
	AutoRun          bool // autoRun, managedResourceTags
	ContainerSubnet  bool // vnetConfig.containerInstanceSubnetId
	DataDisks        bool // properties.additionalDataDisks
	WrappedErrors    bool // ARM error envelope {"error":{...}} (2021-10-01 and later)
}

// apiVersions lists every supported apiVersion, oldest first. The facts come
// from the imagebuilder specification in Azure/azure-rest-api-specs (one
// swagger per version; TypeSpec for 2025-10-01) and, for 2019-05-01-preview,
// from the AIB template reference in shared/spec, which documents vnetConfig's
// older shape, osDiskSizeGB and WindowsUpdate for that version. Each entry is
// built from the previous one so a change reads as what that version added.
var apiVersions = func() []APIVersion {
	v := APIVersion{Name: "2018-02-01-preview", Preview: true, ScriptField: "script", ISOField: "sourceURI", ISO: true}
	out := []APIVersion{v}
	add := func(name string, change func(*APIVersion)) {
		v.Name = name
		change(&v)
		out = append(out, v)
	}
	add("2019-02-01-preview", func(v *APIVersion) {
		v.PowerShell, v.WindowsRestart, v.ManagedImageSrc, v.VHD = true, true, true, true
	})
	add("2019-05-01-preview", func(v *APIVersion) {
		v.LatestVersionAllowed = true
		v.ScriptField = "scriptUri"
		v.ISOField = "sourceUri"
		v.Identity, v.SharedImageVer, v.VMProfile, v.FileCustomizer, v.WindowsUpdate = true, true, true, true, true
	})
	add("2020-02-14", func(v *APIVersion) {
		v.Preview, v.ISO = false, false
		v.IdentityRequired, v.VNetSubnetID, v.PlanInfo, v.DottedNames = true, true, true, true
	})
	add("2021-10-01", func(v *APIVersion) { v.VMIdentities, v.ProxyVMSize, v.WrappedErrors = true, true, true })
	add("2022-02-14", func(v *APIVersion) { v.Validate = true })
	add("2022-07-01", func(v *APIVersion) { v.Optimize, v.Triggers, v.TargetRegions = true, true, true })
	add("2023-07-01", func(v *APIVersion) { v.ErrorHandling = true })
	add("2024-02-01", func(v *APIVersion) { v.StrictCase, v.AutoRun, v.ContainerSubnet = true, true, true })
	add("2025-10-01", func(v *APIVersion) { v.DataDisks, v.ReplicationMode = true, true })
	return out
}()

// LookupAPIVersion returns the rules of a supported apiVersion.
func LookupAPIVersion(name string) (APIVersion, bool) {
	i := slices.IndexFunc(apiVersions, func(v APIVersion) bool { return v.Name == name })
	if i < 0 {
		return APIVersion{}, false
	}
	return apiVersions[i], true
}

// APIVersions lists the supported apiVersion names, oldest first.
func APIVersions() []string {
	names := make([]string, len(apiVersions))
	for i, v := range apiVersions {
		names[i] = v.Name
	}
	return names
}

// LatestAPIVersion is the newest supported apiVersion.
func LatestAPIVersion() string { return apiVersions[len(apiVersions)-1].Name }
