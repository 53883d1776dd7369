package tufrepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

func TestCeremonyLayout(t *testing.T) {
	r := newTestRepo(t, t0.Add(250*time.Millisecond))
	if err := VerifyOffline(r.Off); err != nil {
		t.Fatalf("VerifyOffline: %v", err)
	}
	wantExpires := t0.Add(OfflineExpiry)

	root, err := metadata.Root().FromBytes(r.Off.Root)
	if err != nil {
		t.Fatal(err)
	}
	rs := root.Signed
	if !rs.ConsistentSnapshot {
		t.Error("root does not set consistent_snapshot")
	}
	if rs.Version != 1 || rs.SpecVersion != SpecVersion || !rs.Expires.Equal(wantExpires) {
		t.Errorf("root version %d spec %s expires %s; want 1, %s, %s", rs.Version, rs.SpecVersion, rs.Expires, SpecVersion, wantExpires)
	}
	wantRoles := map[string]struct {
		t    int
		keys []*OnlineSigner
	}{
		RoleRoot:      {2, r.Root},
		RoleTargets:   {1, r.Targets},
		RoleTimestamp: {1, []*OnlineSigner{r.Online.Timestamp}},
		RoleSnapshot:  {1, []*OnlineSigner{r.Online.Snapshot}},
	}
	if len(rs.Roles) != len(wantRoles) {
		t.Errorf("root has roles %v", slices.Collect(maps.Keys(rs.Roles)))
	}
	for name, w := range wantRoles {
		role := rs.Roles[name]
		if role == nil {
			t.Fatalf("root lacks role %s", name)
		}
		if role.Threshold != w.t {
			t.Errorf("root role %s threshold %d, want %d", name, role.Threshold, w.t)
		}
		var ids []string
		for _, s := range w.keys {
			ids = append(ids, s.KeyID)
			if rs.Keys[s.KeyID] == nil {
				t.Errorf("root lacks key %s of role %s", s.KeyID, name)
			}
		}
		if !sameSet(role.KeyIDs, ids) {
			t.Errorf("root role %s keys %v, want %v", name, role.KeyIDs, ids)
		}
	}
	if len(sigsOf(t, r.Off.Root)) != 3 {
		t.Errorf("root carries %d signatures, want one per root key", len(sigsOf(t, r.Off.Root)))
	}

	targets, err := metadata.Targets().FromBytes(r.Off.Targets)
	if err != nil {
		t.Fatal(err)
	}
	if targets.Signed.Version != 1 || !targets.Signed.Expires.Equal(wantExpires) || len(targets.Signed.Targets) != 0 {
		t.Errorf("targets: version %d expires %s, %d targets", targets.Signed.Version, targets.Signed.Expires, len(targets.Signed.Targets))
	}
	d := targets.Signed.Delegations
	if d == nil || len(d.Roles) != 2 {
		t.Fatalf("targets delegations: %+v", d)
	}
	if d.Roles[0].Name != RoleClaimed || d.Roles[1].Name != RoleRecentlyClaimed {
		t.Fatalf("targets delegates to %s then %s; want claimed then recently-claimed", d.Roles[0].Name, d.Roles[1].Name)
	}
	for _, role := range d.Roles {
		if role.Terminating {
			t.Errorf("delegation to %s is terminating; it must not be (recently-claimed is searched after claimed)", role.Name)
		}
		if !slices.Equal(role.Paths, []string{"*/*/*"}) || len(role.PathHashPrefixes) != 0 {
			t.Errorf("delegation to %s has paths %v", role.Name, role.Paths)
		}
		for _, id := range role.KeyIDs {
			if d.Keys[id] == nil {
				t.Errorf("delegation to %s names key %s that delegations.keys lacks", role.Name, id)
			}
		}
	}
	claimedIDs := []string{r.Claimed[0].KeyID, r.Claimed[1].KeyID}
	if !sameSet(d.Roles[0].KeyIDs, claimedIDs) || d.Roles[0].Threshold != 2 {
		t.Errorf("claimed delegation keys %v threshold %d; want %v, 2", d.Roles[0].KeyIDs, d.Roles[0].Threshold, claimedIDs)
	}
	if !slices.Equal(d.Roles[1].KeyIDs, []string{r.Online.RecentlyClaimed.KeyID}) || d.Roles[1].Threshold != 1 {
		t.Errorf("recently-claimed delegation keys %v threshold %d", d.Roles[1].KeyIDs, d.Roles[1].Threshold)
	}
	for _, p := range []string{"proj/1.0/f.tar.gz", "a/b/c"} {
		for _, role := range d.Roles {
			if ok, _ := role.IsDelegatedPath(p); !ok {
				t.Errorf("%s is not delegated %q", role.Name, p)
			}
		}
	}
	for _, p := range []string{"proj/f.tar.gz", "proj/1.0/x/f.tar.gz"} {
		if ok, _ := d.Roles[0].IsDelegatedPath(p); ok {
			t.Errorf("claimed is delegated %q, which is not a three-component path", p)
		}
	}

	claimed, err := metadata.Targets().FromBytes(r.Off.Claimed)
	if err != nil {
		t.Fatal(err)
	}
	if claimed.Signed.Version != 1 || claimed.Signed.Delegations == nil || len(claimed.Signed.Delegations.Roles) != 0 {
		t.Errorf("claimed: version %d delegations %+v", claimed.Signed.Version, claimed.Signed.Delegations)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// The root threshold is 2 of 3: two signatures suffice, one does not.
func TestVerifyOfflineRootThreshold(t *testing.T) {
	r := newTestRepo(t, t0)
	for _, tc := range []struct {
		signers []*OnlineSigner
		ok      bool
	}{
		{r.Root, true},
		{r.Root[1:], true},
		{[]*OnlineSigner{r.Root[0], r.Root[2]}, true},
		{r.Root[:1], false},
		{nil, false},
	} {
		off := *r.Off
		off.Root = resign(t, r.Off.Root, tc.signers...)
		err := VerifyOffline(&off)
		if tc.ok && err != nil {
			t.Errorf("%d root signatures: %v", len(tc.signers), err)
		}
		if !tc.ok {
			wantContains(t, err, "root is not signed by a threshold")
		}
	}
}

func TestVerifyOfflineWrongKeys(t *testing.T) {
	r := newTestRepo(t, t0)
	stranger := newTestSigners(t, 3, KeyEd25519)
	tests := []struct {
		name   string
		mutate func(*OfflineMetadata)
		want   string
	}{
		{"root signed by other keys", func(o *OfflineMetadata) { o.Root = resign(t, o.Root, stranger...) }, "root is not signed"},
		{"targets signed by a root key", func(o *OfflineMetadata) { o.Targets = resign(t, o.Targets, r.Root...) }, "targets is not signed"},
		{"targets signed by another key", func(o *OfflineMetadata) { o.Targets = resign(t, o.Targets, stranger[0]) }, "targets is not signed"},
		{"claimed signed by a targets key", func(o *OfflineMetadata) { o.Claimed = resign(t, o.Claimed, r.Targets...) }, "claimed is not signed"},
		{"claimed below threshold", func(o *OfflineMetadata) { o.Claimed = resign(t, o.Claimed, r.Claimed[0]) }, "claimed is not signed"},
		{"claimed signed by the recently-claimed key", func(o *OfflineMetadata) { o.Claimed = resign(t, o.Claimed, r.Online.RecentlyClaimed) }, "claimed is not signed"},
		{"root is targets", func(o *OfflineMetadata) { o.Root = o.Targets }, "root does not parse"},
		{"targets unparseable", func(o *OfflineMetadata) { o.Targets = []byte("{") }, "targets is not valid JSON"},
		{"claimed is root", func(o *OfflineMetadata) { o.Claimed = o.Root }, "claimed does not parse"},
		// The threshold is met, but one more signature verifies nothing.
		{"root with an extra stranger's signature", func(o *OfflineMetadata) { o.Root = resign(t, o.Root, append(slices.Clone(r.Root), stranger[0])...) }, "root carries a signature by key " + stranger[0].KeyID},
		{"targets with an extra root key's signature", func(o *OfflineMetadata) {
			o.Targets = resign(t, o.Targets, append(slices.Clone(r.Targets), r.Root[0])...)
		}, "targets carries a signature by key " + r.Root[0].KeyID},
		{"claimed with an extra targets key's signature", func(o *OfflineMetadata) {
			o.Claimed = resign(t, o.Claimed, append(slices.Clone(r.Claimed), r.Targets[0])...)
		}, "claimed carries a signature by key " + r.Targets[0].KeyID},
		{"root with a case variant of signed", func(o *OfflineMetadata) { o.Root = bytes.Replace(o.Root, []byte(`"signed":`), []byte(`"sIgned":`), 1) }, "only in case"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			off := *r.Off
			tc.mutate(&off)
			wantContains(t, VerifyOffline(&off), tc.want)
		})
	}
}

func TestCeremonyRefusesBadConfig(t *testing.T) {
	ks := newTestSigners(t, 3, KeyEd25519)
	online := newTestSigner(t, KeyEd25519)
	base := func() CeremonyConfig {
		return CeremonyConfig{
			RootSigners: ks, RootThreshold: 2, TargetsSigners: ks[:1], TargetsThreshold: 1, ClaimedSigners: ks[1:], ClaimedThreshold: 1,
			Timestamp: online.Key, Snapshot: online.Key, RecentlyClaimed: online.Key, Now: t0,
		}
	}
	tests := []struct {
		name   string
		mutate func(*CeremonyConfig)
		want   []string
	}{
		{"root threshold 0", func(c *CeremonyConfig) { c.RootThreshold = 0 }, []string{"root", "threshold 0"}},
		{"root threshold above keys", func(c *CeremonyConfig) { c.RootThreshold = 4 }, []string{"root", "threshold 4", "(3)"}},
		{"root negative threshold", func(c *CeremonyConfig) { c.RootThreshold = -1 }, []string{"root", "threshold -1"}},
		{"no root keys", func(c *CeremonyConfig) { c.RootSigners = nil }, []string{"root", "at least one key"}},
		{"targets threshold above keys", func(c *CeremonyConfig) { c.TargetsThreshold = 2 }, []string{"targets", "threshold 2"}},
		{"no targets keys", func(c *CeremonyConfig) { c.TargetsSigners = nil }, []string{"targets", "at least one key"}},
		{"claimed threshold 0", func(c *CeremonyConfig) { c.ClaimedThreshold = 0 }, []string{"claimed", "threshold 0"}},
		{"claimed threshold above keys", func(c *CeremonyConfig) { c.ClaimedThreshold = 3 }, []string{"claimed", "threshold 3"}},
		{"no timestamp key", func(c *CeremonyConfig) { c.Timestamp = nil }, []string{"timestamp"}},
		{"no snapshot key", func(c *CeremonyConfig) { c.Snapshot = nil }, []string{"snapshot"}},
		{"no recently-claimed key", func(c *CeremonyConfig) { c.RecentlyClaimed = nil }, []string{"recently-claimed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mutate(&c)
			off, err := Ceremony(context.Background(), c)
			if off != nil {
				t.Error("Ceremony returned metadata with an error")
			}
			wantContains(t, err, tc.want...)
		})
	}
	// The base config itself is accepted (the table tests one change at a time).
	if _, err := Ceremony(context.Background(), base()); err != nil {
		t.Fatalf("base config: %v", err)
	}
}

func TestCheckOnlineKeys(t *testing.T) {
	r := newTestRepo(t, t0)
	if err := CheckOnlineKeys(r.Off.Root, r.Off.Targets, r.Online); err != nil {
		t.Fatalf("right keys: %v", err)
	}
	wrong := newTestSigner(t, KeyEd25519)
	tests := []struct {
		name   string
		mutate func(*Signers)
		want   []string
	}{
		{"wrong timestamp key", func(s *Signers) { s.Timestamp = wrong }, []string{"timestamp key " + wrong.KeyID, "root version 1", r.Online.Timestamp.KeyID}},
		{"wrong snapshot key", func(s *Signers) { s.Snapshot = wrong }, []string{"snapshot key " + wrong.KeyID, r.Online.Snapshot.KeyID}},
		{"wrong recently-claimed key", func(s *Signers) { s.RecentlyClaimed = wrong }, []string{"recently-claimed key " + wrong.KeyID, "targets version 1", r.Online.RecentlyClaimed.KeyID}},
		{"timestamp and snapshot keys swapped", func(s *Signers) { s.Timestamp, s.Snapshot = s.Snapshot, s.Timestamp }, []string{"timestamp key " + r.Online.Snapshot.KeyID}},
		{"recently-claimed given the snapshot key", func(s *Signers) { s.RecentlyClaimed = s.Snapshot }, []string{"recently-claimed key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := r.Online
			tc.mutate(&s)
			wantContains(t, CheckOnlineKeys(r.Off.Root, r.Off.Targets, s), tc.want...)
		})
	}
	t.Run("targets without recently-claimed", func(t *testing.T) {
		md := metadata.Targets(t0.Add(OfflineExpiry))
		wantContains(t, CheckOnlineKeys(r.Off.Root, signRole(t, md, r.Targets...), r.Online), "does not delegate to recently-claimed")
	})
	t.Run("unparseable input", func(t *testing.T) {
		wantContains(t, CheckOnlineKeys([]byte("{"), r.Off.Targets, r.Online), "parsing root")
		wantContains(t, CheckOnlineKeys(r.Off.Root, r.Off.Root, r.Online), "parsing targets")
	})
}

func TestBuildDelegator(t *testing.T) {
	ctx := context.Background()
	rc := newTestSigner(t, KeyEd25519)
	m := newTestSigners(t, 4, KeyEd25519)
	mEC := newTestSigner(t, KeyECDSAP256)
	// Deliberately unsorted projects and key IDs.
	projects := []ProjectDelegation{
		delegationFor("zeta", 1, m[0]),
		delegationFor("alpha", 2, m[3], m[1], m[2]),
		delegationFor("alpha-b", 1, mEC),
		delegationFor("alpha.b", 1, m[0], mEC), // shares keys with others
		delegationFor("mid", 1, m[2]),
	}
	exp := t0.Add(RecentlyClaimedExpiry).Add(700 * time.Millisecond)
	signed, err := buildDelegator(4, exp, projects)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := Canonical(mustParseTargetsSigned(t, signed))
	if err != nil {
		t.Fatal(err)
	}
	if string(canon) != string(signed) {
		t.Fatal("BuildDelegator output is not canonical JSON")
	}
	raw, err := SignEnvelope(ctx, signed, rc)
	if err != nil {
		t.Fatal(err)
	}
	del, err := metadata.Targets().FromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	if del.Signed.Version != 4 || !del.Signed.Expires.Equal(exp.Truncate(time.Second)) || del.Signed.SpecVersion != SpecVersion {
		t.Errorf("delegator version %d expires %s spec %s", del.Signed.Version, del.Signed.Expires, del.Signed.SpecVersion)
	}
	roles := del.Signed.Delegations.Roles
	var names []string
	for _, r := range roles {
		names = append(names, r.Name)
	}
	if want := []string{"alpha", "alpha-b", "alpha.b", "mid", "zeta"}; !slices.Equal(names, want) {
		t.Fatalf("delegated roles %v, want sorted %v", names, want)
	}
	for _, r := range roles {
		if !r.Terminating {
			t.Errorf("delegation to %s is not terminating", r.Name)
		}
		if !slices.Equal(r.Paths, []string{r.Name + "/*/*"}) {
			t.Errorf("delegation to %s has paths %v", r.Name, r.Paths)
		}
		if !slices.IsSorted(r.KeyIDs) {
			t.Errorf("delegation to %s has unsorted key IDs %v", r.Name, r.KeyIDs)
		}
		for _, id := range r.KeyIDs {
			if del.Signed.Delegations.Keys[id] == nil {
				t.Errorf("delegation to %s names key %s that is not in delegations.keys", r.Name, id)
			}
		}
	}
	if roles[0].Threshold != 2 || len(roles[0].KeyIDs) != 3 {
		t.Errorf("alpha: threshold %d keys %v", roles[0].Threshold, roles[0].KeyIDs)
	}
	if len(del.Signed.Delegations.Keys) != 5 {
		t.Errorf("delegations.keys has %d keys, want the 5 distinct ones", len(del.Signed.Delegations.Keys))
	}
	// The input was not reordered in place.
	if projects[0].Name != "zeta" || projects[1].KeyIDs[0] != m[3].KeyID {
		t.Error("BuildDelegator modified its input")
	}

	// Path routing as a client sees it.
	for _, tc := range []struct {
		role, path string
		ok         bool
	}{
		{"alpha", "alpha/1.0/alpha-1.0.tar.gz", true},
		{"alpha", "alpha-b/1.0/f", false},
		{"alpha", "alpha/1.0/x/f", false},
		{"alpha", "alpha/f", false},
		{"alpha.b", "alpha.b/2/f", true},
		{"alpha.b", "alphaxb/2/f", false}, // '.' is not a glob character
		{"zeta", "zeta/1/f", true},
	} {
		i := slices.Index(names, tc.role)
		if ok, _ := roles[i].IsDelegatedPath(tc.path); ok != tc.ok {
			t.Errorf("%s delegated %q = %v, want %v", tc.role, tc.path, ok, tc.ok)
		}
	}

	// A project role signed by its maintainers verifies through the delegator, with go-tuf.
	proj := newProjectRole(1, t0.Add(ProjectRoleExpiry), map[string]*metadata.TargetFiles{"alpha/1.0/a.tar.gz": targetFile([]byte("a"))})
	for _, tc := range []struct {
		name    string
		role    string
		signers []*OnlineSigner
		ok      bool
	}{
		{"alpha 2 of 3", "alpha", []*OnlineSigner{m[1], m[3]}, true},
		{"alpha 1 of 3", "alpha", []*OnlineSigner{m[2]}, false},
		{"alpha by zeta's key", "alpha", []*OnlineSigner{m[0], m[1]}, false},
		{"alpha-b ecdsa", "alpha-b", []*OnlineSigner{mEC}, true},
		{"zeta", "zeta", []*OnlineSigner{m[0]}, true},
		{"mid by the online key", "mid", []*OnlineSigner{rc}, false},
	} {
		pm, err := metadata.Targets().FromBytes(signRole(t, proj, tc.signers...))
		if err != nil {
			t.Fatal(err)
		}
		err = del.VerifyDelegate(tc.role, pm)
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%s: verified", tc.name)
		}
	}

	// No projects: an empty but present delegations object.
	empty, err := buildDelegator(1, exp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(empty), `"delegations":{"keys":{},"roles":[]}`) {
		t.Errorf("empty delegator: %s", empty)
	}
}

