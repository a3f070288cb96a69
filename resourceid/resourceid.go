// Package resourceid parses and checks Azure Resource Manager resource ids
// such as /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute/images/{name}.
//
// ARM treats the fixed segments (subscriptions, resourceGroups, providers, the
// namespace and the type names) case-insensitively and keeps the names' casing,
// so this package does the same.
package resourceid

import (
	"fmt"
	"strings"
)

// ID is a parsed resource id.
type ID struct {
	Subscription  string
	ResourceGroup string // empty for subscription-level ids
	Namespace     string // e.g. Microsoft.Compute; empty for a resource group id
	Types         []string
	Names         []string
}

// Type returns the full resource type, e.g. Microsoft.Compute/galleries/images.
func (id ID) Type() string {
	if id.Namespace == "" {
		if id.ResourceGroup != "" {
			return "Microsoft.Resources/resourceGroups"
		}
		return "Microsoft.Resources/subscriptions"
	}
	return id.Namespace + "/" + strings.Join(id.Types, "/")
}

// Name returns the last name segment.
func (id ID) Name() string {
	switch {
	case len(id.Names) > 0:
		return id.Names[len(id.Names)-1]
	case id.ResourceGroup != "":
		return id.ResourceGroup
	default:
		return id.Subscription
	}
}

// String formats the id in ARM's canonical casing for fixed segments.
func (id ID) String() string {
	var b strings.Builder
	b.WriteString("/subscriptions/" + id.Subscription)
	if id.ResourceGroup != "" {
		b.WriteString("/resourceGroups/" + id.ResourceGroup)
	}
	if id.Namespace != "" {
		b.WriteString("/providers/" + id.Namespace)
		for i, t := range id.Types {
			b.WriteString("/" + t + "/" + id.Names[i])
		}
	}
	return b.String()
}

// Parse parses an id. It checks structure only, not the resource type.
func Parse(s string) (ID, error) {
	if !strings.HasPrefix(s, "/") {
		return ID{}, fmt.Errorf("resource id %q must start with /subscriptions/", s)
	}
	segs := strings.Split(strings.TrimSuffix(s[1:], "/"), "/")
	for _, seg := range segs {
		if seg == "" {
			return ID{}, fmt.Errorf("resource id %q has an empty segment", s)
		}
		if strings.ContainsAny(seg, " \t\n<>{}") {
			return ID{}, fmt.Errorf("resource id %q has an invalid segment %q", s, seg)
		}
	}
	var id ID
	if len(segs) < 2 || !strings.EqualFold(segs[0], "subscriptions") {
		return ID{}, fmt.Errorf("resource id %q must start with /subscriptions/{subscriptionId}", s)
	}
	id.Subscription = segs[1]
	rest := segs[2:]
	if len(rest) >= 1 && strings.EqualFold(rest[0], "resourceGroups") {
		if len(rest) < 2 {
			return ID{}, fmt.Errorf("resource id %q has no resource group name", s)
		}
		id.ResourceGroup = rest[1]
		rest = rest[2:]
	}
	if len(rest) == 0 {
		return id, nil
	}
	if !strings.EqualFold(rest[0], "providers") || len(rest) < 2 {
		return ID{}, fmt.Errorf("resource id %q: expected /providers/{namespace}/... after the resource group", s)
	}
	id.Namespace = rest[1]
	rest = rest[2:]
	if len(rest) == 0 || len(rest)%2 != 0 {
		return ID{}, fmt.Errorf("resource id %q: every resource type must be followed by a name", s)
	}
	for i := 0; i < len(rest); i += 2 {
		id.Types = append(id.Types, rest[i])
		id.Names = append(id.Names, rest[i+1])
	}
	return id, nil
}

// Kind describes one resource type an id must have.
type Kind struct {
	Type        string // full type, e.g. Microsoft.Compute/galleries/images
	Example     string // the expected format, for error messages
	NeedsGroup  bool
	description string
}

// Kinds goldsmith checks.
var (
	ResourceGroup = Kind{Type: "Microsoft.Resources/resourceGroups", NeedsGroup: true,
		Example: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}", description: "resource group"}
	ManagedImage = Kind{Type: "Microsoft.Compute/images", NeedsGroup: true,
		Example: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/images/{imageName}", description: "managed image"}
	GalleryImage = Kind{Type: "Microsoft.Compute/galleries/images", NeedsGroup: true,
		Example: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/galleries/{galleryName}/images/{imageDefinitionName}", description: "gallery image definition"}
	GalleryImageVersion = Kind{Type: "Microsoft.Compute/galleries/images/versions", NeedsGroup: true,
		Example: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/galleries/{galleryName}/images/{imageDefinitionName}/versions/{version}", description: "gallery image version"}
	UserAssignedIdentity = Kind{Type: "Microsoft.ManagedIdentity/userAssignedIdentities", NeedsGroup: true,
		Example: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{identityName}", description: "user-assigned identity"}
	Subnet = Kind{Type: "Microsoft.Network/virtualNetworks/subnets", NeedsGroup: true,
		Example: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/virtualNetworks/{vnetName}/subnets/{subnetName}", description: "subnet"}
)

// ParseAs parses s and checks that it is an id of kind k.
func ParseAs(s string, k Kind) (ID, error) {
	id, err := Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("not a valid %s id, expected %s: %w", k.description, k.Example, err)
	}
	if k.NeedsGroup && id.ResourceGroup == "" {
		return ID{}, fmt.Errorf("%q is not a valid %s id: it has no resource group; expected %s", s, k.description, k.Example)
	}
	if !strings.EqualFold(id.Type(), k.Type) {
		return ID{}, fmt.Errorf("%q is a %s id, not a %s id; expected %s", s, id.Type(), k.description, k.Example)
	}
	return id, nil
}
