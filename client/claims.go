package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ClaimedExpiry is how long a version of a claimed node written by PlanClaim stays valid.
const ClaimedExpiry = tufrepo.OfflineExpiry

// ClaimQueue downloads what waits for the admins' next offline signing of claimed (an
// admin token is needed): every waiting project, or only those in projects when it is not
// empty. It is the server's word: PlanClaim checks it against the verified metadata.
func (a *API) ClaimQueue(ctx context.Context, projects ...string) (api.ClaimQueue, error) {
	var res api.ClaimQueue
	var q url.Values
	if len(projects) > 0 {
		q = url.Values{"project": projects}
	}
	if _, err := a.do(ctx, request{method: http.MethodGet, url: a.endpoint(q, "api", "v1", "admin", "claims"), auth: true, out: &res}); err != nil {
		return res, fmt.Errorf("downloading the claim queue: %w", err)
	}
	return res, nil
}

// SubmitClaimed uploads new versions of nodes of the claimed tree signed by the admins
// (role → the exact signed bytes). The server holds the answer for up to wait until they
// are published; the result's Status is api.StatusPublished (with the snapshot) or
// api.StatusStaged.
func (a *API) SubmitClaimed(ctx context.Context, nodes map[string][]byte, wait time.Duration) (api.ClaimResult, error) {
	var res api.ClaimResult
	raw, err := json.Marshal(api.ClaimedUpload{Nodes: nodes})
	if err != nil {
		return res, err
	}
	_, err = a.do(ctx, request{
		method: http.MethodPost, url: a.endpoint(waitQuery(wait), "api", "v1", "admin", "claimed"),
		body: bytes.NewReader(raw), size: int64(len(raw)), contentType: api.MediaJSON, auth: true, out: &res,
	})
	if err != nil {
		return res, fmt.Errorf("uploading claimed: %w", err)
	}
	return res, nil
}

// Delegators is the verified top of the trust chain: root, timestamp, snapshot, targets and
// the two delegating roles, from one refresh.
type Delegators struct {
	Root            *metadata.Metadata[metadata.RootType]
	Timestamp       *metadata.Metadata[metadata.TimestampType]
	Snapshot        *metadata.Metadata[metadata.SnapshotType]
	Targets         *metadata.Metadata[metadata.TargetsType]
	Claimed         *metadata.Metadata[metadata.TargetsType]
	RecentlyClaimed *metadata.Metadata[metadata.TargetsType]
}

// delegatorProbe is a target path under no project (project names cannot start with "_")
// that every delegating role's "*/*/*" pattern matches: looking it up makes the updater
// load and verify claimed and recently-claimed, and nothing below them.
var delegatorProbe = tufrepo.TargetPath("_cairn-probe", "0", probeFile)

// Delegators refreshes and returns the verified top-level and delegating roles.
func (r *Repo) Delegators(ctx context.Context) (*Delegators, error) {
	// Admins compare against the signed snapshot itself: the classic path.
	if err := r.refreshClassic(ctx); err != nil {
		return nil, err
	}
	r.fetch.ctx = ctx
	_, lookupErr := r.up.GetTargetInfo(delegatorProbe)
	if lookupErr != nil && !isTargetNotFound(lookupErr) {
		return nil, r.tufError(lookupErr, "loading claimed and recently-claimed")
	}
	return r.loadedDelegators(), nil
}

// loadedDelegators reads the trusted metadata the updater holds now.
func (r *Repo) loadedDelegators() *Delegators {
	t := r.up.GetTrustedMetadataSet()
	return &Delegators{
		Root: t.Root, Timestamp: t.Timestamp, Snapshot: t.Snapshot,
		Targets: t.Targets[tufrepo.RoleTargets], Claimed: t.Targets[tufrepo.RoleClaimed], RecentlyClaimed: t.Targets[tufrepo.RoleRecentlyClaimed],
	}
}

// ClaimedDelegation returns targets' delegation to claimed: the admin keys and threshold
// that must sign it.
func (d *Delegators) ClaimedDelegation() (*metadata.DelegatedRole, map[string]*metadata.Key, error) {
	if d.Targets == nil || d.Targets.Signed.Delegations == nil {
		return nil, nil, api.Errorf(api.CodeNotFound, "the verified targets metadata delegates to no role")
	}
	for i, role := range d.Targets.Signed.Delegations.Roles {
		if role.Name == tufrepo.RoleClaimed {
			return &d.Targets.Signed.Delegations.Roles[i], d.Targets.Signed.Delegations.Keys, nil
		}
	}
	return nil, nil, api.Errorf(api.CodeNotFound, "the verified targets metadata does not delegate to %q", tufrepo.RoleClaimed)
}

