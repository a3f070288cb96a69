package arm

import (
	"net/http"
	"slices"
	"strings"

	"github.com/goldsmith-dev/goldsmith/identity"
	"github.com/goldsmith-dev/goldsmith/resource"
)

// The subscription-level endpoints a client uses around the resources:
// tenants and subscriptions (what `az login` lists), locations (what `az
// image builder create` checks regions against) and resource providers
// (what `az resource` picks its api-version from).

// famSubscriptionsVersions are the api-versions of Microsoft.Resources'
// subscriptions, tenants and locations (the Azure CLI 2.45 sends
// 2019-11-01; armsubscriptions 2022-12-01).
var famSubscriptionsVersions = []string{"2016-06-01", "2018-06-01", "2019-06-01", "2019-11-01", "2020-01-01", "2021-01-01", "2022-12-01"}

// authorized refuses a caller a subscription it may not use, in any path
// that names one (ARM's and goldsmith's own).
func (s *Server) authorized(rq *request, segs []string) bool {
	i := 0
	if len(segs) >= 2 && strings.EqualFold(segs[0], "goldsmith") && strings.EqualFold(segs[1], "v1") {
		i = 2
	}
	if len(segs) < i+2 || !strings.EqualFold(segs[i], "subscriptions") || rq.caller.CanUse(segs[i+1]) {
		return true
	}
	writeError(rq.w, errorf(resource.KindForbidden, "AuthorizationFailed",
		"The client '%s' does not have authorization to perform action '%s %s' over scope '/subscriptions/%s' or the scope is invalid.",
		rq.caller.Name, rq.r.Method, rq.r.URL.Path, segs[i+1]), wrapped)
	return false
}

