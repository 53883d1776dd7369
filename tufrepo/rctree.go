package tufrepo

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The recently-claimed tree is the server's to keep (online key): every publish routes new
// projects and projects with new keys to their node, re-signs the nodes that changed,
// splits a node that would delegate more than ShardCapacity entries, and re-signs a bounded
// number of nodes that are due. A publish that creates a project therefore signs one node
// of at most ShardCapacity delegations, whatever the size of the repository.

// rcKeys are the keys every recently-claimed node is delegated to.
func (s Signers) rcKeys() ShardKeys {
	k := s.RecentlyClaimed
	return ShardKeys{Keys: map[string]*metadata.Key{k.KeyID: k.Key}, KeyIDs: []string{k.KeyID}, Threshold: 1}
}

func (p *Publisher) capacity() int {
	if p.ShardCapacity > 0 {
		return p.ShardCapacity
	}
	return ShardCapacity
}

func loadRCTree(ctx context.Context, tx PublishTx, capacity int) (*rcTree, error) {
	rows, err := tx.RCShards(ctx)
	if err != nil {
		return nil, err
	}
	prefixes := make([]string, 0, len(rows))
	for _, r := range rows {
		prefixes = append(prefixes, r.Prefix)
	}
	layout, err := NewShardLayout(RoleRecentlyClaimed, prefixes...)
	if err != nil {
		return nil, fmt.Errorf("loading the recently-claimed tree: %w", err)
	}
	t := &rcTree{layout: layout, nodes: map[string]*ShardState{}}
	for i := range rows {
		st := rows[i]
		// A node over capacity (the single recently-claimed of a repository made before
		// sharding) is split by the next publish.
		if st.Direct+len(layout.Children(st.Prefix)) > capacity {
			st.Dirty = true
		}
		t.nodes[st.Prefix] = &st
	}
	if t.nodes[""] == nil {
		return nil, fmt.Errorf("loading the recently-claimed tree: the store has no top node")
	}
	return t, nil
}

// rcPlan is what one publish does to the recently-claimed tree.
type rcPlan struct {
	dirty    map[string]bool                // prefixes of the nodes to sign
	projects map[string][]ProjectDelegation // prefix → the projects it delegates directly
	assign   map[string]string              // project → node role, where it changes
	added    []string                       // new node prefixes
	clean    []string                       // roles whose dirty flag the store clears
	floor    int64                          // PublishForward: sign no version below this
}

