package client

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Explanation is the chain of verified metadata that vouches for one release: from the
// trusted root down through targets and the delegating role to the project's role, with
// who signed each link and the release's files.
type Explanation struct {
	Server          string `json:"server"`
	Project         string `json:"project"`
	Release         string `json:"release"`
	Yanked          bool   `json:"yanked"`
	YankReason      string `json:"yank_reason,omitempty"`
	SnapshotVersion int64  `json:"snapshot_version"`
	// Delegator is the role that delegates to the project: "claimed" (offline admin keys)
	// or "recently-claimed" (an online key); Claimed is Delegator == "claimed".
	Delegator string `json:"delegator"`
	Claimed   bool   `json:"claimed"`
	// Meaning says in one sentence what Claimed means for the project's security.
	Meaning string `json:"meaning"`
	// Chain lists root, timestamp, snapshot, targets, the delegator and the project role,
	// in the order a client verifies them.
	Chain []ChainLink `json:"chain"`
	Files []api.File  `json:"files"`
}

// ChainLink is one verified role on the path to a release.
type ChainLink struct {
	Role    string    `json:"role"`
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
	// DelegatedBy is the role that names this role's keys ("root" for root itself: a
	// root is trusted because it chains from the pinned root).
	DelegatedBy string `json:"delegated_by"`
	// KeyHolder says who holds the signing keys: "offline admin keys", "online key held
	// by the server" or "project maintainers".
	KeyHolder string `json:"key_holder"`
	Threshold int    `json:"threshold"`
	// Keys are the keys the delegator trusts for the role, and whether each signed this
	// version (verified locally).
	Keys         []KeySignature `json:"keys"`
	Signatures   int            `json:"valid_signatures"`
	ThresholdMet bool           `json:"threshold_met"`
	// Paths are the target paths the delegation covers (delegated roles only).
	Paths []string `json:"paths,omitempty"`
}

// KeySignature is one trusted key of a role and whether it signed.
type KeySignature struct {
	KeyView
	Signed bool `json:"signed"`
}

// Meanings of claimed and recently-claimed, for people.
const (
	MeaningClaimed         = "claimed: the repository admins' offline keys delegate this project to its maintainers, so even someone who takes over the server, its database and its online keys cannot change who may sign its releases"
	MeaningRecentlyClaimed = "not claimed yet: the server's online recently-claimed key delegates this project to its maintainers, so someone who takes over the server could re-delegate it to keys of their own until the admins claim it with their offline keys"
)