// ClaimEntry is a project's delegation as claimed will carry it.
type ClaimEntry struct {
	Name              string    `json:"name"`
	Keys              []KeyView `json:"keys"`
	Threshold         int       `json:"threshold"`
	DelegationVersion int64     `json:"delegation_version"`
}

// ClaimPlan is what the next version of claimed changes, for the admins to review.
type ClaimPlan struct {
	// CurrentVersion is the verified version of the claimed top; NextVersion the version
	// the plan signs (the same when the top stays as it is).
	CurrentVersion int64     `json:"current_version"`
	NextVersion    int64     `json:"next_version"`
	Expires        time.Time `json:"expires"`
	// Move are the recently-claimed projects moved into claimed; Waiting the ones that
	// stay in recently-claimed.
	Move    []ClaimEntry `json:"move"`
	Waiting []ClaimEntry `json:"waiting"`
	// Changes are the queued maintainer changes of claimed projects that this version
	// applies, one entry a project: what its delegation becomes, and the signed change
	// documents behind it, each verified here against the keys before it.
	Changes []ClaimChange `json:"changes"`
	// Kept are the claimed projects whose delegation stays as it is in the nodes signed.
	Kept []string `json:"kept"`
	// Nodes are the nodes of the claimed tree the plan signs: the ones whose projects
	// change, new shards, and their parents.
	Nodes []ClaimNodePlan `json:"nodes"`
}

// ClaimNodePlan is one node of the claimed tree that the plan signs.
type ClaimNodePlan struct {
	Role     string `json:"role"`
	Version  int64  `json:"version"`
	New      bool   `json:"new,omitempty"`
	Projects int    `json:"projects"`
	Shards   int    `json:"shards"`
}

// ClaimChange is what the queued maintainer changes of one claimed project do together
// (the embedded diff: the delegation in claimed now against the one it will carry), with
// the change documents they come from, oldest first.
type ClaimChange struct {
	MaintainerDiff
	Documents []QueuedChange `json:"documents"`
}

// QueuedChange is one signed maintainer change document of a claimed project's queue,
// verified offline against the keys before it (those in claimed for the first, those of
// the document before for the others).
type QueuedChange struct {
	// Change is what the document changes against the keys before it.
	Change MaintainerDiff `json:"change"`
	// SignedBy are the keys before it whose signatures verify; Threshold of them were
	// needed, of KeysBefore.
	SignedBy   []KeyView `json:"signed_by"`
	Threshold  int       `json:"threshold"`
	KeysBefore int       `json:"keys_before"`
	// Expired is set when the document expired while it waited for the admins: its
	// signatures were checked as of just before its expiry. An old signed document could be
	// replayed, so an expired one is to be applied only once its maintainers confirmed it.
	Expired bool `json:"expired,omitempty"`
}

