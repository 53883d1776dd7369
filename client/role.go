package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// HashFile streams the file at path and returns its release-file description: Name is the
// base name, Length and SHA256 (lowercase hex) its contents. Path is left empty.
func HashFile(path string) (api.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return api.File{}, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return api.File{}, fmt.Errorf("reading %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return api.File{}, api.Errorf(api.CodeBadRequest, "%s is not a regular file", path)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return api.File{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	return api.File{Name: filepath.Base(path), Length: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// roleExpiry is when a project role written at now expires: tufrepo.ProjectRoleExpiry
// later, whole seconds, UTC (the form every TUF client parses).
func roleExpiry(now time.Time) time.Time {
	return now.UTC().Add(tufrepo.ProjectRoleExpiry).Truncate(time.Second)
}

// NewProjectRole returns version 1 of a project role: no targets, no delegations,
// expiring tufrepo.ProjectRoleExpiry after now. Sign it with SignRole.
func NewProjectRole(now time.Time) *metadata.Metadata[metadata.TargetsType] {
	md := metadata.Targets(roleExpiry(now))
	md.Signed.SpecVersion = tufrepo.SpecVersion
	md.Signed.Version = 1
	return md
}

// NextProjectRole returns the next version of a project role that adds one release: every
// earlier target unchanged (published paths are immutable), plus one target per file at
// "<project>/<version>/<name>" with its length, only a sha256 hash (Cairn serves files by
// sha256 alone) and custom {"version": version}. The expiry is renewed from now and the
// signatures are cleared. It refuses, as *api.Error, a bad project name, version or file
// name, two files with one name, a version that is already released, and a version whose
// OCI tag is another release's (api.ReleaseTag: 3.0+x next to 3.0_x).
func NextProjectRole(current *metadata.Metadata[metadata.TargetsType], project, version string, files []api.File, now time.Time) (*metadata.Metadata[metadata.TargetsType], error) {
	if err := CheckRelease(project, version, files); err != nil {
		return nil, err
	}
	if current == nil {
		return nil, api.Errorf(api.CodeBadRequest, "project %q has no current role metadata to extend", project)
	}
	if rel, ok := FindRelease(ReleasesFromRole(project, current), version); ok {
		return nil, api.Errorf(api.CodeImmutablePath, "release %s %s already exists (%d file(s), role version %d); published files are immutable: upload under a new version",
			project, version, len(rel.Files), current.Signed.Version)
	}
	// The server refuses the same (oci_tag_collision); saying so before anything is signed
	// spares the maintainers a signature over a role that cannot be published.
	for _, rel := range ReleasesFromRole(project, current) {
		if rel.Version != version && api.ReleaseTag(rel.Version) == api.ReleaseTag(version) {
			return nil, api.Errorf(api.CodeOCITagCollision, "release %s %s would be the OCI tag %s:%s, which is already the tag of release %s %s (\"+\" becomes \"_\" in OCI tags): choose a version that differs from %s in more than + and _",
				project, version, project, api.ReleaseTag(version), project, rel.Version, rel.Version)
		}
	}
	prefix := tufrepo.TargetPath(project, version, "")
	for p := range current.Signed.Targets {
		if strings.HasPrefix(p, prefix) {
			return nil, api.Errorf(api.CodeImmutablePath, "release %s %s already has target %q; upload under a new version", project, version, p)
		}
	}
	custom, err := json.Marshal(targetCustom{Version: version})
	if err != nil {
		return nil, err
	}
	next := metadata.Targets(roleExpiry(now))
	next.Signed.SpecVersion = tufrepo.SpecVersion
	next.Signed.Version = current.Signed.Version + 1
	next.Signed.UnrecognizedFields = current.Signed.UnrecognizedFields
	next.Signed.Targets = maps.Clone(current.Signed.Targets)
	if next.Signed.Targets == nil {
		next.Signed.Targets = map[string]*metadata.TargetFiles{}
	}
	for _, f := range files {
		sum, _ := hex.DecodeString(f.SHA256) // checked by CheckRelease
		raw := json.RawMessage(custom)
		path := tufrepo.TargetPath(project, version, f.Name)
		next.Signed.Targets[path] = &metadata.TargetFiles{
			Length: f.Length,
			Hashes: metadata.Hashes{"sha256": sum},
			Custom: &raw,
			Path:   path,
		}
	}
	return next, nil
}

// CheckRelease validates what an upload would add before anything is sent: the project
// name, the release version and each file's name, length and digest, and that no two
// files share a name.
func CheckRelease(project, version string, files []api.File) error {
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return err
	}
	if err := tufrepo.ValidateComponent("release version", version, tufrepo.MaxVersionLength); err != nil {
		return err
	}
	if len(files) == 0 {
		return api.Errorf(api.CodeBadRequest, "a release needs at least one file")
	}
	seen := map[string]bool{}
	for _, f := range files {
		if err := tufrepo.ValidateComponent("file name", f.Name, tufrepo.MaxFilenameLength); err != nil {
			return err
		}
		if seen[f.Name] {
			return api.Errorf(api.CodeInvalidPath, "two files are named %q; file names within a release must be unique", f.Name)
		}
		seen[f.Name] = true
		if f.Length < 0 {
			return api.Errorf(api.CodeLengthMismatch, "file %q has negative length %d", f.Name, f.Length)
		}
		if err := ValidateSHA256Hex(f.SHA256); err != nil {
			return api.Errorf(api.CodeHashMismatch, "file %q: %s", f.Name, err.(*api.Error).Detail)
		}
	}
	return nil
}

// SignRole signs md with each signer (appending to its signatures) and returns the bytes
// to submit, exactly as signed.
func SignRole(md *metadata.Metadata[metadata.TargetsType], signers ...signature.Signer) ([]byte, error) {
	for _, s := range signers {
		if _, err := md.Sign(s); err != nil {
			return nil, fmt.Errorf("signing role metadata version %d: %w", md.Signed.Version, err)
		}
	}
	raw, err := md.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("encoding role metadata version %d: %w", md.Signed.Version, err)
	}
	return raw, nil
}
