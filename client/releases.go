package client

import (
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Release is one release of a project as its verified role metadata lists it.
type Release struct {
	Project string     `json:"project"`
	Version string     `json:"version"`
	Files   []api.File `json:"files"` // sorted by name
	// Yanked is set when any of the release's files carries "yanked": true in its signed
	// custom data; a yanked release is never picked as the latest.
	Yanked bool `json:"yanked"`
	// YankReason is the reason a yanked release's signed custom data gives, if any.
	YankReason string `json:"yank_reason,omitempty"`
}

// targetCustom is the part of a target's custom data Cairn reads.
type targetCustom struct {
	Version string `json:"version"`
	// Attestations are the sha256 of bundles bound at upload (cairn upload --attest).
	Attestations []string `json:"attestations,omitempty"`
}

// ReleasesFromRole groups the targets of a project role into releases, newest first.
// Paths that are not "<project>/<version>/<filename>" are skipped: the delegation routes
// no client to them, so they are not part of any release.
func ReleasesFromRole(project string, md *metadata.Metadata[metadata.TargetsType]) []Release {
	byVersion := map[string]*Release{}
	for path, tf := range md.Signed.Targets {
		version, name, err := tufrepo.SplitTargetPath(project, path)
		if err != nil {
			continue
		}
		rel := byVersion[version]
		if rel == nil {
			rel = &Release{Project: project, Version: version}
			byVersion[version] = rel
		}
		f := api.File{Name: name, Path: path, Length: tf.Length}
		if h, ok := tf.Hashes["sha256"]; ok {
			f.SHA256 = hex.EncodeToString(h)
		}
		var c targetCustom
		if tf.Custom != nil && json.Unmarshal(*tf.Custom, &c) == nil {
			for _, b := range c.Attestations {
				if ValidateSHA256Hex(b) == nil {
					f.Attestations = append(f.Attestations, b)
				}
			}
		}
		rel.Files = append(rel.Files, f)
	}
	out := make([]Release, 0, len(byVersion))
	for _, rel := range byVersion {
		paths := make([]string, len(rel.Files))
		for i, f := range rel.Files {
			paths[i] = f.Path
		}
		rel.Yanked, rel.YankReason = tufrepo.ReleaseYank(md.Signed.Targets, paths)
		slices.SortFunc(rel.Files, func(a, b api.File) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, *rel)
	}
	slices.SortFunc(out, func(a, b Release) int { return CompareVersions(b.Version, a.Version) })
	return out
}

// FindRelease returns the release with exactly this version.
func FindRelease(rs []Release, version string) (Release, bool) {
	for _, r := range rs {
		if r.Version == version {
			return r, true
		}
	}
	return Release{}, false
}

// LatestRelease returns the highest version that is not yanked, by CompareVersions.
func LatestRelease(rs []Release) (Release, bool) {
	var best Release
	found := false
	for _, r := range rs {
		if r.Yanked {
			continue
		}
		if !found || CompareVersions(r.Version, best.Version) > 0 {
			best, found = r, true
		}
	}
	return best, found
}
