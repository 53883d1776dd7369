package tufrepo

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Sharded delegations (DESIGN.md "Delegations that scale").
//
// claimed and recently-claimed are the tops of two trees of delegating roles. Every node of
// a tree has a name prefix ("" for the top) and delegates, with path patterns that never
// overlap:
//   - to child shards, each for its prefix plus one more character, with the pattern
//     "<prefix>*/*/*" (not terminating, so that a miss in claimed falls through to
//     recently-claimed);
//   - to the projects whose names start with its prefix but with no child's prefix, each
//     with "<project>/*/*", terminating (so nothing after claimed can speak for a claimed
//     project).
// A project is delegated by the deepest node whose prefix it starts with (Route). Nodes are
// added when a node would delegate more than ShardCapacity entries (adaptive prefixes: a
// busy prefix splits, a quiet one stays whole), and never removed: TUF clients refuse a
// snapshot that drops a role they saw before (TUF 5.5.5).
//
// Hash-bin delegations cannot do this: they route by the SHA-256 of the whole target path,
// so "<project>/<version>/<file>" of one project would land in many bins, each needing
// the project's keys.

// ShardCapacity is the most delegations (child shards plus projects) one node holds. A
// project delegation with one Ed25519 key is about 360 bytes (about 90 gzipped), so a full
// leaf is about 23 KB (6 KB on the wire), and an interior node of at most 39 children about
// 7 KB (under 1 KB gzipped): the path to a project stays under 50 KB even at a million
// projects, and creating a project re-signs at most 64 delegations.
const ShardCapacity = 64

// ShardRole names the node of tree (RoleClaimed or RoleRecentlyClaimed) for prefix: the top
// role itself for "", otherwise "_<tree>.<prefix>". Project names start with [a-z0-9], so
// no project can take a shard's name.
func ShardRole(tree, prefix string) string {
	if prefix == "" {
		return tree
	}
	return "_" + tree + "." + prefix
}

// ParseShardRole returns the tree and prefix of a node role name; ok is false for every
// other role.
func ParseShardRole(role string) (tree, prefix string, ok bool) {
	switch role {
	case RoleClaimed, RoleRecentlyClaimed:
		return role, "", true
	}
	for _, t := range []string{RoleClaimed, RoleRecentlyClaimed} {
		if p, found := strings.CutPrefix(role, "_"+t+"."); found && p != "" {
			return t, p, true
		}
	}
	return "", "", false
}

// IsShardRole reports whether role is a node of either tree (a top or a shard).
func IsShardRole(role string) bool {
	_, _, ok := ParseShardRole(role)
	return ok
}

// ShardPathPattern is the delegation pattern of the child shard for prefix.
func ShardPathPattern(prefix string) string { return prefix + "*/*/*" }

// ShardLayout is the shape of one tree: a set of node prefixes, "" (the top) always among
// them. A node's parent is the longest other node prefix its prefix starts with, so any set
// of prefixes is a tree whose children's patterns never overlap; a child may be several
// characters longer than its parent ("python-" under ""), so that a long common prefix costs
// one node, not one per character.
type ShardLayout struct {
	Tree     string
	prefixes map[string]bool
	children map[string][]string // parent prefix → child prefixes, sorted
}