// planRC decides which recently-claimed nodes this publish signs and what they delegate.
func (p *Publisher) planRC(ctx context.Context, tx PublishTx, now time.Time, newProjects []UndelegatedProject, staged []string) (*rcPlan, error) {
	t := p.rc
	plan := &rcPlan{dirty: map[string]bool{}, projects: map[string][]ProjectDelegation{}, assign: map[string]string{}}
	var named []string
	for _, np := range newProjects {
		if np.Tree == RoleRecentlyClaimed {
			named = append(named, np.Name)
			plan.dirty[t.layout.Route(np.Name)] = true
		}
	}
	flagged, err := tx.DirtyRCShards(ctx)
	if err != nil {
		return nil, err
	}
	for _, prefix := range flagged {
		if t.nodes[prefix] == nil {
			return nil, fmt.Errorf("recently-claimed node %q is flagged but not in the tree", prefix)
		}
		plan.dirty[prefix] = true
		plan.clean = append(plan.clean, ShardRole(RoleRecentlyClaimed, prefix))
	}
	// Attestations posted since the index was signed: the top node's signing signs them.
	if attDue, err := attestationsDue(ctx, tx); err != nil {
		return nil, err
	} else if attDue {
		plan.dirty[""] = true
	}
	// A top node that an older release's publisher signed lacks the own content: sign it
	// again (ownContentMissing).
	if !plan.dirty[""] {
		if missing, err := p.ownContentMissing(ctx, tx, t.nodes[""].Version); err != nil {
			return nil, err
		} else if missing {
			p.Log.Warn("the published top recently-claimed node lacks the repository's own targets or attestation index delegations (signed by an older release during a rolling upgrade?): signing it again", "version", t.nodes[""].Version)
			plan.dirty[""] = true
		}
	}
	var due []*ShardState
	for prefix, st := range t.nodes {
		switch {
		case st.Dirty || st.Version == 0:
			plan.dirty[prefix] = true
		case !plan.dirty[prefix] && p.rcDue(now, st):
			due = append(due, st)
		}
	}
	slices.SortFunc(due, func(a, b *ShardState) int { return a.Expires.Compare(b.Expires) })
	for _, st := range due[:min(len(due), max(1, p.MaxResignPerPublish))] {
		plan.dirty[st.Prefix] = true
	}
	if len(plan.dirty) == 0 {
		return plan, nil
	}
	roles := make([]string, 0, len(plan.dirty))
	for prefix := range plan.dirty {
		roles = append(roles, ShardRole(RoleRecentlyClaimed, prefix))
	}
	rows, err := tx.NodeProjects(ctx, roles, named, staged)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		node := t.layout.Route(r.Name)
		if !plan.dirty[node] {
			return nil, fmt.Errorf("project %q routes to recently-claimed node %q, which this publish does not sign", r.Name, node)
		}
		plan.projects[node] = append(plan.projects[node], r.ProjectDelegation)
		if role := ShardRole(RoleRecentlyClaimed, node); r.Shard != role {
			plan.assign[r.Name] = role
		}
	}
	for _, prefix := range slices.Sorted(maps.Keys(plan.dirty)) {
		ps := plan.projects[prefix]
		if len(t.layout.Children(prefix))+len(ps) <= p.capacity() {
			continue
		}
		names := make([]string, len(ps))
		for i, pd := range ps {
			names[i] = pd.Name
		}
		added := t.layout.Split(prefix, names, p.capacity())
		for _, a := range added {
			plan.dirty[a] = true
			t.nodes[a] = &ShardState{Prefix: a}
		}
		plan.added = append(plan.added, added...)
		var keep []ProjectDelegation
		for _, pd := range ps {
			node := t.layout.Route(pd.Name)
			if node == prefix {
				keep = append(keep, pd)
				continue
			}
			plan.projects[node] = append(plan.projects[node], pd)
			plan.assign[pd.Name] = ShardRole(RoleRecentlyClaimed, node)
		}
		plan.projects[prefix] = keep
	}
	return plan, nil
}

// rcDue reports whether a recently-claimed node must be re-signed for its expiry.
func (p *Publisher) rcDue(now time.Time, st *ShardState) bool {
	return due(now, st.Expires, RecentlyClaimedExpiry)
}

// signRC signs the planned nodes (children before parents does not matter: they are
// published in one snapshot) and records the tree's changes.
func (p *Publisher) signRC(ctx context.Context, tx PublishTx, now time.Time, plan *rcPlan, sign func(role string, v int64, raw []byte, exp time.Time) ([]byte, error)) error {
	if len(plan.dirty) == 0 {
		return nil
	}
	t := p.rc
	keys := p.Signers.rcKeys()
	exp := now.Add(RecentlyClaimedExpiry).Truncate(time.Second)
	for _, prefix := range slices.Sorted(maps.Keys(plan.dirty)) {
		st := t.nodes[prefix]
		ps := plan.projects[prefix]
		slices.SortFunc(ps, func(a, b ProjectDelegation) int { return strings.Compare(a.Name, b.Name) })
		n := ShardNode{Tree: RoleRecentlyClaimed, Prefix: prefix, Children: t.layout.Children(prefix), Projects: ps}
		if prefix == "" {
			own, err := ownTargets(ctx, tx)
			if err != nil {
				return fmt.Errorf("reading the repository's own targets: %w", err)
			}
			n.Targets = own
			if n.Own, err = p.signAttestationShards(ctx, tx, now, plan.floor, sign); err != nil {
				return fmt.Errorf("signing the attestation index: %w", err)
			}
		}
		v := max(st.Version+1, plan.floor)
		signed, err := BuildShardNode(v, exp, keys, n)
		if err != nil {
			return fmt.Errorf("building %s: %w", n.Role(), err)
		}
		raw, err := signIn(ctx, tx, signed, p.Signers.RecentlyClaimed)
		if err != nil {
			return err
		}
		if _, err := sign(n.Role(), v, raw, exp); err != nil {
			return err
		}
		p.index.Set(n.Role(), v, int64(len(raw)))
		st.Version, st.Expires, st.Dirty, st.Direct = v, exp, false, len(ps)
	}
	return tx.SaveRCShards(ctx, plan.added, plan.assign, plan.clean)
}
