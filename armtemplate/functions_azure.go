package armtemplate

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// envInfo is the deployment scope an expression is evaluated in.
type envInfo struct {
	ctx            Context // with defaults applied
	now            time.Time
	inDefault      bool // evaluating a parameter's defaultValue
	contentVersion string
}

// Resource ids.

// splitResourceIDArgs finds the resource type (the first argument with a
// '/') and checks the names that follow it against the type's segments.
func splitResourceIDArgs(args []any, maxScope int, fname string) (scope []string, suffix string, err error) {
	s, err := stringArgs(args)
	if err != nil {
		return nil, "", err
	}
	t := -1
	for i, a := range s {
		if strings.Contains(a, "/") {
			t = i
			break
		}
	}
	if t < 0 {
		return nil, "", fmt.Errorf("no resource type such as 'Microsoft.Compute/images' among the arguments")
	}
	if t > maxScope {
		return nil, "", fmt.Errorf("argument %d ('%s') looks like a resource type, but %s takes at most %d scope arguments before the type", t+1, s[t], fname, maxScope)
	}
	segs := strings.Split(s[t], "/")
	namespace, types := segs[0], segs[1:]
	if namespace == "" || len(types) == 0 || types[0] == "" {
		return nil, "", fmt.Errorf("'%s' is not a resource type like 'Microsoft.Compute/images'", s[t])
	}
	var names []string
	for _, n := range s[t+1:] {
		names = append(names, strings.Split(n, "/")...)
	}
	if len(names) != len(types) {
		return nil, "", fmt.Errorf("resource type '%s' needs %d name segment(s), but %d were given", s[t], len(types), len(names))
	}
	var b strings.Builder
	b.WriteString("/providers/")
	b.WriteString(namespace)
	for i := range types {
		b.WriteString("/" + types[i] + "/" + names[i])
	}
	return s[:t], b.String(), nil
}

func fnResourceID(env evalEnv, args []any) (any, error) {
	scope, suffix, err := splitResourceIDArgs(args, 2, "resourceId")
	if err != nil {
		return nil, err
	}
	c := env.info().ctx
	sub, rg := c.SubscriptionID, c.ResourceGroup
	switch len(scope) {
	case 1:
		rg = scope[0]
	case 2:
		sub, rg = scope[0], scope[1]
	}
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + suffix, nil
}

func fnSubscriptionResourceID(env evalEnv, args []any) (any, error) {
	scope, suffix, err := splitResourceIDArgs(args, 1, "subscriptionResourceId")
	if err != nil {
		return nil, err
	}
	sub := env.info().ctx.SubscriptionID
	if len(scope) == 1 {
		sub = scope[0]
	}
	return "/subscriptions/" + sub + suffix, nil
}

func fnTenantResourceID(_ evalEnv, args []any) (any, error) {
	_, suffix, err := splitResourceIDArgs(args, 0, "tenantResourceId")
	return suffix, err
}

func fnExtensionResourceID(_ evalEnv, args []any) (any, error) {
	base, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(base, "/") {
		return nil, fmt.Errorf("argument 1 must be a resource id starting with '/', not '%s'", base)
	}
	_, suffix, err := splitResourceIDArgs(args[1:], 0, "extensionResourceId (after the base id)")
	if err != nil {
		return nil, err
	}
	return strings.TrimSuffix(base, "/") + suffix, nil
}

// Scope objects. Each call builds a fresh value: results may be changed
// by later functions (union), so nothing is shared.

func fnResourceGroup(env evalEnv, _ []any) (any, error) {
	c := env.info().ctx
	return map[string]any{
		"id":         "/subscriptions/" + c.SubscriptionID + "/resourceGroups/" + c.ResourceGroup,
		"name":       c.ResourceGroup,
		"type":       "Microsoft.Resources/resourceGroups",
		"location":   c.Location,
		"tags":       map[string]any{},
		"properties": map[string]any{"provisioningState": "Succeeded"},
	}, nil
}

func fnSubscription(env evalEnv, _ []any) (any, error) {
	c := env.info().ctx
	return map[string]any{
		"id":             "/subscriptions/" + c.SubscriptionID,
		"subscriptionId": c.SubscriptionID,
		"tenantId":       c.TenantID,
		"displayName":    c.SubscriptionID,
	}, nil
}

func fnTenant(env evalEnv, _ []any) (any, error) {
	c := env.info().ctx
	return map[string]any{
		"id":          "/tenants/" + c.TenantID,
		"tenantId":    c.TenantID,
		"countryCode": "",
		"displayName": "",
	}, nil
}