// NewShardLayout returns the layout of tree with the given node prefixes ("" is implied).
// It refuses a prefix that no project name could start with.
func NewShardLayout(tree string, prefixes ...string) (*ShardLayout, error) {
	l := &ShardLayout{Tree: tree, prefixes: map[string]bool{"": true}, children: map[string][]string{}}
	for _, p := range prefixes {
		if p == "" || l.prefixes[p] {
			continue
		}
		if err := l.Add(p); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Add adds the node for prefix. Nodes whose prefixes start with it become its children.
func (l *ShardLayout) Add(prefix string) error {
	if prefix == "" || len(prefix) > MaxNameLength || !projectNameRE.MatchString(prefix) {
		return fmt.Errorf("shard prefix %q cannot start a project name", prefix)
	}
	if l.prefixes[prefix] {
		return nil
	}
	parent := l.Parent(prefix)
	var keep, adopt []string
	for _, c := range l.children[parent] {
		if strings.HasPrefix(c, prefix) {
			adopt = append(adopt, c)
		} else {
			keep = append(keep, c)
		}
	}
	keep = append(keep, prefix)
	slices.Sort(keep)
	l.children[parent] = keep
	if len(adopt) > 0 {
		l.children[prefix] = adopt
	}
	l.prefixes[prefix] = true
	return nil
}

// Parent returns the prefix of the node that delegates to the node for prefix (or that would,
// if prefix were added): the longest other node prefix it starts with.
func (l *ShardLayout) Parent(prefix string) string {
	for i := len(prefix) - 1; i > 0; i-- {
		if l.prefixes[prefix[:i]] {
			return prefix[:i]
		}
	}
	return ""
}

// Has reports whether prefix is a node.
func (l *ShardLayout) Has(prefix string) bool { return l.prefixes[prefix] }

// Len is the number of nodes, the top included.
func (l *ShardLayout) Len() int { return len(l.prefixes) }

// Prefixes returns every node prefix, sorted ("" first).
func (l *ShardLayout) Prefixes() []string { return slices.Sorted(maps.Keys(l.prefixes)) }

// Clone returns an independent copy.
func (l *ShardLayout) Clone() *ShardLayout {
	c := &ShardLayout{Tree: l.Tree, prefixes: maps.Clone(l.prefixes), children: map[string][]string{}}
	for k, v := range l.children {
		c.children[k] = slices.Clone(v)
	}
	return c
}

// Children returns the child prefixes of prefix, sorted.
func (l *ShardLayout) Children(prefix string) []string { return slices.Clone(l.children[prefix]) }

// Route returns the prefix of the node that delegates project: the longest node prefix the
// project name starts with.
func (l *ShardLayout) Route(project string) string {
	for i := len(project); i > 0; i-- {
		if l.prefixes[project[:i]] {
			return project[:i]
		}
	}
	return ""
}

// Path returns the roles from the top of the tree to the node that delegates project.
func (l *ShardLayout) Path(project string) []string {
	var rev []string
	for p := l.Route(project); ; p = l.Parent(p) {
		rev = append(rev, ShardRole(l.Tree, p))
		if p == "" {
			break
		}
	}
	slices.Reverse(rev)
	return rev
}

// Split adds nodes under prefix until the node and every node it adds delegate at most
// capacity entries, given the projects the node delegates directly now (or until no two of
// its projects share the next character: with a capacity of at least 40, the alphabet and
// the project named exactly the prefix, that never stops it short). It returns the
// added prefixes, parents before children. Projects are grouped by the character after
// the prefix and the largest groups become shards first, so a busy prefix splits and a
// quiet one stays whole; a new shard's prefix is the longest prefix common to its projects
// (and to an existing child that starts with the same character, which it adopts), so each
// node keeps at most one child per next character.
func (l *ShardLayout) Split(prefix string, projects []string, capacity int) []string {
	var added []string
	var split func(prefix string, projects []string)
	split = func(prefix string, projects []string) {
		groups := map[byte][]string{}
		direct := len(projects)
		for _, p := range projects {
			if len(p) > len(prefix) {
				groups[p[len(prefix)]] = append(groups[p[len(prefix)]], p)
			}
		}
		order := slices.Collect(maps.Keys(groups))
		slices.SortFunc(order, func(a, b byte) int {
			if d := len(groups[b]) - len(groups[a]); d != 0 {
				return d
			}
			return int(a) - int(b)
		})
		type made struct {
			prefix   string
			projects []string
		}
		var todo []made
		for _, c := range order {
			// A shard for one project adds a role without making the node any smaller.
			if len(l.children[prefix])+direct <= capacity || len(groups[c]) < 2 {
				break
			}
			common := groups[c][0]
			for _, p := range groups[c][1:] {
				common = commonPrefix(common, p)
			}
			for _, ch := range l.children[prefix] {
				if ch[len(prefix)] == c {
					common = commonPrefix(common, ch)
				}
			}
			if err := l.Add(common); err != nil {
				continue // cannot happen: common starts with prefix and one more name character
			}
			added = append(added, common)
			direct -= len(groups[c])
			todo = append(todo, made{common, groups[c]})
		}
		for _, m := range todo {
			if len(l.children[m.prefix])+len(m.projects) > capacity {
				split(m.prefix, m.projects)
			}
		}
	}
	split(prefix, projects)
	return added
}

func commonPrefix(a, b string) string {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return a[:i]
		}
	}
	return a[:n]
}

// ShardKeys are the keys every node of a tree is delegated to: the claimed keys that
// targets names (offline), or the recently-claimed online key.
type ShardKeys struct {
	Keys      map[string]*metadata.Key
	KeyIDs    []string
	Threshold int
}

