// Package tufrepo is Cairn's TUF logic: the role layout, building, validating and signing
// metadata, the publisher, and signers from key URIs. It does no HTTP and no SQL; storage
// is reached through the interfaces declared here.
package tufrepo

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
)

// Role names of the trust layout (DESIGN.md "Trust layout").
const (
	RoleRoot            = "root"
	RoleTimestamp       = "timestamp"
	RoleSnapshot        = "snapshot"
	RoleTargets         = "targets"
	RoleClaimed         = "claimed"
	RoleRecentlyClaimed = "recently-claimed"
)

// SpecVersion is the TUF specification version written into metadata Cairn creates.
const SpecVersion = "1.0.31"

// Expiry periods of the roles Cairn signs or asks admins to sign.
const (
	TimestampExpiry       = 24 * time.Hour
	SnapshotExpiry        = 7 * 24 * time.Hour
	RecentlyClaimedExpiry = 30 * 24 * time.Hour
	OfflineExpiry         = 365 * 24 * time.Hour
	// ProjectRoleExpiry is what the CLI writes into a project role; MaxProjectRoleExpiry is
	// the furthest the server accepts, MinProjectRoleLifetime the nearest.
	ProjectRoleExpiry      = 365 * 24 * time.Hour
	MaxProjectRoleExpiry   = 400 * 24 * time.Hour
	MinProjectRoleLifetime = time.Hour
	// ProposalLifetime is how long a proposal waits for co-signers.
	ProposalLifetime = 7 * 24 * time.Hour
)

// Bounds on what maintainers may put into a project role.
const (
	MaxNameLength        = 64
	MaxVersionLength     = 64
	MaxFilenameLength    = 200
	MaxTargetsPerRole    = 10000
	MaxCustomBytes       = 4096
	MaxMaintainerKeys    = 32
	MaxProjectRoleBytes  = 4 << 20
	MaxCreateRequestSize = MaxProjectRoleBytes*4/3 + 64<<10
)

// ReservedRoles returns the names IsReservedRole reports.
func ReservedRoles() []string {
	return []string{RoleRoot, RoleTimestamp, RoleSnapshot, RoleTargets, RoleClaimed, RoleRecentlyClaimed, "unclaimed"}
}

// IsReservedRole reports whether name is a top-level or delegator role name, which no
// project may take.
func IsReservedRole(name string) bool {
	switch name {
	case RoleRoot, RoleTimestamp, RoleSnapshot, RoleTargets, RoleClaimed, RoleRecentlyClaimed, "unclaimed":
		return true
	}
	return false
}

var projectNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// ValidateProjectName checks that name is a normalised project name: lowercase
// [a-z0-9][a-z0-9._-]*, at most 64 characters, not a reserved role name. Role names equal
// project names, so this also keeps role names safe in URLs for every TUF client.
func ValidateProjectName(name string) error {
	switch {
	case name == "":
		return api.Errorf(api.CodeInvalidName, "project name is empty")
	case len(name) > MaxNameLength:
		return api.Errorf(api.CodeInvalidName, "project name %.20q… is %d characters; at most %d are allowed", name, len(name), MaxNameLength)
	case !projectNameRE.MatchString(name):
		if n := strings.ToLower(name); n != name && projectNameRE.MatchString(n) && len(n) <= MaxNameLength && !IsReservedRole(n) {
			return api.Errorf(api.CodeInvalidName, "project name %q is not normalised: use %q", name, n)
		}
		return api.Errorf(api.CodeInvalidName, "project name %q is not allowed: use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	case IsReservedRole(name):
		return api.Errorf(api.CodeInvalidName, "project name %q is reserved for a TUF role; choose another", name)
	}
	return nil
}

// CanonicalProjectName lowercases a name and maps runs of '_', '.' and '-' to '-' (as
// PEP 503 does). Two projects may not share a canonical name, so that "foo.bar" cannot be
// registered to impersonate "foo-bar".
func CanonicalProjectName(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	var b strings.Builder
	prevSep := false
	for _, r := range name {
		if r == '_' || r == '.' || r == '-' {
			if !prevSep {
				b.WriteByte('-')
			}
			prevSep = true
			continue
		}
		prevSep = false
		b.WriteRune(r)
	}
	return b.String()
}

// ValidateComponent checks a release version or a file name: [A-Za-z0-9][A-Za-z0-9._+-]*,
// bounded, so that no component can be "." or "..", contain "/" or a glob character.
func ValidateComponent(kind, s string, max int) error {
	if s == "" || len(s) > max || !isComponent(s) {
		return api.Errorf(api.CodeInvalidPath, "%s %.40q is not allowed: use 1 to %d of A-Z a-z 0-9 . _ + -, starting with a letter or digit", kind, s, max)
	}
	return nil
}

// isComponent reports whether s matches ^[A-Za-z0-9][A-Za-z0-9._+-]*$ (a byte loop: a
// regexp here was a fifth of the CPU of validating an upload, run for every target).
func isComponent(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '+' || c == '-'):
		default:
			return false
		}
	}
	return s != ""
}

// TargetPath returns the target path of a release file: "<project>/<version>/<filename>".
func TargetPath(project, version, filename string) string {
	return project + "/" + version + "/" + filename
}

// SplitTargetPath parses and validates a target path of project.
func SplitTargetPath(project, path string) (version, filename string, err error) {
	first, rest, ok1 := strings.Cut(path, "/")
	version, filename, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 || strings.Contains(filename, "/") {
		return "", "", api.Errorf(api.CodeInvalidPath, "target path %.80q must be <project>/<version>/<filename>", path)
	}
	if first != project {
		return "", "", api.Errorf(api.CodePathOutsideProject, "target path %.80q is outside project %q: every path must start with %q", path, project, project+"/")
	}
	if err := ValidateComponent("release version", version, MaxVersionLength); err != nil {
		return "", "", err
	}
	if err := ValidateComponent("file name", filename, MaxFilenameLength); err != nil {
		return "", "", err
	}
	return version, filename, nil
}

// ProjectPathPattern is the delegation path pattern of a project: glob '*' does not cross
// '/' in TUF clients, so this matches exactly the project's three-component paths.
func ProjectPathPattern(project string) string { return project + "/*/*" }

// MetaName is the file name of a role in snapshot meta.
func MetaName(role string) string { return role + ".json" }

// VersionedName is the consistent-snapshot file name of a role version.
func VersionedName(role string, version int64) string {
	return fmt.Sprintf("%d.%s.json", version, role)
}
