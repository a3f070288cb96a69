package arm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/goldsmith-dev/goldsmith/resource"
	"github.com/goldsmith-dev/goldsmith/template"
)

// family groups the resource types that share api-versions.
type family int

const (
	famAIB family = iota
	famResources
	famComputeImages
	famGalleries
	famIdentity
)

// apiVersions lists the api-versions each family answers. AIB's are every
// imageTemplates version the template package reads; the others are the
// versions current Azure SDKs send (armcompute v6: images 2024-11-01,
// galleries 2024-03-03; armresources: 2021-04-01; armmsi: 2023-01-31 and
// 2024-11-30) and their recent neighbours, whose shapes goldsmith's answers
// also fit.
var apiVersions = map[family][]string{
	famAIB: template.APIVersions(),
	famResources: {"2019-05-01", "2019-05-10", "2019-07-01", "2019-08-01", "2019-10-01", "2020-06-01", "2020-08-01", "2020-10-01",
		"2021-01-01", "2021-04-01", "2022-09-01", "2023-07-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-03-01", "2025-04-01"},
	famComputeImages: {"2020-06-01", "2020-12-01", "2021-03-01", "2021-04-01", "2021-07-01", "2021-11-01", "2022-03-01", "2022-08-01",
		"2022-11-01", "2023-03-01", "2023-07-01", "2023-09-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-04-01"},
	famGalleries: {"2020-09-30", "2021-07-01", "2021-10-01", "2022-01-03", "2022-03-03", "2022-08-03", "2023-07-03", "2024-03-03", "2025-03-03"},
	famIdentity:  {"2018-11-30", "2021-09-30-preview", "2022-01-31-preview", "2023-01-31", "2023-07-31-preview", "2024-11-30"},
}

// checkAPIVersion answers ARM's errors for a missing or unknown api-version.
func checkAPIVersion(f family, version, typ, location string) error {
	if version == "" {
		return errorf(resource.KindBadRequest, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests.")
	}
	supported := apiVersions[f]
	if slices.Contains(supported, version) {
		return nil
	}
	list := strings.Join(supported, ", ")
	if f == famResources {
		return errorf(resource.KindBadRequest, "InvalidApiVersionParameter",
			"The api-version '%s' is invalid. The supported versions are '%s'.", version, list)
	}
	if location == "" {
		location = "global"
	}
	short := typ[strings.Index(typ, "/")+1:]
	return errorf(resource.KindBadRequest, "NoRegisteredProviderFound",
		"No registered resource provider found for location '%s' and API version '%s' for type '%s'. The supported api-versions are '%s'.",
		location, version, short, list)
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