// ShardNode is what one node delegates.
type ShardNode struct {
	Tree     string
	Prefix   string
	Children []string            // child prefixes
	Projects []ProjectDelegation // projects delegated directly
	// Targets are files the node lists itself: only the top recently-claimed node, with
	// the repository's own targets (owntargets.go).
	Targets map[string]*metadata.TargetFiles
	// Own are delegations to the repository's own online roles (the attestation index
	// roles), to keys, by the top recently-claimed node only.
	Own []metadata.DelegatedRole
}

// Role is the node's role name.
func (n ShardNode) Role() string { return ShardRole(n.Tree, n.Prefix) }

// BuildShardNode returns the canonical signed bytes of a node: its child shards (delegated
// to keys, not terminating) and its projects (each to its maintainers' keys, terminating),
// sorted by role name.
func BuildShardNode(version int64, expires time.Time, keys ShardKeys, n ShardNode) ([]byte, error) {
	md := metadata.Targets(expires.UTC().Truncate(time.Second))
	md.Signed.SpecVersion = SpecVersion
	md.Signed.Version = version
	for path, tf := range n.Targets {
		md.Signed.Targets[path] = tf
	}
	d := &metadata.Delegations{Keys: map[string]*metadata.Key{}, Roles: make([]metadata.DelegatedRole, 0, len(n.Children)+len(n.Projects))}
	if len(n.Children) > 0 {
		for _, id := range keys.KeyIDs {
			d.Keys[id] = keys.Keys[id]
		}
		ids := slices.Sorted(slices.Values(keys.KeyIDs))
		for _, c := range n.Children {
			d.Roles = append(d.Roles, metadata.DelegatedRole{Name: ShardRole(n.Tree, c), KeyIDs: ids, Threshold: keys.Threshold, Paths: []string{ShardPathPattern(c)}})
		}
	}
	for _, p := range n.Projects {
		for id, k := range p.Keys {
			d.Keys[id] = k
		}
		d.Roles = append(d.Roles, metadata.DelegatedRole{
			Name: p.Name, KeyIDs: slices.Sorted(slices.Values(p.KeyIDs)), Threshold: p.Threshold, Terminating: true,
			Paths: []string{ProjectPathPattern(p.Name)},
		})
	}
	if len(n.Own) > 0 {
		for _, id := range keys.KeyIDs {
			d.Keys[id] = keys.Keys[id]
		}
		d.Roles = append(d.Roles, n.Own...)
	}
	slices.SortFunc(d.Roles, func(a, b metadata.DelegatedRole) int { return strings.Compare(a.Name, b.Name) })
	md.Signed.Delegations = d
	return Canonical(md.Signed)
}

// ShardNodeContent is what a node's metadata delegates, read back.
type ShardNodeContent struct {
	Children []string                     // child prefixes
	Projects map[string]ProjectDelegation // by name
}