// Explain verifies project's role through the TUF updater, picks release version (the
// highest one that is not yanked when version is empty) and describes the chain of
// metadata that vouches for it. Failures are as for Download: a *VerifyError for
// metadata that does not verify, CodeNotFound for an unknown project or release.
//
// The chain is the signed one: against a server that offers a Merkle snapshot, open the
// Repo with ClassicSnapshot, since a refresh through the tree has no signed snapshot to show.
func (r *Repo) Explain(ctx context.Context, project, version string) (*Explanation, error) {
	pr, err := r.ProjectRole(ctx, project)
	if err != nil {
		return nil, err
	}
	if r.UsedMerkle() {
		return nil, errors.New("explaining a release needs the signed snapshot, and this refresh went through the Merkle snapshot: open the repository with RepoConfig.ClassicSnapshot")
	}
	rels := pr.Releases()
	var rel Release
	var ok bool
	if version == "" {
		if rel, ok = LatestRelease(rels); !ok {
			return nil, api.Errorf(api.CodeNotFound, "project %s has no release that is not yanked; name a version with %s@VERSION (releases: %s)", project, project, versionList(rels))
		}
	} else if rel, ok = FindRelease(rels, version); !ok {
		return nil, api.Errorf(api.CodeNotFound, "project %s has no release %q in its verified metadata; releases: %s", project, version, versionList(rels))
	}
	d := r.loadedDelegators()
	e := &Explanation{Server: r.cfg.Server, Project: project, Release: rel.Version, Yanked: rel.Yanked, YankReason: yankReasonOf(pr.Metadata, rel),
		SnapshotVersion: pr.SnapshotVersion, Delegator: pr.Delegator, Claimed: pr.Claimed(), Files: rel.Files}
	if e.Files == nil {
		e.Files = []api.File{}
	}
	if e.Claimed {
		e.Meaning = MeaningClaimed
	} else {
		e.Meaning = MeaningRecentlyClaimed
	}

	root := d.Root
	for _, role := range []string{tufrepo.RoleRoot, tufrepo.RoleTimestamp, tufrepo.RoleSnapshot, tufrepo.RoleTargets} {
		var (
			md      any
			sigs    []metadata.Signature
			version int64
			expires time.Time
		)
		switch role {
		case tufrepo.RoleRoot:
			md, sigs, version, expires = root, root.Signatures, root.Signed.Version, root.Signed.Expires
		case tufrepo.RoleTimestamp:
			md, sigs, version, expires = d.Timestamp, d.Timestamp.Signatures, d.Timestamp.Signed.Version, d.Timestamp.Signed.Expires
		case tufrepo.RoleSnapshot:
			md, sigs, version, expires = d.Snapshot, d.Snapshot.Signatures, d.Snapshot.Signed.Version, d.Snapshot.Signed.Expires
		case tufrepo.RoleTargets:
			md, sigs, version, expires = d.Targets, d.Targets.Signatures, d.Targets.Signed.Version, d.Targets.Signed.Expires
		}
		link := ChainLink{Role: role, Version: version, Expires: expires.UTC(), DelegatedBy: tufrepo.RoleRoot, KeyHolder: keyHolder(role)}
		var ids []string
		if rr := root.Signed.Roles[role]; rr != nil {
			ids, link.Threshold = rr.KeyIDs, rr.Threshold
		}
		fillSignatures(&link, role, md, sigs, root.Signed.Keys, ids)
		e.Chain = append(e.Chain, link)
	}

	// The nodes of the project's tree, each as the role above delegates to it (targets for
	// the top), then the project, as the last node does.
	parent, parentKeys := tufrepo.RoleTargets, d.Targets.Signed.Delegations
	for _, n := range pr.Path {
		if parentKeys == nil {
			break
		}
		for _, role := range parentKeys.Roles {
			if role.Name != n.Role {
				continue
			}
			link := ChainLink{Role: role.Name, Version: n.MD.Signed.Version, Expires: n.MD.Signed.Expires.UTC(), DelegatedBy: parent,
				KeyHolder: keyHolder(role.Name), Threshold: role.Threshold, Paths: role.Paths}
			fillSignatures(&link, role.Name, n.MD, n.MD.Signatures, parentKeys.Keys, role.KeyIDs)
			e.Chain = append(e.Chain, link)
		}
		parent, parentKeys = n.Role, n.MD.Signed.Delegations
	}
	link := ChainLink{Role: project, Version: pr.Version(), Expires: pr.Metadata.Signed.Expires.UTC(), DelegatedBy: pr.Delegator, KeyHolder: "project maintainers", Threshold: pr.Threshold}
	if d, _ := findDelegation(r.up.GetTrustedMetadataSet().Targets, project); d != nil {
		link.Paths = d.role.Paths
	}
	fillSignatures(&link, project, pr.Metadata, pr.Metadata.Signatures, pr.Keys, pr.KeyIDs)
	e.Chain = append(e.Chain, link)
	return e, nil
}

// fillSignatures records which of the trusted keys ids signed md, verified one by one.
func fillSignatures(link *ChainLink, role string, md any, sigs []metadata.Signature, keys map[string]*metadata.Key, ids []string) {
	signed := map[string]bool{}
	for _, s := range sigs {
		if k, ok := keys[s.KeyID]; ok && slices.Contains(ids, s.KeyID) && !signed[s.KeyID] && signatureVerifies(role, md, s.KeyID, k) {
			signed[s.KeyID] = true
		}
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	for _, id := range sorted {
		ks := KeySignature{KeyView: KeyView{KeyID: id}, Signed: signed[id]}
		if k, ok := keys[id]; ok {
			ks.KeyView = ViewKey(k)
		}
		link.Keys = append(link.Keys, ks)
	}
	link.Signatures = len(signed)
	link.ThresholdMet = link.Threshold > 0 && link.Signatures >= link.Threshold
}

// yankReasonOf reads the reason a yanked release's signed custom data gives, from its
// first file (by path) that gives one.
func yankReasonOf(md *metadata.Metadata[metadata.TargetsType], rel Release) string {
	if !rel.Yanked {
		return ""
	}
	paths := make([]string, 0, len(rel.Files))
	for _, f := range rel.Files {
		paths = append(paths, f.Path)
	}
	_, reason := tufrepo.ReleaseYank(md.Signed.Targets, paths)
	return reason
}

func keyHolder(role string) string {
	switch role {
	case tufrepo.RoleTimestamp, tufrepo.RoleSnapshot:
		return "online key held by the server"
	case tufrepo.RoleRoot, tufrepo.RoleTargets:
		return "offline admin keys"
	}
	switch tree, _, _ := tufrepo.ParseShardRole(role); tree {
	case tufrepo.RoleRecentlyClaimed:
		return "online key held by the server"
	case tufrepo.RoleClaimed:
		return "offline admin keys"
	}
	return "project maintainers"
}
