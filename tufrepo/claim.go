package tufrepo

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// MaxClaimNodes bounds how many nodes of the claimed tree one upload may carry.
const MaxClaimNodes = 4096

// ClaimState is what the server knows when admins upload new versions of nodes of the
// claimed tree.
type ClaimState struct {
	Targets []byte           // the current targets metadata, which delegates to claimed
	Layout  *ShardLayout     // the claimed tree now
	Latest  map[string]int64 // node role → its latest version (staged or published)
	// Claimed are the claimed projects that the uploaded nodes delegate now, with the node
	// that does and the delegation claimed must carry for them (a queued maintainer change
	// replaces the current one). Candidates are the recently-claimed projects that may be
	// moved in.
	Claimed    map[string]ClaimedProject
	Candidates map[string]ProjectDelegation
}

// ClaimedProject is a claimed project as the server knows it.
type ClaimedProject struct {
	Node string // the node role that delegates it now
	Want ProjectDelegation
}

// AcceptedNode is one verified new version of a node of the claimed tree.
type AcceptedNode struct {
	Role    string
	Prefix  string
	Version int64
	Raw     []byte
	Expires time.Time
	New     bool // a shard that did not exist before
}

// AcceptedClaim is a verified upload of claimed nodes.
type AcceptedClaim struct {
	Nodes []AcceptedNode // sorted by role
	Moved []string       // recently-claimed projects it claims
	// Assign gives the node of every project the upload delegates (moved in, or re-routed
	// to a new shard).
	Assign map[string]string
}

// TopVersion returns the new version of the claimed top, or 0 if the upload leaves it.
func (a *AcceptedClaim) TopVersion() int64 {
	for _, n := range a.Nodes {
		if n.Role == RoleClaimed {
			return n.Version
		}
	}
	return 0
}

