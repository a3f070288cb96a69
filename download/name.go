package download

import (
	"net/url"
	"path"
	"strings"
)

// BaseName is the file name a URI's path ends in, as it is written in the
// URI (percent-escapes kept): "https://h/a/motd.txt?sig=x" gives
// "motd.txt". A URI without one ("https://h", "https://h/", ".." and the
// like) gives "download", never the host name or a name that climbs.
func BaseName(uri string) string {
	const fallback = "download"
	u, err := url.Parse(uri)
	if err != nil {
		return fallback
	}
	p := u.EscapedPath()
	if u.Opaque != "" {
		p = u.Opaque
	}
	name := path.Base(strings.TrimRight(p, "/"))
	switch name {
	case "", ".", "..", "/":
		return fallback
	}
	return name
}
