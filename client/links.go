package client

import (
	"maps"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ProjectLinksOf reads the links a project's maintainers declared in its verified role.
func ProjectLinksOf(md *metadata.Metadata[metadata.TargetsType]) tufrepo.ProjectLinks {
	if md == nil {
		return tufrepo.ProjectLinks{}
	}
	return tufrepo.ReadProjectLinks(md.Signed.UnrecognizedFields)
}

// NextLinksRole returns the next version of a project role with links declared (an empty
// link is removed): the same targets, a new expiry. Sign it with SignRole.
func NextLinksRole(current *metadata.Metadata[metadata.TargetsType], project string, links tufrepo.ProjectLinks, now time.Time) (*metadata.Metadata[metadata.TargetsType], error) {
	if current == nil {
		return nil, api.Errorf(api.CodeBadRequest, "project %q has no current role metadata to extend", project)
	}
	if err := tufrepo.ValidateProjectLinks(links); err != nil {
		return nil, err
	}
	// A declaration that reads as none (malformed) can still be removed: only a request
	// that changes nothing is refused.
	_, present := current.Signed.UnrecognizedFields[tufrepo.ProjectLinksField]
	if ProjectLinksOf(current) == links && (links != (tufrepo.ProjectLinks{}) || !present) {
		return nil, api.Errorf(api.CodeBadRequest, "project %s already declares these links; nothing to sign", project)
	}
	next := metadata.Targets(roleExpiry(now))
	next.Signed.SpecVersion = tufrepo.SpecVersion
	next.Signed.Version = current.Signed.Version + 1
	next.Signed.Targets = maps.Clone(current.Signed.Targets)
	next.Signed.UnrecognizedFields = maps.Clone(current.Signed.UnrecognizedFields)
	if next.Signed.UnrecognizedFields == nil {
		next.Signed.UnrecognizedFields = map[string]any{}
	}
	l := map[string]any{}
	if links.Homepage != "" {
		l["homepage"] = links.Homepage
	}
	if links.Repository != "" {
		l["repository"] = links.Repository
	}
	if len(l) == 0 {
		delete(next.Signed.UnrecognizedFields, tufrepo.ProjectLinksField)
	} else {
		next.Signed.UnrecognizedFields[tufrepo.ProjectLinksField] = l
	}
	if len(next.Signed.UnrecognizedFields) == 0 {
		next.Signed.UnrecognizedFields = nil
	}
	return next, nil
}