func (s *Server) checkSubscriptionsVersion(rq *request) bool {
	if rq.version == "" {
		writeError(rq.w, errorf(resource.KindBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests."), wrapped)
		return false
	}
	if !slices.Contains(famSubscriptionsVersions, rq.version) {
		writeError(rq.w, errorf(resource.KindBadRequest, "InvalidApiVersionParameter",
			"The api-version '%s' is invalid. The supported versions are '%s'.", rq.version, strings.Join(famSubscriptionsVersions, ", ")), wrapped)
		return false
	}
	if rq.r.Method != http.MethodGet {
		methodNotAllowed(rq)
		return false
	}
	return true
}

// callerSubscriptions are the subscriptions a caller lists: a principal's
// own, or for a static token (which may use any) the default one.
func callerSubscriptions(c identity.Caller) []string {
	if c.Subscriptions == nil {
		return []string{identity.DefaultSubscription}
	}
	return c.Subscriptions
}

func (s *Server) renderSubscription(sub string) map[string]any {
	return map[string]any{
		"id": "/subscriptions/" + sub, "subscriptionId": sub, "displayName": "goldsmith",
		"state": "Enabled", "tenantId": s.auth.Tenant(), "authorizationSource": "RoleBased",
		"subscriptionPolicies": map[string]any{"locationPlacementId": "Public_2014-09-01", "quotaId": "goldsmith", "spendingLimit": "Off"},
	}
}

// subscriptions answers GET /subscriptions and GET /subscriptions/{s}.
func (s *Server) subscriptions(rq *request, rest []string) {
	if !s.checkSubscriptionsVersion(rq) {
		return
	}
	if len(rest) == 1 {
		writeJSON(rq.w, http.StatusOK, s.renderSubscription(rest[0]))
		return
	}
	var items []any
	for _, sub := range callerSubscriptions(rq.caller) {
		items = append(items, s.renderSubscription(sub))
	}
	s.writeList(rq, items, "")
}

// tenants answers GET /tenants: the one tenant goldsmith is.
func (s *Server) tenants(rq *request) {
	if !s.checkSubscriptionsVersion(rq) {
		return
	}
	t := s.auth.Tenant()
	s.writeList(rq, []any{map[string]any{"id": "/tenants/" + t, "tenantId": t, "tenantCategory": "Home", "displayName": "goldsmith"}}, "")
}

// regionDisplayNames are Azure's display names of the regions goldsmith
// serves by default; other configured regions show their name.
var regionDisplayNames = map[string]string{
	"eastus": "East US", "eastus2": "East US 2", "westcentralus": "West Central US", "westus": "West US",
	"westus2": "West US 2", "westus3": "West US 3", "northeurope": "North Europe", "westeurope": "West Europe",
	"centralus": "Central US", "southcentralus": "South Central US", "northcentralus": "North Central US",
	"uksouth": "UK South", "australiaeast": "Australia East", "southeastasia": "Southeast Asia",
}

func regionDisplayName(name string) string {
	if d, ok := regionDisplayNames[name]; ok {
		return d
	}
	return name
}

// locations answers GET /subscriptions/{s}/locations: the configured regions.
func (s *Server) locations(rq *request, sub string) {
	if !s.checkSubscriptionsVersion(rq) {
		return
	}
	var items []any
	for _, name := range s.svc.Regions().Names() {
		d := regionDisplayName(name)
		items = append(items, map[string]any{
			"id": "/subscriptions/" + sub + "/locations/" + name, "name": name, "displayName": d, "regionalDisplayName": d,
			"type": "Region", "metadata": map[string]any{"regionType": "Physical", "regionCategory": "Recommended"},
		})
	}
	s.writeList(rq, items, "")
}

// providerTypes are the resource types each served namespace has, with the
// family whose api-versions they answer.
type providerType struct {
	name string
	fam  family
}

type provider struct {
	namespace string
	types     []providerType
}

var providerTypes = []provider{
	{"Microsoft.VirtualMachineImages", []providerType{{"imageTemplates", famAIB}, {"imageTemplates/runOutputs", famAIB}, {"imageTemplates/triggers", famAIB},
		{"locations", famAIB}, {"locations/operations", famAIB}, {"operations", famAIB}}},
	{"Microsoft.Compute", []providerType{{"images", famComputeImages}, {"galleries", famGalleries}, {"galleries/images", famGalleries},
		{"galleries/images/versions", famGalleries}}},
	{"Microsoft.ManagedIdentity", []providerType{{"userAssignedIdentities", famIdentity}}},
}

func (s *Server) renderProvider(sub string, i int) map[string]any {
	p := providerTypes[i]
	var regions []string
	for _, name := range s.svc.Regions().Names() {
		regions = append(regions, regionDisplayName(name))
	}
	var types []any
	for _, t := range p.types {
		versions := slices.Clone(apiVersions[t.fam])
		if t.name == "imageTemplates/triggers" {
			versions = slices.DeleteFunc(versions, func(v string) bool { return v < "2022-07-01" })
		}
		// Newest first, as ARM lists them: `az resource` takes the first
		// one that is not a preview.
		slices.SortFunc(versions, func(a, b string) int { return strings.Compare(b, a) })
		types = append(types, map[string]any{"resourceType": t.name, "locations": regions, "apiVersions": versions,
			"capabilities": "None"})
	}
	return map[string]any{
		"id": "/subscriptions/" + sub + "/providers/" + p.namespace, "namespace": p.namespace,
		"registrationState": "Registered", "registrationPolicy": "RegistrationRequired", "resourceTypes": types,
	}
}

// providers answers GET /subscriptions/{s}/providers[/{namespace}] and
// POST …/{namespace}/register (always Registered).
func (s *Server) providers(rq *request, sub string, rest []string) {
	if err := checkAPIVersion(famResources, rq.version, "Microsoft.Resources/providers", ""); err != nil {
		writeError(rq.w, err, wrapped)
		return
	}
	register := len(rest) == 2
	if register && rq.r.Method != http.MethodPost || !register && rq.r.Method != http.MethodGet {
		methodNotAllowed(rq)
		return
	}
	if len(rest) == 0 {
		var items []any
		for i := range providerTypes {
			items = append(items, s.renderProvider(sub, i))
		}
		s.writeList(rq, items, "")
		return
	}
	i := slices.IndexFunc(providerTypes, func(p provider) bool {
		return strings.EqualFold(p.namespace, rest[0])
	})
	if i < 0 {
		writeError(rq.w, errorf(resource.KindNotFound, "InvalidResourceNamespace",
			"The resource namespace '%s' is invalid: goldsmith serves Microsoft.VirtualMachineImages, Microsoft.Compute and Microsoft.ManagedIdentity.", rest[0]), wrapped)
		return
	}
	writeJSON(rq.w, http.StatusOK, s.renderProvider(sub, i))
}