// VerifyQueuedChanges checks offline, trusting nothing the server says, that the signed
// change documents queued for a claimed project (oldest first) chain from current, the
// delegation in the verified claimed metadata, to the delegation the queue asks claimed to
// carry (queued, at version queuedVersion): each document is a valid maintainer change
// (tufrepo.ValidateMaintainerChange) of the keys before it (current for the first, the
// document before for the others) signed by a threshold of them, the versions follow one
// another up to queuedVersion, and the last one names exactly queued's keys and
// threshold. A document that expired while queued is verified as of just before its expiry
// and marked Expired.
func VerifyQueuedChanges(project string, current MaintainerSet, docs [][]byte, queued MaintainerSet, queuedVersion int64, now time.Time) ([]QueuedChange, error) {
	refuse := func(i int, version int64, format string, args ...any) error {
		what := fmt.Sprintf("queued maintainer change document %d of %d of %s", i+1, len(docs), project)
		if version > 0 {
			what = fmt.Sprintf("queued maintainer change %d of %s (document %d of %d)", version, project, i+1, len(docs))
		}
		return api.Errorf(api.CodeSignatureInvalid, "%s %s: the server queued keys the maintainers did not sign; nothing was signed", what, fmt.Sprintf(format, args...))
	}
	if len(docs) == 0 {
		return nil, api.Errorf(api.CodeSignatureInvalid, "the server says maintainer changes of claimed project %s are queued but sends no signed change document to check them: the server queued keys the maintainers did not sign; nothing was signed", project)
	}
	version := queuedVersion - int64(len(docs))
	if version < 0 {
		return nil, api.Errorf(api.CodeSignatureInvalid, "the queue gives claimed project %s delegation version %d with %d queued change documents: the versions cannot chain; the server queued keys the maintainers did not sign; nothing was signed", project, queuedVersion, len(docs))
	}
	before := current
	out := make([]QueuedChange, 0, len(docs))
	for i, raw := range docs {
		c, err := ParseMaintainerChange(raw)
		if err != nil {
			return nil, refuse(i, 0, "does not parse (%s)", api.ProblemFor(err).Detail)
		}
		at, expired := now, false
		if !c.Doc.Expires.After(now) {
			// The signing window ended while the change waited for the admins; the signatures
			// and the chain are checked as of just before it ended.
			at, expired = c.Doc.Expires.Add(-time.Second), true
		}
		acc, err := tufrepo.ValidateMaintainerChange(raw, before.Delegation(project), version, at)
		if err != nil {
			return nil, refuse(i, c.Doc.Version, "does not verify against the %d maintainer key(s) before it (%s, %d must sign): %s", len(before.Keys), maintainerKeysText(before), before.Threshold, api.ProblemFor(err).Detail)
		}
		if !acc.Complete() {
			return nil, refuse(i, c.Doc.Version, "is signed by %d of the %d maintainer keys before it, but %d must sign (%s)", len(acc.SignedBy), len(before.Keys), before.Threshold, maintainerKeysText(before))
		}
		after := MaintainerSet{Keys: acc.New.Keys, Threshold: acc.New.Threshold}
		q := QueuedChange{Change: DiffMaintainers(project, acc.Doc.Version, before, after), Threshold: before.Threshold, KeysBefore: len(before.Keys), Expired: expired}
		q.Change.Expires = acc.Doc.Expires
		for _, id := range acc.SignedBy {
			q.SignedBy = append(q.SignedBy, ViewKey(before.Keys[id]))
		}
		out = append(out, q)
		before, version = after, acc.Doc.Version
	}
	if version != queuedVersion || !sameSet(before, queued) {
		return nil, refuse(len(docs)-1, version, "gives %s %d of %d maintainer keys (%s) as version %d, but the queue asks claimed to delegate it to %d of %d (%s) as version %d",
			project, before.Threshold, len(before.Keys), maintainerKeysText(before), version, queued.Threshold, len(queued.Keys), maintainerKeysText(queued), queuedVersion)
	}
	return out, nil
}

func maintainerKeysText(s MaintainerSet) string {
	ids := s.KeyIDs()
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = short(id) + " " + ViewKey(s.Keys[id]).Fingerprint
	}
	return strings.Join(out, ", ")
}

// Empty reports whether the plan signs nothing.
func (p *ClaimPlan) Empty() bool { return len(p.Nodes) == 0 }

// ClaimOptions choose what a claim does beyond the queued maintainer changes.
type ClaimOptions struct {
	Move []string // recently-claimed projects to move into claimed
	All  bool     // move every waiting project
	// Reshard splits every claimed node that delegates more than Capacity roles (the
	// migration of a repository made before sharding); Renew re-signs every node (to renew
	// their expiry).
	Reshard, Renew bool
	// Capacity is the most delegations a node may hold before it is split; 0 means
	// tufrepo.ShardCapacity.
	Capacity int
}