func mustParseTargetsSigned(tb testing.TB, signed []byte) metadata.TargetsType {
	tb.Helper()
	md, err := metadata.Targets().FromBytes(Envelope(signed, nil))
	if err != nil {
		tb.Fatal(err)
	}
	return md.Signed
}

// newTrusted starts a go-tuf client-side trust chain at root, evaluated at now.
func newTrusted(tb testing.TB, root []byte, now time.Time) *trustedmetadata.TrustedMetadata {
	tb.Helper()
	tm, err := trustedmetadata.New(root)
	if err != nil {
		tb.Fatalf("trustedmetadata.New: %v", err)
	}
	tm.RefTime = now
	return tm
}

func TestInitialOnline(t *testing.T) {
	now := t0.Add(123456789 * time.Nanosecond)
	r := newTestRepo(t, now)

	for _, mv := range []struct {
		m    MetadataVersion
		role string
		life time.Duration
	}{{r.RC, RoleRecentlyClaimed, RecentlyClaimedExpiry}, {r.Snap, RoleSnapshot, SnapshotExpiry}, {r.TS, RoleTimestamp, TimestampExpiry}} {
		if mv.m.Role != mv.role || mv.m.Version != 1 {
			t.Errorf("%s: role %s version %d", mv.role, mv.m.Role, mv.m.Version)
		}
		if want := t0.Add(mv.life); !mv.m.Expires.Equal(want) {
			t.Errorf("%s expires %s, want %s", mv.role, mv.m.Expires, want)
		}
	}

	ts, err := metadata.Timestamp().FromBytes(r.TS.Raw)
	if err != nil {
		t.Fatal(err)
	}
	mf := ts.Signed.Meta["snapshot.json"]
	sum := sha256.Sum256(r.Snap.Raw)
	if mf == nil || mf.Version != 1 || mf.Length != int64(len(r.Snap.Raw)) || string(mf.Hashes["sha256"]) != string(sum[:]) || len(mf.Hashes) != 1 {
		t.Fatalf("timestamp meta %+v does not carry snapshot v1's length %d and sha256", mf, len(r.Snap.Raw))
	}
	if !ts.Signed.Expires.Equal(r.TS.Expires) {
		t.Errorf("stored timestamp expiry %s differs from the signed one %s", r.TS.Expires, ts.Signed.Expires)
	}

	_, snap, err := ParseSnapshot(r.Snap.Raw)
	if err != nil {
		t.Fatal(err)
	}
	for role, raw := range map[string][]byte{RoleTargets: r.Off.Targets, RoleClaimed: r.Off.Claimed, RoleRecentlyClaimed: r.RC.Raw} {
		e := snap.Signed.Meta[MetaName(role)]
		if e == nil || e.Version != 1 || e.Length != int64(len(raw)) {
			t.Errorf("snapshot meta for %s: %+v, want version 1 length %d", role, e, len(raw))
		}
	}
	if len(snap.Signed.Meta) != 3 {
		t.Errorf("snapshot lists %d roles, want 3", len(snap.Signed.Meta))
	}

	// The whole chain verifies as a go-tuf client would.
	tm := newTrusted(t, r.Off.Root, now.Add(time.Minute))
	if _, err := tm.UpdateTimestamp(r.TS.Raw); err != nil {
		t.Fatalf("UpdateTimestamp: %v", err)
	}
	if _, err := tm.UpdateSnapshot(r.Snap.Raw, false); err != nil {
		t.Fatalf("UpdateSnapshot: %v", err)
	}
	if _, err := tm.UpdateTargets(r.Off.Targets); err != nil {
		t.Fatalf("UpdateTargets: %v", err)
	}
	if _, err := tm.UpdateDelegatedTargets(r.Off.Claimed, RoleClaimed, RoleTargets); err != nil {
		t.Fatalf("UpdateDelegatedTargets(claimed): %v", err)
	}
	rc, err := tm.UpdateDelegatedTargets(r.RC.Raw, RoleRecentlyClaimed, RoleTargets)
	if err != nil {
		t.Fatalf("UpdateDelegatedTargets(recently-claimed): %v", err)
	}
	if rc.Signed.Delegations == nil || len(rc.Signed.Delegations.Roles) != 0 {
		t.Errorf("recently-claimed v1 delegations: %+v", rc.Signed.Delegations)
	}

	// And it is really checked: a snapshot one byte longer fails the timestamp's length.
	tm2 := newTrusted(t, r.Off.Root, now.Add(time.Minute))
	if _, err := tm2.UpdateTimestamp(r.TS.Raw); err != nil {
		t.Fatal(err)
	}
	if _, err := tm2.UpdateSnapshot(append(append([]byte{}, r.Snap.Raw...), ' '), false); err == nil {
		t.Fatal("go-tuf accepted a snapshot that does not match the timestamp")
	}
	// A day and a bit later the timestamp has expired.
	tm3 := newTrusted(t, r.Off.Root, now.Add(TimestampExpiry+time.Second))
	if _, err := tm3.UpdateTimestamp(r.TS.Raw); err == nil {
		t.Fatal("go-tuf accepted an expired timestamp")
	}
}

func TestCeremonySharedKeys(t *testing.T) {
	// One admin key may serve root, targets and claimed at once (small deployments).
	k := newTestSigner(t, KeyEd25519)
	on := newTestSigner(t, KeyEd25519)
	off, err := Ceremony(context.Background(), CeremonyConfig{
		RootSigners: []*OnlineSigner{k}, RootThreshold: 1, TargetsSigners: []*OnlineSigner{k}, TargetsThreshold: 1,
		ClaimedSigners: []*OnlineSigner{k}, ClaimedThreshold: 1, Timestamp: on.Key, Snapshot: on.Key, RecentlyClaimed: on.Key, Now: t0,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyOffline(off); err != nil {
		t.Fatal(err)
	}
	root, _ := metadata.Root().FromBytes(off.Root)
	if len(root.Signed.Keys) != 2 {
		t.Errorf("root lists %d keys, want 2 distinct: %v", len(root.Signed.Keys), fmt.Sprint(slices.Collect(maps.Keys(root.Signed.Keys))))
	}
}
