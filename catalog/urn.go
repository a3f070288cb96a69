package catalog

import (
	"fmt"
	"strconv"
	"strings"
)

// URN names a platform image the way Azure does:
// publisher:offer:sku:version, where version may be "latest" or absent.
type URN struct {
	Publisher, Offer, SKU string
	Version               string // "" means latest
}

// ParseURN parses "publisher:offer:sku" or "publisher:offer:sku:version".
// A version of "latest" (any case) becomes "".
func ParseURN(s string) (URN, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 && len(parts) != 4 {
		return URN{}, fmt.Errorf("image URN %q: want publisher:offer:sku[:version]", s)
	}
	for i, p := range parts {
		if strings.TrimSpace(p) == "" || strings.ContainsAny(p, " \t/\\") {
			return URN{}, fmt.Errorf("image URN %q: part %d is empty or has a space or slash", s, i+1)
		}
	}
	u := URN{Publisher: parts[0], Offer: parts[1], SKU: parts[2]}
	if len(parts) == 4 && !strings.EqualFold(parts[3], "latest") {
		u.Version = parts[3]
	}
	return u, nil
}

// String renders the URN; a latest URN has no version part.
func (u URN) String() string {
	s := u.Publisher + ":" + u.Offer + ":" + u.SKU
	if u.Version != "" {
		s += ":" + u.Version
	}
	return s
}

// IsLatest reports whether the URN asks for the newest version.
func (u URN) IsLatest() bool { return u.Version == "" }

// sameImage reports whether two URNs name the same publisher, offer and
// SKU. Azure compares these case-insensitively.
func (u URN) sameImage(o URN) bool {
	return strings.EqualFold(u.Publisher, o.Publisher) && strings.EqualFold(u.Offer, o.Offer) && strings.EqualFold(u.SKU, o.SKU)
}

// CompareVersions orders image versions: dot-separated parts compared
// numerically when both are numbers, as text otherwise; a version that is a
// prefix of another sorts first. It returns -1, 0 or 1.
func CompareVersions(a, b string) int {
	ap, bp := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(ap) && i < len(bp); i++ {
		x, xerr := strconv.ParseUint(ap[i], 10, 64)
		y, yerr := strconv.ParseUint(bp[i], 10, 64)
		switch {
		case xerr == nil && yerr == nil:
			if x != y {
				if x < y {
					return -1
				}
				return 1
			}
		case xerr == nil: // numbers before text
			return -1
		case yerr == nil:
			return 1
		default:
			if c := strings.Compare(ap[i], bp[i]); c != 0 {
				return c
			}
		}
	}
	switch {
	case len(ap) < len(bp):
		return -1
	case len(ap) > len(bp):
		return 1
	}
	return 0
}

// nextVersion returns major.YYYYMMDD.N with N one more than the highest
// existing build of that day (0 for the first).
func nextVersion(major, day string, existing []string) string {
	prefix := major + "." + day + "."
	n := 0
	for _, v := range existing {
		if rest, ok := strings.CutPrefix(v, prefix); ok {
			if k, err := strconv.Atoi(rest); err == nil && k >= n {
				n = k + 1
			}
		}
	}
	return prefix + strconv.Itoa(n)
}

// majorOf is the leading number of a SKU ("18.04-LTS" → "18"), or "0".
func majorOf(sku string) string {
	i := 0
	for i < len(sku) && sku[i] >= '0' && sku[i] <= '9' {
		i++
	}
	if i == 0 {
		return "0"
	}
	if n, err := strconv.Atoi(sku[:i]); err == nil {
		return strconv.Itoa(n)
	}
	return "0"
}
