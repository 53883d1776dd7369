package client

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func onlineOf(t *testing.T, k *clienttest.Key) *tufrepo.OnlineSigner {
	t.Helper()
	o, err := tufrepo.NewOnlineSigner(ctx(t), k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// topLevelWorld is a fake repository's verified top-level metadata.
func topLevelWorld(t *testing.T) (*clienttest.Server, *TopLevel) {
	t.Helper()
	srv := clienttest.New(t)
	tl, err := openRepo(t, srv, t.TempDir()).TopLevel(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if tl.Root.Signed.Version != 1 || tl.Targets.Signed.Version != 1 || tl.Snapshot == nil || tl.Timestamp == nil {
		t.Fatalf("TopLevel: %+v", tl)
	}
	return srv, tl
}

func wantCode(t *testing.T, what string, err error, code api.Code, mention string) {
	t.Helper()
	if err == nil || api.CodeOf(err) != code || !strings.Contains(err.Error(), mention) {
		t.Fatalf("%s: %v; want %s mentioning %q", what, err, code, mention)
	}
}

func TestRotateRootPlanNewKeysSignedByOldAndNew(t *testing.T) {
	srv, tl := topLevelWorld(t)
	now := time.Now()
	a, b, nt := clienttest.NewKey(t), clienttest.NewKey(t), clienttest.NewKey(t)
	plan, next, err := PlanRootRotation(tl.Root, tl.Targets, RootChange{
		RootKeys: []*metadata.Key{a.Public, b.Public, a.Public}, RootThreshold: 2,
		TargetsKeys: []*metadata.Key{nt.Public}, Expires: now.Add(365 * 24 * time.Hour),
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	oldRoot, oldTargets := srv.RoleKey(tufrepo.RoleRoot), srv.RoleKey(tufrepo.RoleTargets)
	switch {
	case plan.CurrentVersion != 1 || plan.NextVersion != 2 || next.Signed.Version != 2:
		t.Fatalf("versions: %+v", plan)
	case plan.Root.Before.Threshold != 1 || plan.Root.After.Threshold != 2 || len(plan.Root.Added) != 2 || len(plan.Root.Removed) != 1 || plan.Root.Removed[0].KeyID != oldRoot.ID:
		t.Fatalf("root change: %+v", plan.Root)
	case !plan.TargetsKeysChanged() || plan.Targets.Removed[0].KeyID != oldTargets.ID || plan.Targets.Added[0].KeyID != nt.ID || plan.Renewal():
		t.Fatalf("targets change: %+v", plan.Targets)
	case plan.Root.Added[0].Fingerprint == "" || !strings.HasPrefix(plan.Root.Added[0].Fingerprint, "SHA256:"):
		t.Fatalf("no fingerprint: %+v", plan.Root.Added)
	case len(plan.Warnings) == 0 || !strings.Contains(strings.Join(plan.Warnings, "\n"), "every root key is replaced"):
		t.Fatalf("warnings: %v", plan.Warnings)
	}
	// Timestamp and snapshot stay with the online keys.
	for _, role := range []string{tufrepo.RoleTimestamp, tufrepo.RoleSnapshot} {
		if ids := next.Signed.Roles[role].KeyIDs; len(ids) != 1 || ids[0] != srv.RoleKey(role).ID {
			t.Fatalf("%s keys changed: %v", role, ids)
		}
	}
	if _, ok := next.Signed.Keys[oldRoot.ID]; ok {
		t.Fatal("the retired root key is still listed")
	}

	tplan, nextTargets, err := PlanTargetsResign(tl.Targets, now.Add(200*24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if tplan.NextVersion != 2 || len(tplan.Delegations) != 2 || tplan.Delegations[0].Role != tufrepo.RoleClaimed || tplan.Delegations[0].Online || !tplan.Delegations[1].Online {
		t.Fatalf("targets plan: %+v", tplan)
	}

	sa, sb, snt, so := onlineOf(t, a), onlineOf(t, b), onlineOf(t, nt), onlineOf(t, oldRoot)
	rootRaw, err := SignTopLevel(ctx(t), next, so, sa, sb, sa)
	if err != nil {
		t.Fatal(err)
	}
	if md, _ := metadata.Root().FromBytes(rootRaw); len(md.Signatures) != 3 {
		t.Fatalf("SignTopLevel signed %d times, want each key once", len(md.Signatures))
	}
	targetsRaw, err := SignTopLevel(ctx(t), nextTargets, snt)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckTopLevelUpdate(tl, api.TopLevelUpdate{Root: rootRaw, Targets: targetsRaw}, now); err != nil {
		t.Fatalf("a good rotation is refused: %v", err)
	}

	// What the server would refuse is refused here first.
	onlyNew, _ := SignTopLevel(ctx(t), next, sa, sb)
	onlyOld, _ := SignTopLevel(ctx(t), next, so, sa)
	oldTargetsKey, _ := SignTopLevel(ctx(t), nextTargets, onlineOf(t, oldTargets))
	for _, c := range []struct {
		name    string
		up      api.TopLevelUpdate
		code    api.Code
		mention string
	}{
		{"nothing", api.TopLevelUpdate{}, api.CodeBadRequest, "nothing to send"},
		{"root without its targets", api.TopLevelUpdate{Root: rootRaw}, api.CodeBadRequest, "changes the targets keys"},
		{"not signed by the old root keys", api.TopLevelUpdate{Root: onlyNew, Targets: targetsRaw}, api.CodeSignatureInvalid, "current root keys"},
		{"one of two new root keys", api.TopLevelUpdate{Root: onlyOld, Targets: targetsRaw}, api.CodeSignatureInvalid, "its own root keys"},
		{"targets by the retired targets key", api.TopLevelUpdate{Root: rootRaw, Targets: oldTargetsKey}, api.CodeSignatureInvalid, "targets version 2"},
	} {
		wantCode(t, c.name, CheckTopLevelUpdate(tl, c.up, now), c.code, c.mention)
	}
}

func TestRotateRootPlanRenewalAndRefusals(t *testing.T) {
	srv, tl := topLevelWorld(t)
	now := time.Now()
	year := now.Add(365 * 24 * time.Hour)
	plan, next, err := PlanRootRotation(tl.Root, tl.Targets, RootChange{Expires: year}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Renewal() || plan.TargetsKeysChanged() || next.Signed.Version != 2 || !next.Signed.Expires.Equal(year.UTC().Truncate(time.Second)) {
		t.Fatalf("renewal: %+v", plan)
	}
	raw, _ := SignTopLevel(ctx(t), next, onlineOf(t, srv.RoleKey(tufrepo.RoleRoot)))
	if err := CheckTopLevelUpdate(tl, api.TopLevelUpdate{Root: raw}, now); err != nil {
		t.Fatalf("renewal refused: %v", err)
	}

	a, b := clienttest.NewKey(t), clienttest.NewKey(t)
	for _, c := range []struct {
		name    string
		ch      RootChange
		code    api.Code
		mention string
	}{
		{"expires too soon", RootChange{Expires: now.Add(3 * 24 * time.Hour)}, api.CodeExpired, "less than 7 days"},
		{"expires too late", RootChange{Expires: now.Add(800 * 24 * time.Hour)}, api.CodeExpiryTooFar, "730 days"},
		{"threshold above the keys", RootChange{RootKeys: []*metadata.Key{a.Public, b.Public}, RootThreshold: 3, Expires: year}, api.CodeInvalidThreshold, "--threshold 3"},
		{"threshold on the kept key", RootChange{RootThreshold: 2, Expires: year}, api.CodeInvalidThreshold, "1 to 1"},
		{"no keys", RootChange{RootKeys: []*metadata.Key{}, Expires: year}, api.CodeInvalidThreshold, "at least one key"},
		{"the timestamp key as a root key", RootChange{RootKeys: []*metadata.Key{srv.RoleKey(tufrepo.RoleTimestamp).Public}, Expires: year}, api.CodeInvalidKey, "online timestamp key"},
		{"the recently-claimed key as a targets key", RootChange{TargetsKeys: []*metadata.Key{srv.RoleKey(tufrepo.RoleRecentlyClaimed).Public}, Expires: year}, api.CodeInvalidKey, "online recently-claimed key"},
		{"targets threshold", RootChange{TargetsKeys: []*metadata.Key{a.Public}, TargetsThreshold: 2, Expires: year}, api.CodeInvalidThreshold, "--targets-threshold 2"},
	} {
		_, _, err := PlanRootRotation(tl.Root, tl.Targets, c.ch, now)
		wantCode(t, c.name, err, c.code, c.mention)
	}

	// A threshold that no longer fits the new keys must be given explicitly.
	p2, n2, err := PlanRootRotation(tl.Root, tl.Targets, RootChange{RootKeys: []*metadata.Key{a.Public, b.Public}, RootThreshold: 2, Expires: year}, now)
	if err != nil {
		t.Fatal(err)
	}
	raw2, _ := n2.ToBytes(false)
	r2, _ := metadata.Root().FromBytes(raw2)
	_, _, err = PlanRootRotation(r2, tl.Targets, RootChange{RootKeys: []*metadata.Key{a.Public}, Expires: year}, now)
	wantCode(t, "threshold 2 kept for one key", err, api.CodeInvalidThreshold, "--threshold")
	// Keeping a key and the threshold: the kept key is listed as kept.
	p3, _, err := PlanRootRotation(r2, tl.Targets, RootChange{RootKeys: []*metadata.Key{a.Public, b.Public, clienttest.NewKey(t).Public}, Expires: year}, now)
	if err != nil || p3.Root.After.Threshold != 2 || len(p3.Root.Kept) != 2 || len(p3.Root.Added) != 1 || len(p3.Root.Removed) != 0 {
		t.Fatalf("adding a third key: %v %+v", err, p3)
	}
	if p2.Root.After.Threshold != 2 {
		t.Fatalf("%+v", p2.Root)
	}
}

func TestRotateTargetsResignKeepsDelegations(t *testing.T) {
	srv, tl := topLevelWorld(t)
	now := time.Now()
	plan, next, err := PlanTargetsResign(tl.Targets, now.Add(90*24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if plan.CurrentVersion != 1 || plan.NextVersion != 2 || next.Signed.Version != 2 {
		t.Fatalf("%+v", plan)
	}
	raw, _ := SignTopLevel(ctx(t), next, onlineOf(t, srv.RoleKey(tufrepo.RoleTargets)))
	if err := CheckTopLevelUpdate(tl, api.TopLevelUpdate{Targets: raw}, now); err != nil {
		t.Fatalf("re-signed targets refused: %v", err)
	}
	// A changed delegation is refused, as the server refuses it.
	next.Signed.Delegations.Roles[0].Threshold = 2
	bad, _ := SignTopLevel(ctx(t), next, onlineOf(t, srv.RoleKey(tufrepo.RoleTargets)))
	wantCode(t, "changed delegation", CheckTopLevelUpdate(tl, api.TopLevelUpdate{Targets: bad}, now), api.CodeBadRequest, "delegations")
	_, _, err = PlanTargetsResign(tl.Targets, now.Add(24*time.Hour), now)
	wantCode(t, "short expiry", err, api.CodeExpired, "less than 7 days")
	if _, _, err := PlanTargetsResign(nil, now, now); api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("no targets: %v", err)
	}
}

func TestRotateSubmitTopLevelAndStatusRequests(t *testing.T) {
	var got []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" "+r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", api.MediaJSON)
		switch r.URL.Path {
		case "/api/v1/admin/root":
			var up api.TopLevelUpdate
			if err := json.NewDecoder(r.Body).Decode(&up); err != nil || string(up.Root) != "R" || string(up.Targets) != "T" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(api.TopLevelResult{RootVersion: 2, TargetsVersion: 2, Status: api.StatusPublished, SnapshotVersion: 9})
		case "/api/v1/status":
			json.NewEncoder(w).Encode(api.RepositoryStatus{Roles: []api.RoleExpiry{{Role: "root", Version: 2, SignedBy: "offline"}}})
		}
	}))
	defer hs.Close()
	a, err := NewAPI(hs.URL, WithToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.SubmitTopLevel(ctx(t), api.TopLevelUpdate{Root: []byte("R"), Targets: []byte("T")}, 5*time.Second)
	if err != nil || res.RootVersion != 2 || res.SnapshotVersion != 9 {
		t.Fatalf("SubmitTopLevel: %v %+v", err, res)
	}
	st, err := a.Status(ctx(t))
	if err != nil || len(st.Roles) != 1 || st.Roles[0].Version != 2 {
		t.Fatalf("Status: %v %+v", err, st)
	}
	if len(got) != 2 || got[0] != "POST /api/v1/admin/root?wait=5s Bearer tok" || !strings.HasPrefix(got[1], "GET /api/v1/status?") {
		t.Fatalf("requests: %q", got)
	}
	noToken, _ := NewAPI(hs.URL)
	if _, err := noToken.SubmitTopLevel(ctx(t), api.TopLevelUpdate{Root: []byte("R")}, 0); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("without a token: %v", err)
	}
}

// TestRotateRootPlanOnlineKeys: --timestamp-key / --snapshot-key move an online role to one
// new key (threshold 1); the old key leaves root; the local check takes the new key to be
// one of the server's standby keys, so that it too may not sign root or targets.
func TestRotateRootPlanOnlineKeys(t *testing.T) {
	srv, tl := topLevelWorld(t)
	now := time.Now()
	year := now.Add(365 * 24 * time.Hour)
	oldTS, oldSnap, oldRoot := srv.RoleKey(tufrepo.RoleTimestamp), srv.RoleKey(tufrepo.RoleSnapshot), srv.RoleKey(tufrepo.RoleRoot)
	ts2 := clienttest.NewKey(t)
	plan, next, err := PlanRootRotation(tl.Root, tl.Targets, RootChange{TimestampKey: ts2.Public, Expires: year}, now)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case plan.Renewal() || !plan.OnlineKeysChanged() || plan.TargetsKeysChanged() || plan.Root.Changed():
		t.Fatalf("plan: %+v", plan)
	case len(plan.Timestamp.Removed) != 1 || plan.Timestamp.Removed[0].KeyID != oldTS.ID || len(plan.Timestamp.Added) != 1 || plan.Timestamp.Added[0].KeyID != ts2.ID || plan.Timestamp.After.Threshold != 1:
		t.Fatalf("timestamp change: %+v", plan.Timestamp)
	case !strings.HasPrefix(plan.Timestamp.Added[0].Fingerprint, "SHA256:") || !strings.HasPrefix(plan.Timestamp.Removed[0].Fingerprint, "SHA256:"):
		t.Fatalf("no fingerprints: %+v", plan.Timestamp)
	case plan.Snapshot.Changed() || len(plan.Snapshot.Kept) != 1 || plan.Snapshot.Kept[0].KeyID != oldSnap.ID:
		t.Fatalf("snapshot change: %+v", plan.Snapshot)
	}
	if r := next.Signed.Roles[tufrepo.RoleTimestamp]; r.Threshold != 1 || len(r.KeyIDs) != 1 || r.KeyIDs[0] != ts2.ID {
		t.Fatalf("next timestamp role: %+v", r)
	}
	if _, ok := next.Signed.Keys[oldTS.ID]; ok {
		t.Fatal("the retired timestamp key is still listed")
	}
	raw, _ := SignTopLevel(ctx(t), next, onlineOf(t, oldRoot))
	if err := CheckTopLevelUpdate(tl, api.TopLevelUpdate{Root: raw}, now); err != nil {
		t.Fatalf("a root moving timestamp is refused: %v", err)
	}

	// Both online roles at once, each to its own key; the old ones leave root.
	snap2 := clienttest.NewKey(t)
	p2, n2, err := PlanRootRotation(tl.Root, tl.Targets, RootChange{TimestampKey: ts2.Public, SnapshotKey: snap2.Public, Expires: year}, now)
	if err != nil || !p2.Snapshot.Changed() || p2.Snapshot.After.KeyIDs()[0] != snap2.ID || len(p2.Warnings) != 1 {
		t.Fatalf("both online keys: %v %+v", err, p2)
	}
	if _, ok := n2.Signed.Keys[oldSnap.ID]; ok {
		t.Fatal("the retired snapshot key is still listed")
	}
	// One key for both is allowed (the server accepts it), with a warning.
	p3, _, err := PlanRootRotation(tl.Root, tl.Targets, RootChange{TimestampKey: ts2.Public, SnapshotKey: ts2.Public, Expires: year}, now)
	if err != nil || !strings.Contains(strings.Join(p3.Warnings, "\n"), "share one key") {
		t.Fatalf("one key for both: %v %+v", err, p3)
	}
	// The current key is no change.
	p4, _, err := PlanRootRotation(tl.Root, tl.Targets, RootChange{TimestampKey: oldTS.Public, Expires: year}, now)
	if err != nil || !p4.Renewal() {
		t.Fatalf("the current timestamp key: %v %+v", err, p4)
	}

	// What the server refuses, refused here first.
	bad := *ts2.Public
	bad.Value.PublicKey = "zz"
	claimed := srv.RoleKey(tufrepo.RoleClaimed)
	newRoot := clienttest.NewKey(t)
	for _, c := range []struct {
		name    string
		ch      RootChange
		code    api.Code
		mention string
	}{
		{"an invalid key", RootChange{TimestampKey: &bad, Expires: year}, api.CodeInvalidKey, "timestamp key"},
		{"the current root key for timestamp", RootChange{TimestampKey: oldRoot.Public, Expires: year}, api.CodeInvalidKey, "current root key"},
		{"the current targets key for snapshot", RootChange{SnapshotKey: srv.RoleKey(tufrepo.RoleTargets).Public, Expires: year}, api.CodeInvalidKey, "current targets key"},
		{"the claimed key for timestamp", RootChange{TimestampKey: claimed.Public, Expires: year}, api.CodeInvalidKey, "current claimed key"},
		{"the snapshot key for timestamp", RootChange{TimestampKey: oldSnap.Public, Expires: year}, api.CodeInvalidKey, "current snapshot key"},
		{"the recently-claimed key for snapshot", RootChange{SnapshotKey: srv.RoleKey(tufrepo.RoleRecentlyClaimed).Public, Expires: year}, api.CodeInvalidKey, "current recently-claimed key"},
		{"the new timestamp key as a new root key", RootChange{TimestampKey: ts2.Public, RootKeys: []*metadata.Key{ts2.Public, newRoot.Public}, Expires: year}, api.CodeInvalidKey, "online timestamp key"},
		{"the new snapshot key as a new targets key", RootChange{SnapshotKey: snap2.Public, TargetsKeys: []*metadata.Key{snap2.Public}, Expires: year}, api.CodeInvalidKey, "online snapshot key"},
	} {
		_, _, err := PlanRootRotation(tl.Root, tl.Targets, c.ch, now)
		wantCode(t, c.name, err, c.code, c.mention)
	}

	// A hand-made root that gives targets to the new timestamp key is refused by the local
	// check as by the server (the new key is one the server holds).
	_, handNext, err := PlanRootRotation(tl.Root, tl.Targets, RootChange{TimestampKey: ts2.Public, Expires: year}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := handNext.Signed.AddKey(ts2.Public, tufrepo.RoleTargets); err != nil {
		t.Fatal(err)
	}
	handRaw, _ := SignTopLevel(ctx(t), handNext, onlineOf(t, oldRoot))
	wantCode(t, "targets given to the new timestamp key", CheckTopLevelUpdate(tl, api.TopLevelUpdate{Root: handRaw}, now), api.CodeInvalidKey, "online keys")
	// A root giving timestamp threshold 2 is refused: the server signs with one key.
	handNext.Signed.Roles[tufrepo.RoleTargets].KeyIDs = []string{srv.RoleKey(tufrepo.RoleTargets).ID}
	handNext.Signed.AddKey(oldTS.Public, tufrepo.RoleTimestamp)
	handNext.Signed.Roles[tufrepo.RoleTimestamp].Threshold = 2
	handRaw, _ = SignTopLevel(ctx(t), handNext, onlineOf(t, oldRoot))
	wantCode(t, "timestamp threshold 2", CheckTopLevelUpdate(tl, api.TopLevelUpdate{Root: handRaw}, now), api.CodeInvalidThreshold, "threshold 1")
}
