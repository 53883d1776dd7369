package client

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TreeNode is a verified node of a delegation tree (claimed or recently-claimed): the top
// or a shard (DESIGN.md "Delegations that scale").
type TreeNode struct {
	Role   string
	Prefix string
	MD     *metadata.Metadata[metadata.TargetsType]
}

// Children returns the prefixes of the node's child shards.
func (n TreeNode) Children() []string {
	var out []string
	if d := n.MD.Signed.Delegations; d != nil {
		for _, r := range d.Roles {
			if _, p, ok := tufrepo.ParseShardRole(r.Name); ok && p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// Delegation returns the node's delegation to role and the keys it names.
func (n TreeNode) Delegation(role string) (*metadata.DelegatedRole, map[string]*metadata.Key) {
	if d := n.MD.Signed.Delegations; d != nil {
		for i := range d.Roles {
			if d.Roles[i].Name == role {
				return &d.Roles[i], d.Keys
			}
		}
	}
	return nil, nil
}

// TreePaths loads, through the TUF updater (every node verified against the snapshot and
// its delegator), the nodes of both trees that a client visits on the way to project, and
// returns the path of each tree from its top to the deepest node whose prefix the project
// name starts with: the node that delegates the project, or would. A claimed project's
// search ends in claimed (terminating), so its recently-claimed path is empty.
func (r *Repo) TreePaths(ctx context.Context, project string) (claimed, recent []TreeNode, err error) {
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return nil, nil, err
	}
	if err := r.Refresh(ctx); err != nil {
		return nil, nil, err
	}
	return r.loadedTreePaths(ctx, project)
}

// loadedTreePaths is TreePaths on the metadata of the last Refresh: roles loaded by earlier
// lookups are not downloaded again.
func (r *Repo) loadedTreePaths(ctx context.Context, project string) (claimed, recent []TreeNode, err error) {
	if r.up == nil {
		return nil, nil, fmt.Errorf("loading the delegations of project %q: no refresh yet", project)
	}
	r.fetch.ctx = ctx
	if _, lookupErr := r.up.GetTargetInfo(tufrepo.TargetPath(project, "0", probeFile)); lookupErr != nil && !isTargetNotFound(lookupErr) {
		return nil, nil, r.tufError(lookupErr, fmt.Sprintf("loading the delegations of project %q", project))
	}
	loaded := r.up.GetTrustedMetadataSet().Targets
	return treePath(loaded, tufrepo.RoleClaimed, project), treePath(loaded, tufrepo.RoleRecentlyClaimed, project), nil
}

// treePath follows, among the loaded roles, the child shards of tree whose prefixes the
// project name starts with.
func treePath(loaded map[string]*metadata.Metadata[metadata.TargetsType], tree, project string) []TreeNode {
	md := loaded[tree]
	if md == nil {
		return nil
	}
	path := []TreeNode{{Role: tree, MD: md}}
	for {
		next := ""
		for _, c := range path[len(path)-1].Children() {
			if strings.HasPrefix(project, c) {
				next = c
			}
		}
		role := tufrepo.ShardRole(tree, next)
		if next == "" || loaded[role] == nil {
			return path
		}
		path = append(path, TreeNode{Role: role, Prefix: next, MD: loaded[role]})
	}
}

// loadedClaimedTree loads and returns every verified node of the claimed tree, parents
// first, on the metadata of the last Refresh. A shard's prefix is a valid project name, so
// looking the prefix up as a project makes the updater walk to that very node.
func (r *Repo) loadedClaimedTree(ctx context.Context) ([]TreeNode, error) {
	if r.up == nil {
		return nil, fmt.Errorf("loading the claimed tree: no refresh yet")
	}
	r.fetch.ctx = ctx
	top := r.up.GetTrustedMetadataSet().Targets[tufrepo.RoleClaimed]
	if top == nil {
		return nil, api.Errorf(api.CodeNotFound, "the verified metadata has no claimed role")
	}
	out := []TreeNode{{Role: tufrepo.RoleClaimed, MD: top}}
	for i := 0; i < len(out); i++ {
		for _, c := range out[i].Children() {
			claimed, _, err := r.loadedTreePaths(ctx, c)
			if err != nil {
				return nil, err
			}
			last := claimed[len(claimed)-1]
			if last.Prefix != c {
				return nil, api.Errorf(api.CodeNotFound, "%s delegates to shard %s, which the updater could not load", out[i].Role, tufrepo.ShardRole(tufrepo.RoleClaimed, c))
			}
			out = append(out, last)
		}
	}
	slices.SortStableFunc(out, func(a, b TreeNode) int { return len(a.Prefix) - len(b.Prefix) })
	return out, nil
}