// CheckShardNode reads a node's metadata and checks that it delegates exactly as a node
// of layout must: every child shard of its prefix in the layout (and no other) with keys,
// and projects that start with its prefix, are routed to it by the layout, with the exact
// patterns and terminating flags. It does not check signatures.
func CheckShardNode(md *metadata.Metadata[metadata.TargetsType], layout *ShardLayout, prefix string, keys ShardKeys) (*ShardNodeContent, error) {
	role := ShardRole(layout.Tree, prefix)
	out := &ShardNodeContent{Projects: map[string]ProjectDelegation{}}
	if len(md.Signed.Targets) > 0 {
		return nil, api.Errorf(api.CodeBadRequest, "%s may not list targets itself: only delegations", role)
	}
	d := md.Signed.Delegations
	if d == nil {
		d = &metadata.Delegations{}
	}
	if d.SuccinctRoles != nil {
		return nil, api.Errorf(api.CodeBadRequest, "%s may not use succinct hash-bin delegations: they route by the hash of the whole path, so one project's releases would need many roles", role)
	}
	wantChildren := layout.Children(prefix)
	seen := map[string]bool{}
	for _, r := range d.Roles {
		if seen[r.Name] {
			return nil, api.Errorf(api.CodeBadRequest, "%s delegates to %q twice", role, r.Name)
		}
		seen[r.Name] = true
		if t, p, ok := ParseShardRole(r.Name); ok {
			switch {
			case t != layout.Tree || !slices.Contains(wantChildren, p):
				return nil, api.Errorf(api.CodeBadRequest, "%s delegates to shard %q, which is not one of its child shards in the layout %v", role, r.Name, wantChildren)
			case len(r.Paths) != 1 || r.Paths[0] != ShardPathPattern(p) || len(r.PathHashPrefixes) > 0:
				return nil, api.Errorf(api.CodeBadRequest, "%s delegates to shard %q with paths %v; it must be exactly [%q]", role, r.Name, r.Paths, ShardPathPattern(p))
			case r.Terminating:
				return nil, api.Errorf(api.CodeBadRequest, "%s delegates to shard %q as terminating; shards are not terminating, so that a project missing from claimed is looked up in recently-claimed", role, r.Name)
			case r.Threshold != keys.Threshold || !slices.Equal(slices.Sorted(slices.Values(r.KeyIDs)), slices.Sorted(slices.Values(keys.KeyIDs))):
				return nil, api.Errorf(api.CodeInvalidKey, "%s delegates to shard %q with keys %v (threshold %d); every shard of %s must be delegated to %v (threshold %d)", role, r.Name, r.KeyIDs, r.Threshold, layout.Tree, keys.KeyIDs, keys.Threshold)
			}
			for _, id := range r.KeyIDs {
				if k, ok := d.Keys[id]; !ok || KeyID(k) != id || keys.Keys[id] == nil || KeyID(keys.Keys[id]) != id {
					return nil, api.Errorf(api.CodeInvalidKey, "%s lists key %s for shard %q without the right public key", role, id, r.Name)
				}
			}
			out.Children = append(out.Children, p)
			continue
		}
		if err := ValidateProjectName(r.Name); err != nil {
			return nil, api.Wrap(api.CodeBadRequest, err, "%s delegates to %q, which is neither a shard nor a project name", role, r.Name)
		}
		switch {
		case !strings.HasPrefix(r.Name, prefix) || layout.Route(r.Name) != prefix:
			return nil, api.Errorf(api.CodeBadRequest, "%s delegates project %q, which belongs to node %s of the layout: a project is delegated by the deepest shard whose prefix its name starts with", role, r.Name, ShardRole(layout.Tree, layout.Route(r.Name)))
		case len(r.Paths) != 1 || r.Paths[0] != ProjectPathPattern(r.Name) || len(r.PathHashPrefixes) > 0:
			return nil, api.Errorf(api.CodeBadRequest, "%s delegates project %q with paths %v; it must be exactly [%q]", role, r.Name, r.Paths, ProjectPathPattern(r.Name))
		case !r.Terminating:
			return nil, api.Errorf(api.CodeBadRequest, "%s delegates project %q without terminating: true", role, r.Name)
		}
		pd := ProjectDelegation{Name: r.Name, Keys: map[string]*metadata.Key{}, KeyIDs: slices.Clone(r.KeyIDs), Threshold: r.Threshold}
		for _, id := range r.KeyIDs {
			k, ok := d.Keys[id]
			if !ok {
				return nil, api.Errorf(api.CodeInvalidKey, "%s names key %s for project %q but does not list it", role, id, r.Name)
			}
			pd.Keys[id] = k
		}
		out.Projects[r.Name] = pd
	}
	if missing := slices.DeleteFunc(slices.Clone(wantChildren), func(c string) bool { return slices.Contains(out.Children, c) }); len(missing) > 0 {
		return nil, api.Errorf(api.CodeBadRequest, "%s drops its child shard %s: shards are never removed (clients refuse a snapshot without a role they saw)", role, ShardRole(layout.Tree, missing[0]))
	}
	if n := len(out.Children) + len(out.Projects); n > MaxShardDelegations {
		return nil, api.Errorf(api.CodeTooMany, "%s delegates %d roles; at most %d are allowed: split it into shards", role, n, MaxShardDelegations)
	}
	return out, nil
}

// MaxShardDelegations is the most delegations the server accepts in one node that admins
// sign. It is above ShardCapacity so that a claim that fills a node need not split it at
// once, and bounds what a client downloads.
const MaxShardDelegations = 4 * ShardCapacity

// SameDelegation reports whether two project delegations name the same keys and threshold.
func SameDelegation(a, b ProjectDelegation) bool {
	if a.Threshold != b.Threshold || len(a.KeyIDs) != len(b.KeyIDs) {
		return false
	}
	ak, bk := slices.Sorted(slices.Values(a.KeyIDs)), slices.Sorted(slices.Values(b.KeyIDs))
	if !slices.Equal(ak, bk) {
		return false
	}
	for _, id := range ak {
		ka, kb := a.Keys[id], b.Keys[id]
		if ka == nil || kb == nil || KeyID(ka) != KeyID(kb) || KeyID(ka) != id {
			return false
		}
	}
	return true
}
