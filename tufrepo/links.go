package tufrepo

import (
	"net/url"
	"strings"

	"github.com/cairn-dev/cairn/api"
)

// ProjectLinksField is the member of a project role's "signed" object in which its
// maintainers declare where the project lives. It is theirs, signed like the rest of the
// role: a server cannot change it, and clients read it from verified metadata only (to
// tell which attestation identities belong to the project's own domain).
const ProjectLinksField = "cairn_links"

// MaxLinkLength bounds each declared link.
const MaxLinkLength = 512

// ProjectLinks are a project's declared homepage and source repository (https URLs).
type ProjectLinks struct {
	Homepage   string `json:"homepage,omitempty"`
	Repository string `json:"repository,omitempty"`
}

// projectLinksDoc names the field for the strict JSON check (metadataFields).
type projectLinksDoc struct {
	Links ProjectLinks `json:"cairn_links"`
}

// ReadProjectLinks reads the declared links from a project role's unrecognized members
// (go-tuf's UnrecognizedFields). Anything malformed reads as no link: the links only ever
// widen what a client shows, never what it trusts.
func ReadProjectLinks(fields map[string]any) ProjectLinks {
	m, _ := fields[ProjectLinksField].(map[string]any)
	var l ProjectLinks
	l.Homepage, _ = m["homepage"].(string)
	l.Repository, _ = m["repository"].(string)
	if ValidateProjectLinks(l) != nil {
		return ProjectLinks{}
	}
	return l
}

// ValidateProjectLinks checks each link given: an absolute https URL with a host and no
// user info, query or fragment, at most MaxLinkLength characters.
func ValidateProjectLinks(l ProjectLinks) error {
	for _, f := range []struct{ name, v string }{{"homepage", l.Homepage}, {"repository", l.Repository}} {
		if f.v == "" {
			continue
		}
		if len(f.v) > MaxLinkLength {
			return api.Errorf(api.CodeBadRequest, "the %s link is %d characters; at most %d are allowed", f.name, len(f.v), MaxLinkLength)
		}
		u, err := url.Parse(f.v)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(f.v, " \t\r\n") {
			return api.Errorf(api.CodeBadRequest, "the %s link %.200q is not an https:// URL with a host (and no user, query or fragment)", f.name, f.v)
		}
	}
	return nil
}

// Host is the homepage's host name (lowercase, no port), or "".
func (l ProjectLinks) Host() string {
	u, err := url.Parse(l.Homepage)
	if err != nil || l.Homepage == "" {
		return ""
	}
	return strings.ToLower(u.Hostname())
}
