package template

import "strings"

// Options tune how a template is read.
type Options struct {
	// APIVersion is used when the document carries none.
	APIVersion string
	// OSOf tells the operating system of a source. The platform image catalog
	// answers it once it exists; by default PlatformImage sources are judged
	// by publisher and other sources are unknown until the build resolves them.
	OSOf func(Source) OSType
}

func (o Options) osOf(s Source) OSType {
	if o.OSOf != nil {
		return o.OSOf(s)
	}
	return OSByPublisher(s)
}

// Publishers of Marketplace images, by operating system (lower case).
var (
	linuxPublishers = []string{
		"debian", "canonical", "redhat", "rhel", "suse", "openlogic", "credativ", "oracle",
		"almalinux", "resf", "kinvolk", "center-for-internet-security-inc", "erockyenterprisesoftwarefoundationinc1653071250513",
		"cloudera", "microsoftcblmariner", "microsoft-aks", "azurelinux", "ntegralinc1586961136942", "procomputers",
	}
	windowsPublishers = []string{
		"microsoftwindowsserver", "microsoftwindowsdesktop", "microsoftvisualstudio", "microsoftsqlserver",
		"microsoftwindowsserverhpcpack", "microsoft-hyperv", "microsoftdynamicsax", "microsoftbiztalkserver",
		"microsoftsharepoint", "microsoft-windows-server",
	}
)

// OSByPublisher decides the OS of a PlatformImage source from its publisher
// (and, for publishers that ship both, its offer), or OSUnknown.
func OSByPublisher(s Source) OSType {
	if s.Type != SourcePlatformImage {
		return OSUnknown
	}
	pub := strings.ToLower(s.Publisher)
	for _, p := range windowsPublishers {
		if pub == p {
			return OSWindows
		}
	}
	for _, p := range linuxPublishers {
		if pub == p {
			return OSLinux
		}
	}
	offer := strings.ToLower(s.Offer)
	switch {
	case strings.Contains(offer, "windows"):
		return OSWindows
	case strings.Contains(offer, "ubuntu"), strings.Contains(offer, "debian"), strings.Contains(offer, "rhel"), strings.Contains(offer, "centos"):
		return OSLinux
	}
	return OSUnknown
}
