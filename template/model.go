// Package template owns AIB image templates: one canonical model for every
// imageTemplates apiVersion, the parsers that turn each version's JSON into it
// (field names, casing and defaults differ between versions), and validation
// that reports every mistake at once with AIB's provisioningError codes.
package template

import "github.com/goldsmith-dev/goldsmith/vmsize"

// Template is an image template in canonical form, whatever apiVersion it came in.
type Template struct {
	APIVersion string            `json:"apiVersion"`
	Name       string            `json:"name,omitempty"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Identity   *Identity         `json:"identity,omitempty"`
	Properties Properties        `json:"properties"`
}

// Identity is the template's managed identity (AIB allows one user-assigned identity).
type Identity struct {
	Type                   string   `json:"type"`
	UserAssignedIdentities []string `json:"userAssignedIdentities,omitempty"`
}

// Properties holds what the template asks for.
type Properties struct {
	Source                Source            `json:"source"`
	Customize             []Customizer      `json:"customize,omitempty"`
	Validate              *Validate         `json:"validate,omitempty"`
	Optimize              *Optimize         `json:"optimize,omitempty"`
	Distribute            []Distributor     `json:"distribute"`
	ErrorHandling         *ErrorHandling    `json:"errorHandling,omitempty"`
	BuildTimeoutInMinutes int               `json:"buildTimeoutInMinutes"`
	VMProfile             VMProfile         `json:"vmProfile"`
	StagingResourceGroup  string            `json:"stagingResourceGroup,omitempty"`
	AutoRun               *AutoRun          `json:"autoRun,omitempty"`
	ManagedResourceTags   map[string]string `json:"managedResourceTags,omitempty"`
	AdditionalDataDisks   []DataDisk        `json:"additionalDataDisks,omitempty"`
}

// DataDisk is an extra empty data disk for the build VM (2025-10-01 and later).
type DataDisk struct {
	SizeGB int `json:"sizeGB"`
}

// Defaults AIB applies.
const (
	DefaultBuildTimeoutMinutes = 240
	MaxBuildTimeoutMinutes     = 960
	DefaultVMSize              = vmsize.Default
)

// EffectiveTimeoutMinutes is buildTimeoutInMinutes with AIB's default for 0.
func (p Properties) EffectiveTimeoutMinutes() int {
	if p.BuildTimeoutInMinutes == 0 {
		return DefaultBuildTimeoutMinutes
	}
	return p.BuildTimeoutInMinutes
}

// SourceType names a source kind in canonical casing.
type SourceType string

const (
	SourcePlatformImage      SourceType = "PlatformImage"
	SourceManagedImage       SourceType = "ManagedImage"
	SourceSharedImageVersion SourceType = "SharedImageVersion"
	SourceISO                SourceType = "ISO"
)

// Source is the image the build starts from.
type Source struct {
	Type SourceType `json:"type"`
	// PlatformImage
	Publisher    string    `json:"publisher,omitempty"`
	Offer        string    `json:"offer,omitempty"`
	SKU          string    `json:"sku,omitempty"`
	Version      string    `json:"version,omitempty"`
	PlanInfo     *PlanInfo `json:"planInfo,omitempty"`
	ExactVersion string    `json:"exactVersion,omitempty"`
	// ManagedImage
	ImageID string `json:"imageId,omitempty"`
	// SharedImageVersion
	ImageVersionID string `json:"imageVersionId,omitempty"`
	// ISO (previews only; refused since 31 March 2020, see isoRefusal)
	SourceURI      string `json:"sourceUri,omitempty"`
	SHA256Checksum string `json:"sha256Checksum,omitempty"`
}

// URN is publisher:offer:sku:version of a platform image.
func (s Source) URN() string { return s.Publisher + ":" + s.Offer + ":" + s.SKU + ":" + s.Version }

// PlanInfo is a Marketplace purchase plan.
type PlanInfo struct {
	PlanName      string `json:"planName"`
	PlanProduct   string `json:"planProduct"`
	PlanPublisher string `json:"planPublisher"`
}

// CustomizerType names a customizer (or in-VM validator) kind in canonical casing.
type CustomizerType string

const (
	CustomizeShell          CustomizerType = "Shell"
	CustomizePowerShell     CustomizerType = "PowerShell"
	CustomizeFile           CustomizerType = "File"
	CustomizeWindowsRestart CustomizerType = "WindowsRestart"
	CustomizeWindowsUpdate  CustomizerType = "WindowsUpdate"
)

// Customizer is one customization step, or one in-VM validation.
type Customizer struct {
	Type CustomizerType `json:"type"`
	Name string         `json:"name,omitempty"`
	// Shell, PowerShell
	ScriptURI      string   `json:"scriptUri,omitempty"`
	Inline         []string `json:"inline,omitempty"`
	SHA256Checksum string   `json:"sha256Checksum,omitempty"`
	// PowerShell
	ValidExitCodes []int `json:"validExitCodes,omitempty"`
	RunElevated    bool  `json:"runElevated,omitempty"`
	RunAsSystem    bool  `json:"runAsSystem,omitempty"`
	// File
	SourceURI   string `json:"sourceUri,omitempty"`
	Destination string `json:"destination,omitempty"`
	// WindowsRestart
	RestartCommand      string `json:"restartCommand,omitempty"`
	RestartCheckCommand string `json:"restartCheckCommand,omitempty"`
	RestartTimeout      string `json:"restartTimeout,omitempty"`
	// WindowsUpdate
	SearchCriteria string   `json:"searchCriteria,omitempty"`
	Filters        []string `json:"filters,omitempty"`
	UpdateLimit    int      `json:"updateLimit,omitempty"`
}

// Validate is the validation phase (2022-02-14 and later).
type Validate struct {
	ContinueDistributeOnFailure bool         `json:"continueDistributeOnFailure,omitempty"`
	SourceValidationOnly        bool         `json:"sourceValidationOnly,omitempty"`
	InVMValidations             []Customizer `json:"inVMValidations,omitempty"`
}

// Optimize asks for VM boot optimization (2022-07-01 and later) and workload
// optimization (2025-10-01 and later).
type Optimize struct {
	VMBootState    string `json:"vmBootState,omitempty"` // Enabled | Disabled
	WorkloadState  string `json:"workloadState,omitempty"`
	WorkloadScript string `json:"workloadScriptUri,omitempty"`
	WorkloadSHA256 string `json:"workloadSha256Checksum,omitempty"`
}

// ErrorHandling says what to do with the build VM on failure (2023-07-01 and later).
type ErrorHandling struct {
	OnCustomizerError string `json:"onCustomizerError,omitempty"` // cleanup | abort
	OnValidationError string `json:"onValidationError,omitempty"` // cleanup | abort
}

// AutoRun runs the template when it is created (2024-02-01 and later).
type AutoRun struct {
	State string `json:"state"` // Enabled | Disabled
}

// VMProfile describes the build VM.
type VMProfile struct {
	VMSize                 string      `json:"vmSize,omitempty"`
	OSDiskSizeGB           int         `json:"osDiskSizeGB,omitempty"`
	UserAssignedIdentities []string    `json:"userAssignedIdentities,omitempty"`
	VNetConfig             *VNetConfig `json:"vnetConfig,omitempty"`
}

// EffectiveVMSize is vmSize with AIB's default.
func (v VMProfile) EffectiveVMSize() string {
	if v.VMSize == "" {
		return DefaultVMSize
	}
	return v.VMSize
}

// VNetConfig places the build VM in an existing network.
type VNetConfig struct {
	SubnetID                  string `json:"subnetId,omitempty"`
	ContainerInstanceSubnetID string `json:"containerInstanceSubnetId,omitempty"`
	ProxyVMSize               string `json:"proxyVmSize,omitempty"`
	// The 2019-05-01-preview shape.
	Name              string `json:"name,omitempty"`
	SubnetName        string `json:"subnetName,omitempty"`
	ResourceGroupName string `json:"resourceGroupName,omitempty"`
}

// DistributeType names a distribution target kind in canonical casing.
type DistributeType string

const (
	DistributeManagedImage DistributeType = "ManagedImage"
	DistributeSharedImage  DistributeType = "SharedImage"
	DistributeVHD          DistributeType = "VHD"
)

// Distributor is one distribution target; each produces one runOutput.
type Distributor struct {
	Type          DistributeType    `json:"type"`
	RunOutputName string            `json:"runOutputName"`
	ArtifactTags  map[string]string `json:"artifactTags,omitempty"`
	// ManagedImage
	ImageID  string `json:"imageId,omitempty"`
	Location string `json:"location,omitempty"`
	// SharedImage
	GalleryImageID     string         `json:"galleryImageId,omitempty"`
	ReplicationRegions []string       `json:"replicationRegions,omitempty"`
	TargetRegions      []TargetRegion `json:"targetRegions,omitempty"`
	Versioning         *Versioning    `json:"versioning,omitempty"`
	ExcludeFromLatest  bool           `json:"excludeFromLatest,omitempty"`
	StorageAccountType string         `json:"storageAccountType,omitempty"`
	ReplicationMode    string         `json:"replicationMode,omitempty"` // Full | Shallow
	// VHD
	URI string `json:"uri,omitempty"`
}

// TargetRegion is one replication region of a gallery version.
type TargetRegion struct {
	Name               string `json:"name"`
	ReplicaCount       int    `json:"replicaCount,omitempty"`
	StorageAccountType string `json:"storageAccountType,omitempty"`
}

// Versioning says how a gallery version number is chosen.
type Versioning struct {
	Scheme string `json:"scheme"`          // Latest | Source
	Major  *int   `json:"major,omitempty"` // Latest only; -1 means unset
}

// OSType is the operating system family of a source.
type OSType string

const (
	OSUnknown OSType = ""
	OSLinux   OSType = "Linux"
	OSWindows OSType = "Windows"
)
