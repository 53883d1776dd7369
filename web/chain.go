package web

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The chain of signed metadata that vouches for a target, found the way a TUF client
// finds it (TUF 5.6.7: a preorder depth-first walk of the delegations from targets,
// honouring terminating delegations), so it stays right whatever the depth of the
// delegation tree (claimed / recently-claimed → shard roles → project roles).

// maxWalk bounds the roles one walk loads.
const maxWalk = 64

// chainLink is one role on the path to a target, with who signed it.
type chainLink struct {
	Role         string
	Version      int64
	Expires      time.Time
	DelegatedBy  string
	KeyHolder    string
	Threshold    int
	Keys         []keySig
	Valid        int
	ThresholdMet bool
	Paths        []string
	Terminating  bool
}

// keySig is one key trusted for a role and whether its signature on the version verifies.
type keySig struct {
	client.KeyView
	Signed bool
}

// roleCache keeps parsed published metadata by (role, version): versions are immutable,
// and a delegating role (recently-claimed at 100k projects is tens of MB) is expensive to
// parse. Bounded by the bytes parsed.
type roleCache struct {
	mu    sync.Mutex
	m     map[string]*parsedRole
	bytes int
	max   int
	// sigs holds signature checks by role version and delegator version: verifying a big
	// role means canonicalising all of it (~15 µs per target).
	sigs map[string]sigResult
}

type sigResult struct {
	keys  []keySig
	valid int
}

// checkedSignatures is signatures(), remembered for a role version as its delegator's
// version trusts it (both immutable).
func (u *UI) checkedSignatures(role string, version int64, delegator string, delegatorVersion int64, md any, keys map[string]*metadata.Key, ids []string) ([]keySig, int) {
	key := fmt.Sprintf("%d.%s/%d.%s", version, role, delegatorVersion, delegator)
	c := u.roles
	c.mu.Lock()
	r, ok := c.sigs[key]
	c.mu.Unlock()
	if ok {
		return r.keys, r.valid
	}
	ks, n := signatures(role, md, keys, ids)
	c.mu.Lock()
	if len(c.sigs) > 4096 {
		clear(c.sigs)
	}
	c.sigs[key] = sigResult{ks, n}
	c.mu.Unlock()
	return ks, n
}

type parsedRole struct {
	raw     []byte
	targets *metadata.Metadata[metadata.TargetsType]
	root    *metadata.Metadata[metadata.RootType]
}

func newRoleCache(max int) *roleCache {
	return &roleCache{m: map[string]*parsedRole{}, max: max, sigs: map[string]sigResult{}}
}