func fnDeployment(env evalEnv, _ []any) (any, error) {
	i := env.info()
	return map[string]any{
		"name":     i.ctx.DeploymentName,
		"location": i.ctx.Location,
		"properties": map[string]any{
			"template":     map[string]any{"contentVersion": i.contentVersion},
			"templateHash": "",
			// Set only when the template is deployed from a URI, which
			// quickstarts rely on to find their scripts (_artifactsLocation).
			"templateLink":      Unknown{Source: "deployment().properties.templateLink"},
			"parameters":        map[string]any{},
			"mode":              "Incremental",
			"provisioningState": "Accepted",
		},
	}, nil
}

// fnEnvironment describes the public Azure cloud, which is what AIB
// templates are written for.
func fnEnvironment(_ evalEnv, _ []any) (any, error) {
	return map[string]any{
		"name":                    "AzureCloud",
		"gallery":                 "https://gallery.azure.com/",
		"graph":                   "https://graph.windows.net/",
		"portal":                  "https://portal.azure.com",
		"graphAudience":           "https://graph.windows.net/",
		"activeDirectoryDataLake": "https://datalake.azure.net/",
		"batch":                   "https://batch.core.windows.net/",
		"media":                   "https://rest.media.azure.net",
		"sqlManagement":           "https://management.core.windows.net:8443/",
		"vmImageAliasDoc":         "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/quickstart-templates/aliases.json",
		"resourceManager":         "https://management.azure.com/",
		"authentication": map[string]any{
			"loginEndpoint":    "https://login.microsoftonline.com/",
			"audiences":        []any{"https://management.core.windows.net/", "https://management.azure.com/"},
			"tenant":           "common",
			"identityProvider": "AAD",
		},
		"suffixes": map[string]any{
			"acrLoginServer":                      ".azurecr.io",
			"azureDatalakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
			"azureDatalakeStoreFileSystem":        "azuredatalakestore.net",
			"azureFrontDoorEndpointSuffix":        "azurefd.net",
			"keyvaultDns":                         ".vault.azure.net",
			"sqlServerHostname":                   ".database.windows.net",
			"storage":                             "core.windows.net",
		},
	}, nil
}

// Dates.

func fnUtcNow(env evalEnv, args []any) (any, error) {
	i := env.info()
	if !i.inDefault {
		return nil, fmt.Errorf("utcNow() can only be used in a parameter's defaultValue")
	}
	f := ""
	if len(args) == 1 {
		var err error
		if f, err = argString(args, 0); err != nil {
			return nil, err
		}
	}
	return formatDateTime(i.now.UTC(), f)
}

var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05Z",
	"2006-01-02 15:04:05",
	"20060102T150405Z",
	"2006-01-02",
	"1/2/2006 3:04:05 PM",
}

func parseDateTime(s string) (time.Time, error) {
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("'%s' is not an ISO 8601 date and time such as 2024-01-31T12:00:00Z", s)
}

var isoDuration = regexp.MustCompile(`^(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

func fnDateTimeAdd(_ evalEnv, args []any) (any, error) {
	base, dur, err := twoStrings(args)
	if err != nil {
		return nil, err
	}
	t, err := parseDateTime(base)
	if err != nil {
		return nil, err
	}
	m := isoDuration.FindStringSubmatch(dur)
	if m == nil || dur == "P" || dur == "-P" || strings.HasSuffix(dur, "T") {
		return nil, fmt.Errorf("'%s' is not an ISO 8601 duration such as P1D or PT2H30M", dur)
	}
	sign := 1
	if m[1] == "-" {
		sign = -1
	}
	num := func(s string) int {
		n, _ := strconv.Atoi(s)
		return sign * n
	}
	t = t.AddDate(num(m[2]), num(m[3]), 7*num(m[4])+num(m[5]))
	secs, _ := strconv.ParseFloat(m[8], 64)
	t = t.Add(time.Duration(num(m[6]))*time.Hour + time.Duration(num(m[7]))*time.Minute +
		time.Duration(float64(sign)*secs*float64(time.Second)))
	f := "yyyy-MM-ddTHH:mm:ssZ"
	if len(args) == 3 {
		if f, err = argString(args, 2); err != nil {
			return nil, err
		}
	}
	return formatDateTime(t, f)
}

func fnDateTimeToEpoch(_ evalEnv, args []any) (any, error) {
	s, err := argString(args, 0)
	if err != nil {
		return nil, err
	}
	t, err := parseDateTime(s)
	if err != nil {
		return nil, err
	}
	return t.Unix(), nil
}

func fnDateTimeFromEpoch(_ evalEnv, args []any) (any, error) {
	n, err := argInt(args, 0)
	if err != nil {
		return nil, err
	}
	return formatDateTime(time.Unix(n, 0).UTC(), "yyyy-MM-ddTHH:mm:ssZ")
}
