package client

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// claimWorld is a fake repository with one claimed project ("old", key k1) and two
// recently-claimed ones ("new1" key k2, "new2" key k3), and the honest queue for it.
type claimWorld struct {
	srv        *clienttest.Server
	r          *Repo
	d          *Delegators
	k1, k2, k3 *clienttest.Key
	queue      api.ClaimQueue
}

func newClaimWorld(t *testing.T) *claimWorld {
	t.Helper()
	w := &claimWorld{srv: clienttest.New(t), k1: clienttest.NewKey(t), k2: clienttest.NewKey(t), k3: clienttest.NewKey(t)}
	for _, p := range []struct {
		name    string
		key     *clienttest.Key
		claimed bool
	}{{"old", w.k1, true}, {"new1", w.k2, false}, {"new2", w.k3, false}} {
		raw, err := SignRole(NewProjectRole(time.Now()), p.key.Signer)
		if err != nil {
			t.Fatal(err)
		}
		w.srv.AddProject(p.name, []*metadata.Key{p.key.Public}, 1, p.claimed, raw)
	}
	w.r = openRepo(t, w.srv, t.TempDir())
	d, err := w.r.Delegators(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d.Claimed == nil || d.RecentlyClaimed == nil || d.Targets == nil {
		t.Fatalf("delegators not loaded: %+v", d)
	}
	w.d = d
	v := d.Claimed.Signed.Version
	w.queue = api.ClaimQueue{ClaimedVersion: v, Claimed: w.srv.File(tufrepo.VersionedName(tufrepo.RoleClaimed, v)), Projects: []api.ClaimProject{
		claimProject("new1", 1, false, w.k2), claimProject("new2", 1, false, w.k3),
	}, Nodes: []api.ClaimNode{{Role: tufrepo.RoleClaimed, Version: v}}}
	return w
}

// plan runs PlanClaim on w's verified metadata (a fresh refresh, as the CLI does).
func (w *claimWorld) plan(t *testing.T, q api.ClaimQueue, o ClaimOptions, now time.Time) (*ClaimPlan, map[string][]byte, error) {
	t.Helper()
	d, err := w.r.Delegators(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return PlanClaim(ctx(t), w.r, d, q, o, now)
}

// node parses the canonical signed bytes of a node PlanClaim wrote.
func node(t *testing.T, nodes map[string][]byte, role string) *metadata.Metadata[metadata.TargetsType] {
	t.Helper()
	signed, ok := nodes[role]
	if !ok {
		t.Fatalf("the plan does not sign %s (it signs %v)", role, slices.Sorted(maps.Keys(nodes)))
	}
	md, err := metadata.Targets().FromBytes(tufrepo.Envelope(signed, nil))
	if err != nil {
		t.Fatal(err)
	}
	return md
}

func claimProject(name string, threshold int, claimed bool, keys ...*clienttest.Key) api.ClaimProject {
	cp := api.ClaimProject{Name: name, Keys: map[string]api.Key{}, Threshold: threshold, DelegationVersion: 1, Claimed: claimed}
	for _, k := range keys {
		cp.Keys[k.ID] = tufrepo.KeyToAPI(k.Public)
	}
	return cp
}

func roleNamed(md *metadata.Metadata[metadata.TargetsType], name string) *metadata.DelegatedRole {
	for i, r := range md.Signed.Delegations.Roles {
		if r.Name == name {
			return &md.Signed.Delegations.Roles[i]
		}
	}
	return nil
}

func TestPlanClaimMovesSelectedAndAppliesQueuedChanges(t *testing.T) {
	w := newClaimWorld(t)
	now := time.Now()
	q := queuedOld(w, setOf(2, w.k1, w.k3), 2, signedChange(t, "old", 2, setOf(2, w.k1, w.k3), now.Add(MaintainerChangeExpiry), w.k1))
	plan, nodes, err := w.plan(t, q, ClaimOptions{Move: []string{"new1"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	next := node(t, nodes, tufrepo.RoleClaimed)
	if len(nodes) != 1 || len(plan.Nodes) != 1 || plan.Nodes[0].Role != tufrepo.RoleClaimed || plan.Nodes[0].Projects != 2 {
		t.Fatalf("nodes: %+v", plan.Nodes)
	}
	if plan.NextVersion != w.d.Claimed.Signed.Version+1 || len(plan.Move) != 1 || plan.Move[0].Name != "new1" ||
		len(plan.Waiting) != 1 || plan.Waiting[0].Name != "new2" || len(plan.Changes) != 1 || len(plan.Kept) != 0 || plan.Empty() {
		t.Fatalf("plan: %+v", plan)
	}
	if c := plan.Changes[0]; c.Project != "old" || len(c.Added) != 1 || c.Added[0].KeyID != w.k3.ID || c.ThresholdBefore != 1 || c.ThresholdAfter != 2 ||
		len(c.Documents) != 1 || len(c.Documents[0].SignedBy) != 1 || c.Documents[0].SignedBy[0].KeyID != w.k1.ID || c.Documents[0].SignedBy[0].Fingerprint == "" {
		t.Fatalf("change: %+v", c)
	}
	if next.Signed.Version != plan.NextVersion || next.Signed.Expires.Before(now.Add(300*24*time.Hour)) || len(next.Signed.Targets) != 0 {
		t.Fatalf("next: version %d expires %s", next.Signed.Version, next.Signed.Expires)
	}
	old, n1 := roleNamed(next, "old"), roleNamed(next, "new1")
	if old == nil || old.Threshold != 2 || len(old.KeyIDs) != 2 || n1 == nil || !n1.Terminating || !slices.Equal(n1.Paths, []string{"new1/*/*"}) || roleNamed(next, "new2") != nil {
		t.Fatalf("delegations: %+v", next.Signed.Delegations.Roles)
	}
	if len(next.Signed.Delegations.Keys) != 3 {
		t.Fatalf("keys: %d", len(next.Signed.Delegations.Keys))
	}

	// Signed by the claimed key, it verifies against targets, and the server's own
	// validation accepts it.
	signed := nodes[tufrepo.RoleClaimed]
	s, err := tufrepo.NewOnlineSigner(context.Background(), w.srv.RoleKey(tufrepo.RoleClaimed).Signer)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := tufrepo.SignEnvelope(context.Background(), signed, s)
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.Targets().FromBytes(raw)
	if err != nil || w.d.Targets.VerifyDelegate(tufrepo.RoleClaimed, md) != nil {
		t.Fatalf("the signed claimed does not verify: %v", err)
	}
	targetsRaw, _ := w.d.Targets.ToBytes(false)
	set := func(k ...*clienttest.Key) tufrepo.ProjectDelegation { return setOf(1, k...).Delegation("") }
	oldD, n1D, n2D := setOf(2, w.k1, w.k3).Delegation("old"), set(w.k2), set(w.k3)
	n1D.Name, n2D.Name = "new1", "new2"
	layout, _ := tufrepo.NewShardLayout(tufrepo.RoleClaimed)
	acc, err := tufrepo.ValidateClaimed(map[string][]byte{tufrepo.RoleClaimed: raw}, tufrepo.ClaimState{Targets: targetsRaw, Layout: layout,
		Latest:     map[string]int64{tufrepo.RoleClaimed: w.d.Claimed.Signed.Version},
		Claimed:    map[string]tufrepo.ClaimedProject{"old": {Node: tufrepo.RoleClaimed, Want: oldD}},
		Candidates: map[string]tufrepo.ProjectDelegation{"new1": n1D, "new2": n2D}}, now)
	if err != nil || !slices.Equal(acc.Moved, []string{"new1"}) {
		t.Fatalf("server validation: %v %+v", err, acc)
	}

	// --all moves both; nothing selected and nothing queued is empty; --renew re-signs.
	plan, _, err = w.plan(t, q, ClaimOptions{All: true}, now)
	if err != nil || len(plan.Move) != 2 {
		t.Fatalf("all: %v %+v", err, plan)
	}
	plan, nodes, err = w.plan(t, w.queue, ClaimOptions{}, now)
	if err != nil || !plan.Empty() || len(nodes) != 0 || len(plan.Waiting) != 2 {
		t.Fatalf("nothing to do: %v %+v", err, plan)
	}
	plan, nodes, err = w.plan(t, w.queue, ClaimOptions{Renew: true}, now)
	if err != nil || plan.Empty() || !slices.Equal(plan.Kept, []string{"old"}) || roleNamed(node(t, nodes, tufrepo.RoleClaimed), "old") == nil {
		t.Fatalf("renew: %v %+v", err, plan)
	}
}

func TestPlanClaimRefusesAQueueThatDisagreesWithVerifiedMetadata(t *testing.T) {
	w := newClaimWorld(t)
	mallory := clienttest.NewKey(t)
	v := w.d.Claimed.Signed.Version
	tests := []struct {
		name string
		edit func(q *api.ClaimQueue)
		move []string
		code api.Code
		want string
	}{
		{"older claimed", func(q *api.ClaimQueue) {
			q.ClaimedVersion, q.Claimed = v-1, w.srv.File(tufrepo.VersionedName(tufrepo.RoleClaimed, v-1))
		}, nil, api.CodeVersionConflict, "verified snapshot publishes version"},
		{"claimed not signed by the claimed keys", func(q *api.ClaimQueue) {
			q.Claimed = []byte(strings.Replace(string(q.Claimed), `"version":`, `"version": `, 1))
			md, _ := metadata.Targets().FromBytes(q.Claimed)
			md.Signed.Expires = md.Signed.Expires.Add(time.Hour)
			q.Claimed, _ = md.ToBytes(false)
		}, nil, api.CodeSignatureInvalid, "not signed by the claimed keys"},
		{"not parsable", func(q *api.ClaimQueue) { q.Claimed = []byte("{") }, nil, api.CodeMalformedMetadata, "does not parse"},
		{"a claimed project with nothing queued", func(q *api.ClaimQueue) {
			q.Projects = append(q.Projects, claimProject("old", 1, true, mallory))
		}, nil, api.CodeVersionConflict, "with nothing queued for it"},
		{"claimed project unknown to claimed", func(q *api.ClaimQueue) {
			q.Projects[0].Claimed, q.Projects[0].Change = true, true
			q.Projects[0].Changes = [][]byte{signedChange(t, "new1", 2, setOf(1, w.k2), time.Now().Add(time.Hour), w.k2)}
		}, nil, api.CodeVersionConflict, "does not delegate to it"},
		{"offered but already claimed", func(q *api.ClaimQueue) {
			q.Projects = append(q.Projects, claimProject("old", 1, false, w.k1))
		}, []string{"old"}, api.CodeVersionConflict, "already delegates to it"},
		{"moved with other keys than recently-claimed", func(q *api.ClaimQueue) {
			q.Projects[0] = claimProject("new1", 1, false, mallory)
		}, []string{"new1"}, api.CodeVersionConflict, "verified recently-claimed"},
		{"a claimed node the snapshot does not publish", func(q *api.ClaimQueue) { q.Nodes[0].Version++ }, nil, api.CodeVersionConflict, "does not publish"},
		{"unknown project", nil, []string{"nosuch"}, api.CodeNotFound, "not waiting to be claimed"},
		{"already claimed", nil, []string{"old"}, api.CodeBadRequest, "already claimed"},
		{"listed twice", func(q *api.ClaimQueue) { q.Projects = append(q.Projects, q.Projects[0]) }, nil, api.CodeMalformedJSON, "twice"},
		{"threshold above keys", func(q *api.ClaimQueue) { q.Projects[1].Threshold = 2 }, nil, api.CodeInvalidThreshold, "not possible"},
	}
	for _, tc := range tests {
		q := w.queue
		q.Projects = slices.Clone(w.queue.Projects)
		q.Nodes = slices.Clone(w.queue.Nodes)
		q.Claimed = slices.Clone(w.queue.Claimed)
		if tc.edit != nil {
			tc.edit(&q)
		}
		_, _, err := w.plan(t, q, ClaimOptions{Move: tc.move}, time.Now())
		var ae *api.Error
		if !asAPIError(err, &ae) || ae.Code != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func asAPIError(err error, target **api.Error) bool {
	for err != nil {
		if ae, ok := err.(*api.Error); ok {
			*target = ae
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func TestClaimedDelegation(t *testing.T) {
	w := newClaimWorld(t)
	role, keys, err := w.d.ClaimedDelegation()
	if err != nil || role.Threshold != 1 || len(role.KeyIDs) != 1 || keys[role.KeyIDs[0]] == nil || role.KeyIDs[0] != w.srv.RoleKey(tufrepo.RoleClaimed).ID {
		t.Fatalf("%v %+v", err, role)
	}
	if _, _, err := (&Delegators{}).ClaimedDelegation(); err == nil {
		t.Fatal("no targets: no error")
	}
}

// signedChange is a maintainer change document of project giving it set as version,
// signed by signers.
func signedChange(t *testing.T, project string, version int64, set MaintainerSet, expires time.Time, signers ...*clienttest.Key) []byte {
	t.Helper()
	ss := make([]signature.Signer, len(signers))
	for i, k := range signers {
		ss[i] = k.Signer
	}
	raw, err := SignMaintainerChange(context.Background(), NewMaintainerChange(project, version, set, expires), ss...)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// queuedOld is w's queue with claimed project "old" (k1, threshold 1, delegation version
// 1 in the verified claimed) given final and the change documents docs.
func queuedOld(w *claimWorld, final MaintainerSet, version int64, docs ...[]byte) api.ClaimQueue {
	q := w.queue
	cp := api.ClaimProject{Name: "old", Keys: map[string]api.Key{}, Threshold: final.Threshold, DelegationVersion: version, Claimed: true, Change: true, Changes: docs}
	for id, k := range final.Keys {
		cp.Keys[id] = tufrepo.KeyToAPI(k)
	}
	q.Projects = append([]api.ClaimProject{cp}, w.queue.Projects...)
	return q
}

func TestPlanClaimVerifiesAChainOfQueuedChanges(t *testing.T) {
	w := newClaimWorld(t)
	k4 := clienttest.NewKey(t)
	now := time.Now()
	exp := now.Add(MaintainerChangeExpiry)
	// Version 2: k1 alone (threshold 1) adds k3 and raises the threshold to 2. Version 3:
	// k1 and k3 (2 of 2) add k4.
	first := signedChange(t, "old", 2, setOf(2, w.k1, w.k3), exp, w.k1)
	second := signedChange(t, "old", 3, setOf(2, w.k1, w.k3, k4), exp, w.k3, w.k1)
	final := setOf(2, w.k1, w.k3, k4)
	plan, nodes, err := w.plan(t, queuedOld(w, final, 3, first, second), ClaimOptions{}, now)
	if err != nil {
		t.Fatal(err)
	}
	next := node(t, nodes, tufrepo.RoleClaimed)
	if len(plan.Changes) != 1 || plan.Empty() {
		t.Fatalf("plan: %+v", plan)
	}
	c := plan.Changes[0]
	if c.Version != 3 || len(c.Added) != 2 || c.ThresholdBefore != 1 || c.ThresholdAfter != 2 || len(c.Documents) != 2 {
		t.Fatalf("change: %+v", c)
	}
	d1, d2 := c.Documents[0], c.Documents[1]
	if d1.Change.Version != 2 || len(d1.Change.Added) != 1 || d1.Change.Added[0].KeyID != w.k3.ID || d1.Threshold != 1 || d1.KeysBefore != 1 || len(d1.SignedBy) != 1 || d1.Expired {
		t.Fatalf("first document: %+v", d1)
	}
	if d2.Change.Version != 3 || len(d2.Change.Added) != 1 || d2.Change.Added[0].KeyID != k4.ID || d2.Threshold != 2 || d2.KeysBefore != 2 || len(d2.SignedBy) != 2 {
		t.Fatalf("second document: %+v", d2)
	}
	if r := roleNamed(next, "old"); r == nil || r.Threshold != 2 || !slices.Equal(r.KeyIDs, final.KeyIDs()) {
		t.Fatalf("old in the next claimed: %+v", r)
	}

	// A document that expired while it waited for the admins still verifies, flagged.
	stale := signedChange(t, "old", 2, setOf(2, w.k1, w.k3), now.Add(-time.Hour), w.k1)
	plan, _, err = w.plan(t, queuedOld(w, setOf(2, w.k1, w.k3), 2, stale), ClaimOptions{}, now)
	if err != nil || len(plan.Changes) != 1 || !plan.Changes[0].Documents[0].Expired {
		t.Fatalf("expired while queued: %v %+v", err, plan)
	}
}

func TestPlanClaimRefusesQueuedKeysTheMaintainersDidNotSign(t *testing.T) {
	w := newClaimWorld(t)
	mallory, k4 := clienttest.NewKey(t), clienttest.NewKey(t)
	now := time.Now()
	exp := now.Add(MaintainerChangeExpiry)
	first := signedChange(t, "old", 2, setOf(2, w.k1, w.k3), exp, w.k1)
	tests := []struct {
		name string
		q    api.ClaimQueue
		want string
	}{
		{"no documents", queuedOld(w, setOf(1, mallory), 2), "sends no signed change document"},
		{"forged: signed by a key not in claimed", queuedOld(w, setOf(1, mallory), 2, signedChange(t, "old", 2, setOf(1, mallory), exp, mallory)),
			"queued maintainer change 2 of old (document 1 of 1) does not verify against the 1 maintainer key(s) before it"},
		{"queue keys differ from the signed change", queuedOld(w, setOf(1, w.k1, mallory), 2, signedChange(t, "old", 2, setOf(1, w.k1, w.k3), exp, w.k1)),
			"but the queue asks claimed to delegate it to 1 of 2"},
		{"a second change signed by fewer than the threshold before it", queuedOld(w, setOf(2, w.k1, w.k3, k4), 3, first, signedChange(t, "old", 3, setOf(2, w.k1, w.k3, k4), exp, w.k1)),
			"is signed by 1 of the 2 maintainer keys before it, but 2 must sign"},
		{"a second change signed by the key it adds", queuedOld(w, setOf(1, w.k1, w.k3, k4), 3, first, signedChange(t, "old", 3, setOf(1, w.k1, w.k3, k4), exp, k4)),
			"queued maintainer change 3 of old (document 2 of 2) does not verify"},
		{"a second change that skips a version", queuedOld(w, setOf(1, w.k1, w.k3, k4), 4, first, signedChange(t, "old", 4, setOf(1, w.k1, w.k3, k4), exp, w.k1, w.k3)),
			"does not verify"},
		{"replayed out of order", queuedOld(w, setOf(2, w.k1, w.k3), 3, signedChange(t, "old", 3, setOf(2, w.k1, w.k3, k4), exp, w.k3, w.k1), first),
			"does not verify"},
		{"a change that is not for this project", queuedOld(w, setOf(2, w.k1, w.k3), 2, signedChange(t, "new1", 2, setOf(2, w.k1, w.k3), exp, w.k1)),
			"does not verify"},
		{"garbage", queuedOld(w, setOf(2, w.k1, w.k3), 2, []byte("{}")), "does not parse"},
	}
	for _, tc := range tests {
		_, _, err := w.plan(t, tc.q, ClaimOptions{}, now)
		var ae *api.Error
		if !asAPIError(err, &ae) || ae.Code != api.CodeSignatureInvalid || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), "the server queued keys the maintainers did not sign") {
			t.Errorf("%s: the refusal does not say what the server did: %v", tc.name, err)
		}
	}
	// Documents without a queued change are refused too.
	q := w.queue
	q.Projects = slices.Clone(w.queue.Projects)
	q.Projects[0].Changes = [][]byte{first}
	if _, _, err := w.plan(t, q, ClaimOptions{}, now); err == nil || !strings.Contains(err.Error(), "says no change of it is queued") {
		t.Fatalf("documents without a change: %v", err)
	}
}