// load returns a published version parsed as its role's type.
func (u *UI) load(ctx context.Context, role string, version int64) (*parsedRole, error) {
	key := fmt.Sprintf("%d.%s", version, role)
	c := u.roles
	c.mu.Lock()
	p, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	raw, err := u.src.Metadata(ctx, role, version)
	if err != nil {
		return nil, err
	}
	p = &parsedRole{raw: raw}
	switch role {
	case tufrepo.RoleRoot:
		p.root, err = metadata.Root().FromBytes(raw)
	case tufrepo.RoleTimestamp, tufrepo.RoleSnapshot:
		// Parsed by their pages; nothing to keep.
	default:
		p.targets, err = metadata.Targets().FromBytes(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing published %s version %d: %w", role, version, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, old := range c.m {
		if c.bytes+len(raw) <= c.max {
			break
		}
		c.bytes -= len(old.raw)
		delete(c.m, k)
	}
	c.m[key] = p
	c.bytes += len(raw)
	return p, nil
}

// latest returns the newest published version of a delegated role.
func (u *UI) latest(ctx context.Context, role string) (*parsedRole, int64, error) {
	v, _, err := u.db.LatestPublishedVersion(ctx, role)
	if err != nil {
		return nil, 0, api.Errorf(api.CodeNotFound, "role %q has no published version", role)
	}
	p, err := u.load(ctx, role, v)
	return p, v, err
}

// topChain returns the links of root, timestamp, snapshot and targets at the head.
func (u *UI) topChain(ctx context.Context, h Head) ([]chainLink, *metadata.Metadata[metadata.RootType], *metadata.Metadata[metadata.TargetsType], error) {
	rp, err := u.load(ctx, tufrepo.RoleRoot, h.Root)
	if err != nil {
		return nil, nil, nil, err
	}
	root := rp.root
	var links []chainLink
	for _, role := range []string{tufrepo.RoleRoot, tufrepo.RoleTimestamp, tufrepo.RoleSnapshot, tufrepo.RoleTargets} {
		var v int64
		switch role {
		case tufrepo.RoleRoot:
			v = h.Root
		case tufrepo.RoleTimestamp:
			v = h.Timestamp
		case tufrepo.RoleSnapshot:
			v = h.Snapshot
		default:
			if v, _, err = u.db.LatestPublishedVersion(ctx, role); err != nil {
				return nil, nil, nil, err
			}
		}
		raw, err := u.src.Metadata(ctx, role, v)
		if err != nil {
			return nil, nil, nil, err
		}
		md, exp, err := parseAny(role, raw)
		if err != nil {
			return nil, nil, nil, err
		}
		l := chainLink{Role: role, Version: v, Expires: exp, DelegatedBy: tufrepo.RoleRoot, KeyHolder: topKeyHolder(role)}
		var ids []string
		if rr := root.Signed.Roles[role]; rr != nil {
			ids, l.Threshold = rr.KeyIDs, rr.Threshold
		}
		l.Keys, l.Valid = u.checkedSignatures(role, v, tufrepo.RoleRoot, h.Root, md, root.Signed.Keys, ids)
		l.ThresholdMet = l.Threshold > 0 && l.Valid >= l.Threshold
		links = append(links, l)
	}
	tp, err := u.load(ctx, tufrepo.RoleTargets, links[3].Version)
	if err != nil {
		return nil, nil, nil, err
	}
	return links, root, tp.targets, nil
}

// chain returns the links from root down to the role that lists path.
func (u *UI) chain(ctx context.Context, h Head, path string) ([]chainLink, error) {
	links, _, targets, err := u.topChain(ctx, h)
	if err != nil {
		return nil, err
	}
	online, err := u.db.OnlineKeys(ctx)
	if err != nil {
		return nil, err
	}
	type visit struct {
		role   string
		parent int // index in walked of the delegator; -1 for targets
		del    metadata.DelegatedRole
		keys   map[string]*metadata.Key
	}
	type walked struct {
		visit
		md      *metadata.Metadata[metadata.TargetsType]
		version int64
	}
	var done []walked
	stack := []visit{{role: tufrepo.RoleTargets, parent: -1}}
	seen := map[string]bool{}
	found := -1
	for len(stack) > 0 && len(done) < maxWalk {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[v.role] {
			continue
		}
		seen[v.role] = true
		var md *metadata.Metadata[metadata.TargetsType]
		var version int64
		if v.parent < 0 {
			md, version = targets, links[3].Version
		} else {
			p, ver, err := u.latest(ctx, v.role)
			if err != nil {
				return links, fmt.Errorf("loading %s, which %s delegates %s to: %w", v.role, done[v.parent].role, path, err)
			}
			md, version = p.targets, ver
		}
		done = append(done, walked{visit: v, md: md, version: version})
		if _, ok := md.Signed.Targets[path]; ok {
			found = len(done) - 1
			break
		}
		if md.Signed.Delegations == nil {
			continue
		}
		var children []visit
		for _, rr := range md.Signed.Delegations.GetRolesForTarget(path) {
			c := visit{role: rr.Name, parent: len(done) - 1, keys: md.Signed.Delegations.Keys}
			if dr := delegatedRole(md.Signed.Delegations, rr.Name); dr != nil {
				c.del = *dr
			}
			children = append(children, c)
			if rr.Terminating {
				stack = stack[:0]
				break
			}
		}
		slices.Reverse(children)
		stack = append(stack, children...)
	}
	if found < 0 {
		return links, api.Errorf(api.CodeNotFound, "no role reached from targets lists %s (walked %d roles)", path, len(done))
	}
	var path2 []walked
	for i := found; i > 0; i = done[i].parent {
		path2 = append(path2, done[i])
	}
	slices.Reverse(path2)
	project, _, _ := strings.Cut(path, "/")
	for _, w := range path2 {
		l := chainLink{Role: w.role, Version: w.version, Expires: w.md.Signed.Expires.UTC(), DelegatedBy: done[w.parent].role,
			Threshold: w.del.Threshold, Paths: w.del.Paths, Terminating: w.del.Terminating}
		switch {
		case w.role == project:
			l.KeyHolder = "project maintainers"
		case anyOnline(w.del.KeyIDs, online):
			l.KeyHolder = "online key held by the server"
		default:
			l.KeyHolder = "offline admin keys"
		}
		l.Keys, l.Valid = u.checkedSignatures(w.role, w.version, done[w.parent].role, done[w.parent].version, w.md, w.keys, w.del.KeyIDs)
		l.ThresholdMet = l.Threshold > 0 && l.Valid >= l.Threshold
		links = append(links, l)
	}
	return links, nil
}

// delegatedRole returns the delegation entry of name (classic or succinct hash bins).
func delegatedRole(d *metadata.Delegations, name string) *metadata.DelegatedRole {
	for i := range d.Roles {
		if d.Roles[i].Name == name {
			return &d.Roles[i]
		}
	}
	if s := d.SuccinctRoles; s != nil && s.IsDelegatedRole(name) {
		return &metadata.DelegatedRole{Name: name, KeyIDs: s.KeyIDs, Threshold: s.Threshold}
	}
	return nil
}

// anyOnline reports whether one of ids is an online key (online maps role → key ID, as
// the repository state records the keys the server signs with).
func anyOnline(ids []string, online map[string]string) bool {
	for _, id := range ids {
		for _, k := range online {
			if k == id {
				return true
			}
		}
	}
	return false
}

func topKeyHolder(role string) string {
	switch role {
	case tufrepo.RoleTimestamp, tufrepo.RoleSnapshot:
		return "online key held by the server"
	}
	return "offline admin keys"
}

// parseAny parses raw as role's metadata type and returns it with its expiry.
func parseAny(role string, raw []byte) (any, time.Time, error) {
	var err error
	switch role {
	case tufrepo.RoleRoot:
		m, e := metadata.Root().FromBytes(raw)
		if e == nil {
			return m, m.Signed.Expires.UTC(), nil
		}
		err = e
	case tufrepo.RoleTimestamp:
		m, e := metadata.Timestamp().FromBytes(raw)
		if e == nil {
			return m, m.Signed.Expires.UTC(), nil
		}
		err = e
	case tufrepo.RoleSnapshot:
		m, e := metadata.Snapshot().FromBytes(raw)
		if e == nil {
			return m, m.Signed.Expires.UTC(), nil
		}
		err = e
	default:
		m, e := metadata.Targets().FromBytes(raw)
		if e == nil {
			return m, m.Signed.Expires.UTC(), nil
		}
		err = e
	}
	return nil, time.Time{}, fmt.Errorf("parsing %s metadata: %w", role, err)
}

// signatures verifies, key by key, which of the trusted keys ids signed md, and counts
// the valid ones (distinct keys).
func signatures(role string, md any, keys map[string]*metadata.Key, ids []string) ([]keySig, int) {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var out []keySig
	valid := 0
	for _, id := range sorted {
		ks := keySig{KeyView: client.KeyView{KeyID: id}}
		if k, ok := keys[id]; ok {
			ks.KeyView = client.ViewKey(k)
			ks.KeyID = id
			ks.Signed = signatureVerifies(role, md, id, k)
		}
		if ks.Signed {
			valid++
		}
		out = append(out, ks)
	}
	return out, valid
}

// signatureVerifies checks the one signature by keyID over md with go-tuf's own
// verification, through a delegation to that single key.
func signatureVerifies(role string, md any, keyID string, k *metadata.Key) bool {
	d := metadata.Targets()
	d.Signed.Delegations = &metadata.Delegations{
		Keys:  map[string]*metadata.Key{keyID: k},
		Roles: []metadata.DelegatedRole{{Name: role, KeyIDs: []string{keyID}, Threshold: 1, Paths: []string{"*"}}},
	}
	return d.VerifyDelegate(role, md) == nil
}
