package client

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// claimWorld is a fake repository with one claimed project ("old", key k1) and two
// recently-claimed ones ("new1" key k2, "new2" key k3), and the honest queue for it.
type claimWorld struct {
	srv        *clienttest.Server
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
	d, err := openRepo(t, w.srv, t.TempDir()).Delegators(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d.Claimed == nil || d.RecentlyClaimed == nil || d.Targets == nil {
		t.Fatalf("delegators not loaded: %+v", d)
	}
	w.d = d
	v := d.Claimed.Signed.Version
	w.queue = api.ClaimQueue{ClaimedVersion: v, Claimed: w.srv.File(tufrepo.VersionedName(tufrepo.RoleClaimed, v)), Projects: []api.ClaimProject{
		claimProject("old", 1, true, w.k1), claimProject("new1", 1, false, w.k2), claimProject("new2", 1, false, w.k3),
	}}
	return w
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
	q := w.queue
	q.Projects = slices.Clone(w.queue.Projects)
	q.Projects[0] = claimProject("old", 2, true, w.k1, w.k3)
	q.Projects[0].Change, q.Projects[0].DelegationVersion = true, 2
	now := time.Now()
	plan, next, err := PlanClaim(w.d, q, []string{"new1"}, false, now)
	if err != nil {
		t.Fatal(err)
	}
	if plan.NextVersion != w.d.Claimed.Signed.Version+1 || len(plan.Move) != 1 || plan.Move[0].Name != "new1" ||
		len(plan.Waiting) != 1 || plan.Waiting[0].Name != "new2" || len(plan.Changes) != 1 || len(plan.Kept) != 0 || plan.Empty() {
		t.Fatalf("plan: %+v", plan)
	}
	if c := plan.Changes[0]; c.Project != "old" || len(c.Added) != 1 || c.Added[0].KeyID != w.k3.ID || c.ThresholdBefore != 1 || c.ThresholdAfter != 2 {
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
	signed, err := tufrepo.Canonical(next.Signed)
	if err != nil {
		t.Fatal(err)
	}
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
	acc, err := tufrepo.ValidateClaimed(raw, tufrepo.ClaimState{Targets: targetsRaw, CurrentVersion: w.d.Claimed.Signed.Version,
		Claimed: map[string]tufrepo.ProjectDelegation{"old": oldD}, Candidates: map[string]tufrepo.ProjectDelegation{"new1": n1D, "new2": n2D}}, now)
	if err != nil || !slices.Equal(acc.Moved, []string{"new1"}) {
		t.Fatalf("server validation: %v %+v", err, acc)
	}

	// --all moves both; nothing selected and nothing queued is empty.
	plan, _, err = PlanClaim(w.d, q, nil, true, now)
	if err != nil || len(plan.Move) != 2 {
		t.Fatalf("all: %v %+v", err, plan)
	}
	plan, next, err = PlanClaim(w.d, w.queue, nil, false, now)
	if err != nil || !plan.Empty() || !slices.Equal(plan.Kept, []string{"old"}) || len(plan.Waiting) != 2 || roleNamed(next, "old") == nil {
		t.Fatalf("nothing to do: %v %+v", err, plan)
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
		{"claimed keys changed without a change", func(q *api.ClaimQueue) {
			q.Projects[0] = claimProject("old", 1, true, mallory)
		}, nil, api.CodeVersionConflict, "differ from the verified claimed"},
		{"claimed project unknown to claimed", func(q *api.ClaimQueue) { q.Projects[1].Claimed = true }, nil, api.CodeVersionConflict, "does not delegate to it"},
		{"offered but already claimed", func(q *api.ClaimQueue) { q.Projects[0].Claimed = false }, nil, api.CodeVersionConflict, "already delegates to it"},
		{"moved with other keys than recently-claimed", func(q *api.ClaimQueue) {
			q.Projects[1] = claimProject("new1", 1, false, mallory)
		}, []string{"new1"}, api.CodeVersionConflict, "verified recently-claimed"},
		{"unknown project", nil, []string{"nosuch"}, api.CodeNotFound, "not waiting to be claimed"},
		{"already claimed", nil, []string{"old"}, api.CodeBadRequest, "already claimed"},
		{"listed twice", func(q *api.ClaimQueue) { q.Projects = append(q.Projects, q.Projects[1]) }, nil, api.CodeMalformedJSON, "twice"},
		{"threshold above keys", func(q *api.ClaimQueue) { q.Projects[2].Threshold = 2 }, nil, api.CodeInvalidThreshold, "not possible"},
	}
	for _, tc := range tests {
		q := w.queue
		q.Projects = slices.Clone(w.queue.Projects)
		q.Claimed = slices.Clone(w.queue.Claimed)
		if tc.edit != nil {
			tc.edit(&q)
		}
		_, _, err := PlanClaim(w.d, q, tc.move, false, time.Now())
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