// ValidateClaimed checks new versions of nodes of the claimed tree (role → exact bytes),
// signed offline by the admins. Each node must be the next version of its role (version
// 1 for a new shard), expire sensibly, be signed by a threshold of the claimed keys that
// targets delegates to (and carry no other signature), and delegate exactly as the node of
// the new layout must (CheckShardNode): the layout is the current one plus the uploaded new
// shards, and every node whose children change must be in the upload. Every project a node
// delegates is a claimed project (with the delegation it must carry) or a recently-claimed
// project moving in; every claimed project the upload could affect is still delegated
// where the layout routes it. Shards are never removed.
func ValidateClaimed(nodes map[string][]byte, st ClaimState, now time.Time) (*AcceptedClaim, error) {
	if len(nodes) == 0 {
		return nil, api.Errorf(api.CodeBadRequest, "the upload carries no claimed node")
	}
	if len(nodes) > MaxClaimNodes {
		return nil, api.Errorf(api.CodeTooMany, "the upload carries %d claimed nodes; at most %d are allowed in one upload", len(nodes), MaxClaimNodes)
	}
	targets, err := metadata.Targets().FromBytes(st.Targets)
	if err != nil {
		return nil, fmt.Errorf("parsing targets: %w", err)
	}
	claimedKeys := delegatedKeys(targets, RoleClaimed)
	var dr *metadata.DelegatedRole
	if targets.Signed.Delegations != nil {
		for i := range targets.Signed.Delegations.Roles {
			if targets.Signed.Delegations.Roles[i].Name == RoleClaimed {
				dr = &targets.Signed.Delegations.Roles[i]
			}
		}
	}
	if dr == nil {
		return nil, fmt.Errorf("targets does not delegate to claimed")
	}
	keys := ShardKeys{Keys: claimedKeys, KeyIDs: slices.Clone(dr.KeyIDs), Threshold: dr.Threshold}
	// A delegator that gives every node of the tree to the claimed keys, for go-tuf's own
	// signature check.
	verifier := metadata.Targets()
	verifier.Signed.Delegations = &metadata.Delegations{Keys: claimedKeys}

	// The new layout: the current one and the new shards.
	layout := st.Layout.Clone()
	roles := slices.Sorted(maps.Keys(nodes))
	prefixes := map[string]string{}
	for _, role := range roles {
		tree, prefix, ok := ParseShardRole(role)
		if !ok || tree != RoleClaimed {
			return nil, api.Errorf(api.CodeBadRequest, "%q is not a node of the claimed tree (claimed, or _claimed.<prefix>)", role)
		}
		prefixes[role] = prefix
	}
	for _, role := range roles {
		if p := prefixes[role]; !layout.Has(p) {
			if err := layout.Add(p); err != nil {
				return nil, api.Wrap(api.CodeBadRequest, err, "new shard %s: %v", role, err)
			}
		}
	}
	for _, p := range layout.Prefixes() {
		role := ShardRole(RoleClaimed, p)
		if _, in := nodes[role]; in {
			continue
		}
		if !slices.Equal(layout.Children(p), st.Layout.Children(p)) {
			return nil, api.Errorf(api.CodeBadRequest, "the new shards change the children of %s (now %v, then %v), so it must be re-signed in the same upload", role, st.Layout.Children(p), layout.Children(p))
		}
	}

	acc := &AcceptedClaim{Assign: map[string]string{}}
	delegated := map[string]string{} // project → uploaded node role that delegates it
	for _, role := range roles {
		raw, prefix := nodes[role], prefixes[role]
		pm, err := ParseTargetsStrict(raw, role)
		if err != nil {
			return nil, err
		}
		md := pm.MD
		cur := st.Latest[role]
		isNew := !st.Layout.Has(prefix)
		switch {
		case isNew && cur != 0:
			return nil, fmt.Errorf("node %s has versions but is not in the layout", role)
		case md.Signed.Version != cur+1:
			return nil, api.Errorf(api.CodeVersionConflict, "%s is at version %d, so the next version must be %d, not %d: download the queue again", role, cur, cur+1, md.Signed.Version)
		case md.Signed.Expires.Before(now.Add(24 * time.Hour)):
			return nil, api.Errorf(api.CodeExpired, "%s version %d expires at %s, less than a day from now", role, md.Signed.Version, FormatExpires(md.Signed.Expires))
		case md.Signed.Expires.After(now.Add(MaxProjectRoleExpiry)):
			return nil, api.Errorf(api.CodeExpiryTooFar, "%s version %d expires at %s; at most %d days ahead is allowed", role, md.Signed.Version, FormatExpires(md.Signed.Expires), int(MaxProjectRoleExpiry.Hours()/24))
		}
		verifier.Signed.Delegations.Roles = []metadata.DelegatedRole{{Name: role, KeyIDs: keys.KeyIDs, Threshold: keys.Threshold, Paths: []string{"*/*/*"}}}
		if err := verifier.VerifyDelegate(role, md); err != nil {
			return nil, api.Wrap(api.CodeSignatureInvalid, err, "%s version %d is not signed by a threshold (%d) of the claimed keys that targets delegates to: %v", role, md.Signed.Version, keys.Threshold, err)
		}
		if err := CheckAllSignatures(fmt.Sprintf("%s version %d", role, md.Signed.Version), pm.Payload, md.Signatures, claimedKeys); err != nil {
			return nil, err
		}
		content, err := CheckShardNode(md, layout, prefix, keys)
		if err != nil {
			return nil, err
		}
		for _, name := range slices.Sorted(maps.Keys(content.Projects)) {
			got := content.Projects[name]
			var want ProjectDelegation
			if c, ok := st.Claimed[name]; ok {
				want = c.Want
				if c.Node != role {
					acc.Assign[name] = role
				}
			} else if cand, ok := st.Candidates[name]; ok {
				want = cand
				acc.Moved = append(acc.Moved, name)
				acc.Assign[name] = role
			} else {
				return nil, api.Errorf(api.CodeNotFound, "%s delegates to %q, which is not a recently-claimed or claimed project", role, name)
			}
			if err := sameDelegation(role, got, want); err != nil {
				return nil, err
			}
			delegated[name] = role
		}
		acc.Nodes = append(acc.Nodes, AcceptedNode{Role: role, Prefix: prefix, Version: md.Signed.Version, Raw: raw, Expires: md.Signed.Expires, New: isNew})
	}
	// Every claimed project that an uploaded node delegated, or that a new shard now routes
	// elsewhere, must still be delegated by the node the layout routes it to.
	for _, name := range slices.Sorted(maps.Keys(st.Claimed)) {
		c := st.Claimed[name]
		if _, touched := nodes[c.Node]; !touched {
			continue
		}
		want := ShardRole(RoleClaimed, layout.Route(name))
		if got, ok := delegated[name]; !ok || got != want {
			if _, in := nodes[want]; !in {
				return nil, api.Errorf(api.CodeBadRequest, "claimed project %q moves to %s, which the upload does not carry", name, want)
			}
			return nil, api.Errorf(api.CodeBadRequest, "the upload drops claimed project %q: %s must delegate it (a claimed project cannot be unclaimed)", name, want)
		}
	}
	slices.Sort(acc.Moved)
	return acc, nil
}

// sameDelegation checks that a node delegates project exactly to the keys and threshold it
// must have (CheckShardNode checked its pattern and terminating flag).
func sameDelegation(node string, got, want ProjectDelegation) error {
	if got.Threshold != want.Threshold {
		return api.Errorf(api.CodeInvalidThreshold, "%s delegates to %q with threshold %d; the project's maintainers set %d", node, want.Name, got.Threshold, want.Threshold)
	}
	ids := slices.Sorted(slices.Values(got.KeyIDs))
	if !slices.Equal(ids, sortedIDs(want)) {
		return api.Errorf(api.CodeInvalidKey, "%s delegates to %q with keys %v; the project's maintainer keys are %v", node, want.Name, ids, sortedIDs(want))
	}
	for _, id := range ids {
		k := got.Keys[id]
		if k == nil || KeyID(k) != id || want.Keys[id] == nil || k.Value.PublicKey != want.Keys[id].Value.PublicKey {
			return api.Errorf(api.CodeInvalidKey, "key %s of %s's delegation to %q is missing or differs from the maintainer's key", id, node, want.Name)
		}
	}
	return nil
}

// ClaimNodeDelegations returns the names every node of an upload delegates to, as far as
// they parse (ValidateClaimed reports what does not): the server reads those projects
// before it validates.
func ClaimNodeDelegations(nodes map[string][]byte) []string {
	seen := map[string]bool{}
	for _, raw := range nodes {
		md, err := metadata.Targets().FromBytes(raw)
		if err != nil || md.Signed.Delegations == nil {
			continue
		}
		for _, r := range md.Signed.Delegations.Roles {
			seen[r.Name] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}