// PlanClaim checks the server's claim queue against the verified metadata and writes the
// next versions of the claimed nodes it changes: queued maintainer changes applied, the
// recently-claimed projects chosen moved in, every other delegation kept, and nodes that
// would delegate more than tufrepo.ShardCapacity roles split into new shards. It returns
// the canonical signed bytes of each node to sign, by role. It refuses a queue whose
// claimed metadata is not the verified one, that misstates a project's current delegation,
// or that names projects the verified metadata does not know. Every node it builds on is
// loaded through TUF (r's last Refresh, as Delegators left it).
func PlanClaim(ctx context.Context, r *Repo, d *Delegators, q api.ClaimQueue, o ClaimOptions, now time.Time) (*ClaimPlan, map[string][]byte, error) {
	if d.Claimed == nil || d.Targets == nil {
		return nil, nil, api.Errorf(api.CodeNotFound, "the verified metadata has no claimed role")
	}
	cur, err := metadata.Targets().FromBytes(q.Claimed)
	if err != nil {
		return nil, nil, api.Wrap(api.CodeMalformedMetadata, err, "the server's current claimed metadata does not parse: %v", err)
	}
	if err := d.Targets.VerifyDelegate(tufrepo.RoleClaimed, cur); err != nil {
		return nil, nil, api.Wrap(api.CodeSignatureInvalid, err, "the server's current claimed metadata (version %d) is not signed by the claimed keys that the verified targets delegates to: %v", cur.Signed.Version, err)
	}
	if cur.Signed.Version != q.ClaimedVersion || cur.Signed.Version != d.Claimed.Signed.Version {
		return nil, nil, api.Errorf(api.CodeVersionConflict, "the server's latest claimed is version %d (it says %d), but the verified snapshot publishes version %d: wait until the server has published its latest claimed, then run the command again",
			cur.Signed.Version, q.ClaimedVersion, d.Claimed.Signed.Version)
	}
	a, err1 := tufrepo.Canonical(cur.Signed)
	b, err2 := tufrepo.Canonical(d.Claimed.Signed)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		return nil, nil, api.Errorf(api.CodeVersionConflict, "the server's claimed version %d differs from the verified claimed version %d: refusing to build on it", cur.Signed.Version, d.Claimed.Signed.Version)
	}
	// Nodes still staged on the server would be overwritten by versions built on the
	// published ones.
	for _, n := range q.Nodes {
		if _, _, ok := tufrepo.ParseShardRole(n.Role); !ok {
			return nil, nil, api.Errorf(api.CodeMalformedJSON, "the queue lists %q as a claimed node", n.Role)
		}
		if e, ok := d.Snapshot.Signed.Meta[tufrepo.MetaName(n.Role)]; !ok || e.Version != n.Version {
			return nil, nil, api.Errorf(api.CodeVersionConflict, "the server's latest %s is version %d, which the verified snapshot does not publish: wait until the server has published it, then run the command again", n.Role, n.Version)
		}
	}
	claimedRole, claimedKeys, err := d.ClaimedDelegation()
	if err != nil {
		return nil, nil, err
	}
	setOf := func(cp api.ClaimProject) (MaintainerSet, error) {
		s := MaintainerSet{Keys: map[string]*metadata.Key{}, Threshold: cp.Threshold}
		for id, w := range cp.Keys {
			k, err := tufrepo.KeyFromAPI(w)
			if err != nil {
				return s, api.Wrap(api.CodeInvalidKey, err, "the queue gives project %s an invalid key %s: %v", cp.Name, id, err)
			}
			s.Keys[id] = k
		}
		if err := CheckMaintainerSet(cp.Name, s); err != nil {
			return s, fmt.Errorf("the queue gives project %s a delegation that is not allowed: %w", cp.Name, err)
		}
		return s, nil
	}

	plan := &ClaimPlan{CurrentVersion: cur.Signed.Version, NextVersion: cur.Signed.Version, Expires: now.UTC().Add(ClaimedExpiry).Truncate(time.Second),
		Move: []ClaimEntry{}, Waiting: []ClaimEntry{}, Changes: []ClaimChange{}, Kept: []string{}, Nodes: []ClaimNodePlan{}}
	// The verified claimed nodes seen so far, by prefix, and the projects to (re)delegate.
	seen := map[string]TreeNode{"": {Role: tufrepo.RoleClaimed, MD: d.Claimed}}
	newSets := map[string]MaintainerSet{}
	target := map[string]string{} // project → prefix of the claimed node that delegates it now, or would
	pathsOf := func(name string) ([]TreeNode, []TreeNode, error) {
		claimed, recent, err := r.loadedTreePaths(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		for _, n := range claimed {
			seen[n.Prefix] = n
		}
		target[name] = claimed[len(claimed)-1].Prefix
		return claimed, recent, nil
	}
	candidates := map[string]api.ClaimProject{}
	listed := map[string]bool{}
	for _, cp := range q.Projects {
		if err := tufrepo.ValidateProjectName(cp.Name); err != nil {
			return nil, nil, fmt.Errorf("the queue lists a project with a bad name: %w", err)
		}
		if listed[cp.Name] {
			return nil, nil, api.Errorf(api.CodeMalformedJSON, "the queue lists project %s twice", cp.Name)
		}
		listed[cp.Name] = true
		s, err := setOf(cp)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case !cp.Change && len(cp.Changes) > 0:
			return nil, nil, api.Errorf(api.CodeVersionConflict, "the queue carries %d maintainer change document(s) of %s but says no change of it is queued", len(cp.Changes), cp.Name)
		case cp.Claimed && !cp.Change:
			return nil, nil, api.Errorf(api.CodeVersionConflict, "the queue lists claimed project %s with nothing queued for it", cp.Name)
		case !cp.Claimed && cp.Change:
			return nil, nil, api.Errorf(api.CodeVersionConflict, "the queue says a maintainer change of %s is queued for the admins, but %s is not claimed", cp.Name, cp.Name)
		case cp.Claimed:
			claimed, _, err := pathsOf(cp.Name)
			if err != nil {
				return nil, nil, err
			}
			node := claimed[len(claimed)-1]
			tr, keys := node.Delegation(cp.Name)
			if tr == nil {
				return nil, nil, api.Errorf(api.CodeVersionConflict, "the server says %s is claimed, but the verified claimed tree (%s version %d) does not delegate to it", cp.Name, node.Role, node.MD.Signed.Version)
			}
			// Trust no key the queue names unless the maintainers signed it, document by
			// document, from the keys in the verified claimed.
			docs, err := VerifyQueuedChanges(cp.Name, delegatedSet(tr.KeyIDs, tr.Threshold, keys), cp.Changes, s, cp.DelegationVersion, now)
			if err != nil {
				return nil, nil, err
			}
			newSets[cp.Name] = s
			plan.Changes = append(plan.Changes, ClaimChange{MaintainerDiff: DiffMaintainers(cp.Name, cp.DelegationVersion, delegatedSet(tr.KeyIDs, tr.Threshold, keys), s), Documents: docs})
		default:
			candidates[cp.Name] = cp
		}
	}
	selected := map[string]bool{}
	for _, n := range o.Move {
		if _, ok := candidates[n]; !ok {
			claimed, _, err := pathsOf(n)
			if err == nil {
				if tr, _ := claimed[len(claimed)-1].Delegation(n); tr != nil {
					return nil, nil, api.Errorf(api.CodeBadRequest, "project %s is already claimed", n)
				}
			}
			return nil, nil, api.Errorf(api.CodeNotFound, "project %s is not waiting to be claimed: it is not a recently-claimed project with a published role (waiting: %s)", n, namesOr(slices.Sorted(maps.Keys(candidates))))
		}
		selected[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(candidates)) {
		cp := candidates[n]
		s, _ := setOf(cp)
		e := ClaimEntry{Name: n, Threshold: cp.Threshold, DelegationVersion: cp.DelegationVersion}
		for _, id := range s.KeyIDs() {
			e.Keys = append(e.Keys, ViewKey(s.Keys[id]))
		}
		if !o.All && !selected[n] {
			plan.Waiting = append(plan.Waiting, e)
			continue
		}
		claimed, recent, err := pathsOf(n)
		if err != nil {
			return nil, nil, err
		}
		if tr, _ := claimed[len(claimed)-1].Delegation(n); tr != nil {
			return nil, nil, api.Errorf(api.CodeVersionConflict, "the server offers %s to be claimed, but the verified claimed tree (%s) already delegates to it", n, claimed[len(claimed)-1].Role)
		}
		// What the admins cement offline must be what clients already verify for the
		// project, not a delegation the server offers only now.
		var rc *metadata.DelegatedRole
		var rcKeys map[string]*metadata.Key
		rcNode := "recently-claimed"
		if len(recent) > 0 {
			rcNode = recent[len(recent)-1].Role
			rc, rcKeys = recent[len(recent)-1].Delegation(n)
		}
		if rc == nil || !sameSet(delegatedSet(rc.KeyIDs, rc.Threshold, rcKeys), s) {
			what := "does not delegate to it"
			if rc != nil {
				what = fmt.Sprintf("delegates it to other keys or another threshold (%d of %d)", rc.Threshold, len(rc.KeyIDs))
			}
			return nil, nil, api.Errorf(api.CodeVersionConflict, "the server offers %s for claiming with %d of %d maintainer keys, but the verified recently-claimed tree (%s) %s: wait until the server has published the project's current maintainers, then run the command again",
				n, s.Threshold, len(s.Keys), rcNode, what)
		}
		plan.Move = append(plan.Move, e)
		newSets[n] = s
	}

	capacity := o.Capacity
	if capacity <= 0 {
		capacity = tufrepo.ShardCapacity
	}
	// The nodes to sign: where projects change, and (--reshard, --renew) the whole tree.
	dirty := map[string]bool{}
	for name := range newSets {
		dirty[target[name]] = true
	}
	if o.Reshard || o.Renew {
		all, err := r.loadedClaimedTree(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, n := range all {
			seen[n.Prefix] = n
			if o.Renew || n.MD.Signed.Delegations != nil && len(n.MD.Signed.Delegations.Roles) > capacity {
				dirty[n.Prefix] = true
			}
		}
	}
	// The layout as far as known: every node seen and every child they delegate to.
	var prefixes []string
	for p, n := range seen {
		prefixes = append(prefixes, p)
		prefixes = append(prefixes, n.Children()...)
	}
	layout, err := tufrepo.NewShardLayout(tufrepo.RoleClaimed, prefixes...)
	if err != nil {
		return nil, nil, api.Wrap(api.CodeMalformedMetadata, err, "the verified claimed tree has a shard no project name can start: %v", err)
	}
	// Each dirty node's projects: those it delegates now, with new delegations applied and
	// moved projects added.
	projects := map[string][]tufrepo.ProjectDelegation{}
	for prefix := range dirty {
		n := seen[prefix]
		dl := n.MD.Signed.Delegations
		if dl == nil {
			dl = &metadata.Delegations{}
		}
		for _, role := range dl.Roles {
			if tufrepo.IsShardRole(role.Name) {
				continue
			}
			s, changed := newSets[role.Name]
			if !changed {
				s = delegatedSet(role.KeyIDs, role.Threshold, dl.Keys)
				plan.Kept = append(plan.Kept, role.Name)
			}
			projects[prefix] = append(projects[prefix], tufrepo.ProjectDelegation{Name: role.Name, Keys: s.Keys, KeyIDs: s.KeyIDs(), Threshold: s.Threshold})
		}
	}
	for _, e := range plan.Move {
		s := newSets[e.Name]
		projects[target[e.Name]] = append(projects[target[e.Name]], tufrepo.ProjectDelegation{Name: e.Name, Keys: s.Keys, KeyIDs: s.KeyIDs(), Threshold: s.Threshold})
	}
	// Split what would be too big.
	isNew := map[string]bool{}
	for _, prefix := range slices.Sorted(maps.Keys(dirty)) {
		ps := projects[prefix]
		if len(layout.Children(prefix))+len(ps) <= capacity {
			continue
		}
		names := make([]string, len(ps))
		for i, p := range ps {
			names[i] = p.Name
		}
		for _, added := range layout.Split(prefix, names, capacity) {
			dirty[added], isNew[added] = true, true
		}
		var keep []tufrepo.ProjectDelegation
		for _, p := range ps {
			if node := layout.Route(p.Name); node != prefix {
				projects[node] = append(projects[node], p)
			} else {
				keep = append(keep, p)
			}
		}
		projects[prefix] = keep
	}
	keys := tufrepo.ShardKeys{Keys: map[string]*metadata.Key{}, KeyIDs: claimedRole.KeyIDs, Threshold: claimedRole.Threshold}
	for _, id := range claimedRole.KeyIDs {
		keys.Keys[id] = claimedKeys[id]
	}
	out := map[string][]byte{}
	for _, prefix := range slices.Sorted(maps.Keys(dirty)) {
		ps := projects[prefix]
		slices.SortFunc(ps, func(a, b tufrepo.ProjectDelegation) int { return strings.Compare(a.Name, b.Name) })
		node := tufrepo.ShardNode{Tree: tufrepo.RoleClaimed, Prefix: prefix, Children: layout.Children(prefix), Projects: ps}
		v := int64(1)
		if !isNew[prefix] {
			v = seen[prefix].MD.Signed.Version + 1
		}
		signed, err := tufrepo.BuildShardNode(v, plan.Expires, keys, node)
		if err != nil {
			return nil, nil, err
		}
		out[node.Role()] = signed
		plan.Nodes = append(plan.Nodes, ClaimNodePlan{Role: node.Role(), Version: v, New: isNew[prefix], Projects: len(ps), Shards: len(node.Children)})
		if prefix == "" {
			plan.NextVersion = v
		}
	}
	slices.Sort(plan.Kept)
	return plan, out, nil
}

func sameSet(a, b MaintainerSet) bool {
	if a.Threshold != b.Threshold || !slices.Equal(a.KeyIDs(), b.KeyIDs()) {
		return false
	}
	for id, k := range a.Keys {
		if b.Keys[id].Value.PublicKey != k.Value.PublicKey {
			return false
		}
	}
	return true
}

func namesOr(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
