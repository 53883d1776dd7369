package tufrepo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo/merkle"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ---- An in-memory PublishStore ---------------------------------------------------------
//
// fakeStore is a test double of the storage interface (the real store is tested against
// PostgreSQL). A transaction buffers its writes and applies them only if fn succeeds, so a
// failed publish leaves the store exactly as it was. Reads see the committed state (the
// publisher never reads its own writes).

type fakeMeta struct {
	Raw      []byte
	Expires  time.Time
	Snapshot int64 // 0 while staged
}

type fakeProject struct {
	Deleg     ProjectDelegation
	Delegated bool
	Tree      string // "" means recently-claimed
	Shard     string // the node role that delegates it
	Version   int64  // role version, for ApplySubmissions
}

var errRetryable = errors.New("serialization failure (retryable)")

type fakeStore struct {
	t        *testing.T
	head     Head
	meta     map[string]map[int64]*fakeMeta
	staged   []StagedRole
	projects map[string]*fakeProject
	shards   map[string]bool // recently-claimed node prefix → dirty
	audit    []api.LogEntry
	notified []int64
	txs      int // transactions started
	// failAt makes the named operation ("Head", "InsertSigned:snapshot", "commit", …) fail
	// with failErr that many times.
	failAt  map[string]int
	failErr error
	// inserts records every InsertSigned call, committed or not.
	inserts []MetadataVersion
	root    []byte // root version 1
	// leaves is the committed Merkle snapshot, by index.
	leaves map[uint64]MerkleLeaf
}

func newFakeStore(t *testing.T) *fakeStore {
	return &fakeStore{t: t, meta: map[string]map[int64]*fakeMeta{}, projects: map[string]*fakeProject{}, shards: map[string]bool{"": false}, failAt: map[string]int{}, failErr: errInjected}
}

func (s *fakeStore) fail(op string) error {
	if s.failAt[op] > 0 {
		s.failAt[op]--
		return fmt.Errorf("%s: %w", op, s.failErr)
	}
	return nil
}

func (s *fakeStore) put(role string, v int64, m *fakeMeta) {
	if s.meta[role] == nil {
		s.meta[role] = map[int64]*fakeMeta{}
	}
	s.meta[role][v] = m
}

func (s *fakeStore) get(role string, v int64) *fakeMeta {
	if m := s.meta[role][v]; m != nil {
		return m
	}
	s.t.Fatalf("store has no %s version %d", role, v)
	return nil
}

func (s *fakeStore) latest(role string) (int64, *fakeMeta) {
	vs := slices.Sorted(maps.Keys(s.meta[role]))
	if len(vs) == 0 {
		return 0, nil
	}
	return vs[len(vs)-1], s.meta[role][vs[len(vs)-1]]
}

func (s *fakeStore) InPublishTx(ctx context.Context, fn func(ctx context.Context, tx PublishTx) error) error {
	for attempt := 0; ; attempt++ {
		s.txs++
		tx := &fakeTx{s: s}
		err := fn(ctx, tx)
		if err == nil {
			if err := s.fail("commit"); err != nil {
				return fmt.Errorf("%w: %w", ErrCommitUnknown, err) // as store.InPublishTx says it
			}
			return s.commit(tx)
		}
		if errors.Is(err, errRetryable) && attempt == 0 {
			continue // the store retries, as the real one does on serialization failures
		}
		return err
	}
}

type fakeInsert struct {
	m    MetadataVersion
	snap int64
}

type fakeTx struct {
	s              *fakeStore
	inserted       []fakeInsert
	marked         []StagedRole
	markedProjects []string
	markSnap       int64
	newHead        *[2]int64
	audit          []api.LogEntry
	notify         []int64
	shardsAdded    []string
	assign         map[string]string
	clean          []string
	applied        []*Submission
	appliedSnap    int64
	leaves         []MerkleLeaf
}

func (tx *fakeTx) Head(ctx context.Context) (Head, error) {
	if err := tx.s.fail("Head"); err != nil {
		return Head{}, err
	}
	h := tx.s.head
	h.SnapshotRaw = nil // the real store does not read the bytes here
	return h, nil
}

func (tx *fakeTx) LatestRoot(ctx context.Context, known int64) (int64, []byte, error) {
	if err := tx.s.fail("LatestRoot"); err != nil {
		return 0, nil, err
	}
	if tx.s.root == nil {
		return 0, nil, fmt.Errorf("fake: no root")
	}
	if known == 1 {
		return 1, nil, nil
	}
	return 1, slices.Clone(tx.s.root), nil
}

func (tx *fakeTx) SnapshotRaw(ctx context.Context, version int64) ([]byte, error) {
	if err := tx.s.fail("SnapshotRaw"); err != nil {
		return nil, err
	}
	if version != tx.s.head.SnapshotVersion {
		return nil, fmt.Errorf("fake: snapshot %d is not the head", version)
	}
	return slices.Clone(tx.s.head.SnapshotRaw), nil
}

// StagedRoles returns every staged role: the fake does not cap batches (the store's cap
// is tested against PostgreSQL).
func (tx *fakeTx) StagedRoles(ctx context.Context, _ int, _ []string) ([]StagedRole, bool, error) {
	if err := tx.s.fail("StagedRoles"); err != nil {
		return nil, false, err
	}
	return slices.Clone(tx.s.staged), false, nil
}

func (tx *fakeTx) UndelegatedProjects(ctx context.Context, _ []string) ([]UndelegatedProject, error) {
	if err := tx.s.fail("UndelegatedProjects"); err != nil {
		return nil, err
	}
	var out []UndelegatedProject
	for _, n := range slices.Sorted(maps.Keys(tx.s.projects)) {
		if p := tx.s.projects[n]; !p.Delegated {
			out = append(out, UndelegatedProject{Name: n, Tree: p.tree()})
		}
	}
	return out, nil
}

func (p *fakeProject) tree() string {
	if p.Tree == "" {
		return RoleRecentlyClaimed
	}
	return p.Tree
}

func (tx *fakeTx) RCShards(ctx context.Context) ([]ShardState, error) {
	if err := tx.s.fail("RCShards"); err != nil {
		return nil, err
	}
	var out []ShardState
	for _, prefix := range slices.Sorted(maps.Keys(tx.s.shards)) {
		role := ShardRole(RoleRecentlyClaimed, prefix)
		st := ShardState{Prefix: prefix, Dirty: tx.s.shards[prefix]}
		if v, m := tx.s.latest(role); m != nil {
			st.Version, st.Expires = v, m.Expires
		}
		for _, p := range tx.s.projects {
			if p.Shard == role && p.tree() == RoleRecentlyClaimed {
				st.Direct++
			}
		}
		out = append(out, st)
	}
	return out, nil
}

func (tx *fakeTx) DirtyRCShards(ctx context.Context) ([]string, error) {
	if err := tx.s.fail("DirtyRCShards"); err != nil {
		return nil, err
	}
	var out []string
	for _, prefix := range slices.Sorted(maps.Keys(tx.s.shards)) {
		if tx.s.shards[prefix] {
			out = append(out, prefix)
		}
	}
	return out, nil
}

func (tx *fakeTx) NodeProjects(ctx context.Context, roles, names, _ []string) ([]NodeProject, error) {
	if err := tx.s.fail("NodeProjects"); err != nil {
		return nil, err
	}
	var out []NodeProject
	for _, n := range slices.Sorted(maps.Keys(tx.s.projects)) {
		p := tx.s.projects[n]
		if p.tree() == RoleRecentlyClaimed && (slices.Contains(roles, p.Shard) || slices.Contains(names, n)) {
			out = append(out, NodeProject{Shard: p.Shard, ProjectDelegation: p.Deleg})
		}
	}
	return out, nil
}

func (tx *fakeTx) SaveRCShards(ctx context.Context, added []string, assign map[string]string, clean []string) error {
	if err := tx.s.fail("SaveRCShards"); err != nil {
		return err
	}
	tx.shardsAdded, tx.assign, tx.clean = slices.Clone(added), maps.Clone(assign), slices.Clone(clean)
	return nil
}

func (tx *fakeTx) ApplySubmissions(ctx context.Context, subs []*Submission, snapshot int64) ([]error, error) {
	if err := tx.s.fail("ApplySubmissions"); err != nil {
		return nil, err
	}
	errs := make([]error, len(subs))
	current := map[string]int64{}
	for n, p := range tx.s.projects {
		current[n] = p.Version
	}
	for i, sub := range subs {
		if current[sub.Project] != sub.Expected {
			errs[i] = VersionConflict(sub, current[sub.Project])
			continue
		}
		current[sub.Project] = sub.Accepted.Version
		tx.applied = append(tx.applied, sub)
	}
	tx.appliedSnap = snapshot
	return errs, nil
}

func (tx *fakeTx) InsertSigned(ctx context.Context, m MetadataVersion, snapshot int64) error {
	tx.s.inserts = append(tx.s.inserts, m)
	if err := tx.s.fail("InsertSigned:" + m.Role); err != nil {
		return err
	}
	if tx.s.meta[m.Role][m.Version] != nil {
		return fmt.Errorf("duplicate key: %s version %d exists", m.Role, m.Version)
	}
	for _, i := range tx.inserted {
		if i.m.Role == m.Role && i.m.Version == m.Version {
			return fmt.Errorf("duplicate key: %s version %d inserted twice", m.Role, m.Version)
		}
	}
	tx.inserted = append(tx.inserted, fakeInsert{m, snapshot})
	return nil
}

func (tx *fakeTx) MarkPublished(ctx context.Context, roles []StagedRole, projects []string, snapshot int64) error {
	if err := tx.s.fail("MarkPublished"); err != nil {
		return err
	}
	tx.marked, tx.markedProjects, tx.markSnap = slices.Clone(roles), slices.Clone(projects), snapshot
	return nil
}

func (tx *fakeTx) SetHead(ctx context.Context, snapshot, timestamp int64) error {
	if err := tx.s.fail("SetHead"); err != nil {
		return err
	}
	tx.newHead = &[2]int64{snapshot, timestamp}
	return nil
}

func (tx *fakeTx) AppendAudit(ctx context.Context, entries []api.LogEntry) error {
	if err := tx.s.fail("AppendAudit"); err != nil {
		return err
	}
	tx.audit = append(tx.audit, entries...)
	return nil
}

func (tx *fakeTx) Ping(ctx context.Context) error { return tx.s.fail("Ping") }

func (tx *fakeTx) MerkleLeaves(ctx context.Context) ([]MerkleLeaf, error) {
	if err := tx.s.fail("MerkleLeaves"); err != nil {
		return nil, err
	}
	out := make([]MerkleLeaf, 0, len(tx.s.leaves))
	for _, i := range slices.Sorted(maps.Keys(tx.s.leaves)) {
		out = append(out, tx.s.leaves[i])
	}
	return out, nil
}

func (tx *fakeTx) SaveMerkleLeaves(ctx context.Context, leaves []MerkleLeaf, snapshot int64) error {
	if err := tx.s.fail("SaveMerkleLeaves"); err != nil {
		return err
	}
	tx.leaves = append(tx.leaves, leaves...)
	return nil
}

func (tx *fakeTx) NotifyPublished(ctx context.Context, timestamp int64) error {
	if err := tx.s.fail("NotifyPublished"); err != nil {
		return err
	}
	tx.notify = append(tx.notify, timestamp)
	return nil
}

func (s *fakeStore) commit(tx *fakeTx) error {
	for _, i := range tx.inserted {
		s.put(i.m.Role, i.m.Version, &fakeMeta{Raw: i.m.Raw, Expires: i.m.Expires, Snapshot: i.snap})
	}
	for _, r := range tx.marked {
		i := slices.IndexFunc(s.staged, func(x StagedRole) bool { return x.Role == r.Role && x.Version == r.Version })
		if i < 0 {
			s.t.Errorf("MarkPublished(%s v%d): not staged", r.Role, r.Version)
			continue
		}
		s.staged = slices.Delete(s.staged, i, i+1)
		s.get(r.Role, r.Version).Snapshot = tx.markSnap
	}
	for _, p := range tx.markedProjects {
		s.projects[p].Delegated = true
	}
	for _, a := range tx.shardsAdded {
		s.shards[a] = false
	}
	for _, sub := range tx.applied {
		s.put(sub.Project, sub.Accepted.Version, &fakeMeta{Raw: sub.Accepted.Raw, Expires: sub.Accepted.Expires, Snapshot: tx.appliedSnap})
		s.projects[sub.Project].Version = sub.Accepted.Version
	}
	for name, role := range tx.assign {
		s.projects[name].Shard = role
	}
	for _, role := range tx.clean {
		_, prefix, _ := ParseShardRole(role)
		s.shards[prefix] = false
	}
	if tx.newHead != nil {
		snap, ts := s.get(RoleSnapshot, tx.newHead[0]), s.get(RoleTimestamp, tx.newHead[1])
		s.head.SnapshotVersion, s.head.SnapshotRaw, s.head.SnapshotExpires = tx.newHead[0], snap.Raw, snap.Expires
		s.head.TimestampVersion, s.head.TimestampExpires = tx.newHead[1], ts.Expires
	}
	for _, e := range tx.audit {
		var prev []byte
		if n := len(s.audit); n > 0 {
			prev = mustHex(s.audit[n-1].Hash)
		}
		e.Seq = int64(len(s.audit) + 1)
		e.PrevHash = hex.EncodeToString(prev)
		e.Hash = hex.EncodeToString(AuditHash(prev, e))
		s.audit = append(s.audit, e)
	}
	s.notified = append(s.notified, tx.notify...)
	for _, l := range tx.leaves {
		s.leaves[l.Index] = l
	}
	return nil
}

// ---- Test environment ------------------------------------------------------------------

type pubEnv struct {
	t           *testing.T
	repo        *testRepo
	store       *fakeStore
	pub         *Publisher
	now         time.Time
	maintainers map[string]*OnlineSigner
	observed    []PublishResult
	// legacyTimestamp is a hand-made timestamp version without a Merkle snapshot.
	legacyTimestamp int64
}

// newPubEnv bootstraps a repository at t0 and a publisher whose clock is env.now.
func newPubEnv(t *testing.T) *pubEnv {
	e := &pubEnv{t: t, repo: newTestRepo(t, t0), store: newFakeStore(t), now: t0, maintainers: map[string]*OnlineSigner{}}
	s, r := e.store, e.repo
	s.root = r.Off.Root
	s.put(RoleTargets, 1, &fakeMeta{Raw: r.Off.Targets, Snapshot: 1})
	s.put(RoleClaimed, 1, &fakeMeta{Raw: r.Off.Claimed, Snapshot: 1})
	for _, m := range []MetadataVersion{r.RC, r.Snap, r.TS} {
		s.put(m.Role, m.Version, &fakeMeta{Raw: m.Raw, Expires: m.Expires, Snapshot: 1})
	}
	s.head = Head{SnapshotVersion: 1, SnapshotRaw: r.Snap.Raw, SnapshotExpires: r.Snap.Expires, TimestampVersion: 1, TimestampExpires: r.TS.Expires}
	leaves, err := InitialMerkleLeaves(r.Off, r.RC.Raw)
	if err != nil {
		t.Fatal(err)
	}
	s.leaves = map[uint64]MerkleLeaf{}
	for _, l := range leaves {
		s.leaves[l.Index] = l
	}
	e.pub = e.newPublisher()
	return e
}

func (e *pubEnv) newPublisher() *Publisher {
	p := NewPublisher(e.store, e.repo.Online, func() time.Time { return e.now }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.Observe = func(r PublishResult, err error) { e.observed = append(e.observed, r) }
	return p
}

// addProject registers a new (undelegated) recently-claimed project with one maintainer,
// whose key is ed25519 or ECDSA P-256 in turn.
func (e *pubEnv) addProject(name string) {
	kt := KeyEd25519
	if len(e.maintainers)%2 == 1 {
		kt = KeyECDSAP256
	}
	m := newTestSigner(e.t, kt)
	e.maintainers[name] = m
	e.store.projects[name] = &fakeProject{Deleg: delegationFor(name, 1, m)}
}

// stage stores a maintainer-signed version of a project role and stages it.
func (e *pubEnv) stage(name string, version int64) StagedRole {
	e.t.Helper()
	targets := map[string]*metadata.TargetFiles{}
	for v := int64(1); v <= version; v++ {
		content := []byte(fmt.Sprintf("%s release %d", name, v))
		targets[TargetPath(name, fmt.Sprintf("%d.0", v), name+".tar.gz")] = targetFile(content)
	}
	raw := signRole(e.t, newProjectRole(version, e.now.Add(ProjectRoleExpiry), targets), e.maintainers[name])
	e.store.put(name, version, &fakeMeta{Raw: raw})
	sr := StagedRole{Role: name, Version: version, Length: int64(len(raw)), SHA256: mustHex(sha256Hex(raw))}
	e.store.staged = append(e.store.staged, sr)
	return sr
}

func (e *pubEnv) publish() PublishResult {
	e.t.Helper()
	res, err := e.pub.PublishOnce(context.Background())
	if err != nil {
		e.t.Fatalf("PublishOnce at %s: %v", e.now, err)
	}
	return res
}

// snapshotMeta returns the meta of stored snapshot version v.
func (e *pubEnv) snapshotMeta(v int64) map[string]*metadata.MetaFiles {
	e.t.Helper()
	_, md, err := ParseSnapshot(e.store.get(RoleSnapshot, v).Raw)
	if err != nil {
		e.t.Fatal(err)
	}
	if md.Signed.Version != v {
		e.t.Fatalf("stored snapshot %d has version %d", v, md.Signed.Version)
	}
	return md.Signed.Meta
}

// verifyChain walks the published repository as a go-tuf client at e.now: timestamp,
// snapshot, targets, claimed, recently-claimed and every project role the snapshot lists,
// each checked against the lengths and versions of the level above. It returns the
// verified snapshot meta.
func (e *pubEnv) verifyChain() map[string]*metadata.MetaFiles {
	e.t.Helper()
	t, s := e.t, e.store
	tm := newTrusted(t, e.repo.Off.Root, e.now)
	tsRaw := s.get(RoleTimestamp, s.head.TimestampVersion).Raw
	ts, err := tm.UpdateTimestamp(tsRaw)
	if err != nil {
		t.Fatalf("go-tuf UpdateTimestamp(v%d): %v", s.head.TimestampVersion, err)
	}
	if ts.Signed.Version != s.head.TimestampVersion {
		t.Fatalf("timestamp version %d, head says %d", ts.Signed.Version, s.head.TimestampVersion)
	}
	snapV := ts.Signed.Meta["snapshot.json"].Version
	if snapV != s.head.SnapshotVersion || !bytes.Equal(s.get(RoleSnapshot, snapV).Raw, s.head.SnapshotRaw) {
		t.Fatalf("timestamp points at snapshot %d, head is %d", snapV, s.head.SnapshotVersion)
	}
	snap, err := tm.UpdateSnapshot(s.get(RoleSnapshot, snapV).Raw, false)
	if err != nil {
		t.Fatalf("go-tuf UpdateSnapshot(v%d): %v", snapV, err)
	}
	e.checkMerkle(ts, snap)
	if _, err := tm.UpdateTargets(s.get(RoleTargets, snap.Signed.Meta["targets.json"].Version).Raw); err != nil {
		t.Fatalf("go-tuf UpdateTargets: %v", err)
	}
	for _, role := range []string{RoleClaimed, RoleRecentlyClaimed} {
		mf := snap.Signed.Meta[MetaName(role)]
		if mf == nil {
			t.Fatalf("snapshot %d does not list %s", snapV, role)
		}
		if _, err := tm.UpdateDelegatedTargets(s.get(role, mf.Version).Raw, role, RoleTargets); err != nil {
			t.Fatalf("go-tuf UpdateDelegatedTargets(%s v%d): %v", role, mf.Version, err)
		}
	}
	// The recently-claimed shards, parents first, then the project roles, each through the
	// node that delegates it.
	var shards []string
	for name := range snap.Signed.Meta {
		if tree, prefix, ok := ParseShardRole(strings.TrimSuffix(name, ".json")); ok && tree == RoleRecentlyClaimed && prefix != "" {
			shards = append(shards, prefix)
		}
	}
	layout, err := NewShardLayout(RoleRecentlyClaimed, shards...)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(shards, func(a, b string) int { return len(a) - len(b) })
	for _, prefix := range shards {
		role := ShardRole(RoleRecentlyClaimed, prefix)
		mf := snap.Signed.Meta[MetaName(role)]
		if _, err := tm.UpdateDelegatedTargets(s.get(role, mf.Version).Raw, role, ShardRole(RoleRecentlyClaimed, layout.Parent(prefix))); err != nil {
			t.Fatalf("go-tuf UpdateDelegatedTargets(%s v%d): %v", role, mf.Version, err)
		}
	}
	for name, mf := range snap.Signed.Meta {
		role := strings.TrimSuffix(name, ".json")
		if IsReservedRole(role) || IsShardRole(role) {
			continue
		}
		delegator := ShardRole(RoleRecentlyClaimed, layout.Route(role))
		if _, err := tm.UpdateDelegatedTargets(s.get(role, mf.Version).Raw, role, delegator); err != nil {
			t.Fatalf("go-tuf UpdateDelegatedTargets(%s v%d via %s): %v", role, mf.Version, delegator, err)
		}
		if got := s.get(role, mf.Version).Snapshot; got == 0 || got > snapV {
			t.Errorf("%s v%d is listed by snapshot %d but recorded as published in %d", role, mf.Version, snapV, got)
		}
	}
	if _, err := VerifyAuditChain(nil, s.audit); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	return snap.Signed.Meta
}

// snapshotState is everything a failed publish must leave unchanged.
func (s *fakeStore) state() string {
	var b strings.Builder
	fmt.Fprintf(&b, "head %d/%d; staged %v; audit %d; notified %v; shards %v;", s.head.SnapshotVersion, s.head.TimestampVersion, s.staged, len(s.audit), s.notified, s.shards)
	for _, r := range slices.Sorted(maps.Keys(s.meta)) {
		for _, v := range slices.Sorted(maps.Keys(s.meta[r])) {
			fmt.Fprintf(&b, " %s@%d:%d", r, v, s.meta[r][v].Snapshot)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(s.projects)) {
		fmt.Fprintf(&b, " %s:%v:%s", p, s.projects[p].Delegated, s.projects[p].Shard)
	}
	return b.String()
}

type wantAudit struct {
	action, role string
	version      int64
}

func checkAudit(t *testing.T, got []api.LogEntry, snap int64, now time.Time, want []wantAudit, raws map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d audit entries %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Action != w.action || g.Role != w.role || g.Version != w.version || g.Snapshot != snap || !g.Time.Equal(AuditTime(now)) {
			t.Errorf("audit entry %d = %s %s v%d snapshot %d at %s; want %s %s v%d snapshot %d at %s", i, g.Action, g.Role, g.Version, g.Snapshot, g.Time, w.action, w.role, w.version, snap, AuditTime(now))
		}
		if raw, ok := raws[fmt.Sprintf("%s@%d", w.role, w.version)]; ok {
			if g.Length != int64(len(raw)) || g.SHA256 != sha256Hex(raw) {
				t.Errorf("audit entry %d (%s v%d): length %d sha256 %s do not describe the stored bytes", i, w.role, w.version, g.Length, g.SHA256)
			}
		}
	}
}

// ---- Tests -----------------------------------------------------------------------------

func TestDue(t *testing.T) {
	life := 24 * time.Hour
	exp := t0.Add(life)
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{
		{t0, false},
		{t0.Add(12*time.Hour - time.Nanosecond), false},
		{t0.Add(12 * time.Hour), false}, // exactly half left
		{t0.Add(12*time.Hour + time.Nanosecond), true},
		{t0.Add(30 * time.Hour), true}, // expired
		{time.Time{}, false},
	} {
		if got := due(tc.now, exp, life); got != tc.want {
			t.Errorf("due(%s) = %v, want %v", tc.now, got, tc.want)
		}
	}
	if !due(t0, time.Time{}, life) {
		t.Error("an unknown (zero) expiry is not due")
	}
}

func TestPublishNothingToDo(t *testing.T) {
	e := newPubEnv(t)
	before := e.store.state()
	for _, d := range []time.Duration{0, time.Hour, 12 * time.Hour} {
		e.now = t0.Add(d)
		res := e.publish()
		if res.Published || res.SnapshotVersion != 1 || res.TimestampVersion != 1 || res.Reason != "" {
			t.Errorf("at t0+%s: %+v, want nothing published", d, res)
		}
	}
	if after := e.store.state(); after != before || len(e.store.inserts) != 0 {
		t.Errorf("nothing to do changed the store:\n%s\n%s", before, after)
	}
	if len(e.observed) != 3 {
		t.Errorf("Observe called %d times, want 3", len(e.observed))
	}
	e.verifyChain()
}

func TestPublishStagedRoles(t *testing.T) {
	e := newPubEnv(t)

	// Round 1: two new projects, each with version 1 staged.
	e.now = t0.Add(2*time.Hour + 300*time.Millisecond)
	e.addProject("beta")
	e.addProject("alpha")
	b1, a1 := e.stage("beta", 1), e.stage("alpha", 1)
	res := e.publish()
	if !res.Published || res.SnapshotVersion != 2 || res.TimestampVersion != 2 || res.Roles != 2 || res.NewProjects != 2 || res.Reason != "staged" {
		t.Fatalf("round 1 result %+v", res)
	}
	if len(e.store.staged) != 0 || !e.store.projects["alpha"].Delegated || !e.store.projects["beta"].Delegated {
		t.Fatalf("after round 1: staged %v, projects delegated alpha=%v beta=%v", e.store.staged, e.store.projects["alpha"].Delegated, e.store.projects["beta"].Delegated)
	}
	if !slices.Equal(e.store.notified, []int64{2}) {
		t.Errorf("notified %v, want [2]", e.store.notified)
	}
	// recently-claimed v2 delegates both projects.
	rcV, rc := e.store.latest(RoleRecentlyClaimed)
	if rcV != 2 {
		t.Fatalf("recently-claimed version %d, want 2", rcV)
	}
	rcMD, err := metadata.Targets().FromBytes(rc.Raw)
	if err != nil {
		t.Fatal(err)
	}
	var delegated []string
	for _, r := range rcMD.Signed.Delegations.Roles {
		delegated = append(delegated, r.Name)
	}
	if !slices.Equal(delegated, []string{"alpha", "beta"}) {
		t.Errorf("recently-claimed v2 delegates %v", delegated)
	}
	// One snapshot listing both roles with their lengths, and recently-claimed v2.
	meta := e.snapshotMeta(2)
	for role, want := range map[string]StagedRole{"alpha": a1, "beta": b1} {
		mf := meta[MetaName(role)]
		if mf == nil || mf.Version != want.Version || mf.Length != want.Length {
			t.Errorf("snapshot 2 lists %s as %+v, want version %d length %d", role, mf, want.Version, want.Length)
		}
	}
	if mf := meta["recently-claimed.json"]; mf.Version != 2 || mf.Length != int64(len(rc.Raw)) {
		t.Errorf("snapshot 2 lists recently-claimed %+v", mf)
	}
	if meta["targets.json"].Version != 1 || meta["claimed.json"].Version != 1 || len(meta) != 5 {
		t.Errorf("snapshot 2 meta %v", slices.Sorted(maps.Keys(meta)))
	}
	// One timestamp pointing at it by length and hash.
	ts, err := metadata.Timestamp().FromBytes(e.store.get(RoleTimestamp, 2).Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Signed.Meta["snapshot.json"].VerifyLengthHashes(e.store.get(RoleSnapshot, 2).Raw); err != nil || ts.Signed.Meta["snapshot.json"].Version != 2 {
		t.Errorf("timestamp 2 does not describe snapshot 2: %v", err)
	}
	// Exactly one of each signed.
	if len(e.store.inserts) != 3 {
		t.Errorf("%d InsertSigned calls, want recently-claimed, snapshot, timestamp", len(e.store.inserts))
	}
	raws := map[string][]byte{"alpha@1": e.store.get("alpha", 1).Raw, "beta@1": e.store.get("beta", 1).Raw,
		"recently-claimed@2": rc.Raw, "snapshot@2": e.store.get(RoleSnapshot, 2).Raw, "timestamp@2": e.store.get(RoleTimestamp, 2).Raw}
	checkAudit(t, e.store.audit, 2, e.now, []wantAudit{
		{api.ActionAccepted, "beta", 1}, {api.ActionAccepted, "alpha", 1},
		{api.ActionSigned, RoleRecentlyClaimed, 2}, {api.ActionSigned, RoleSnapshot, 2}, {api.ActionSigned, RoleTimestamp, 2},
	}, raws)
	e.verifyChain()

	// Round 2: new versions of existing projects only; recently-claimed is not re-signed.
	e.now = t0.Add(3 * time.Hour)
	a2, b2 := e.stage("alpha", 2), e.stage("beta", 2)
	auditBefore := len(e.store.audit)
	res = e.publish()
	if res.SnapshotVersion != 3 || res.TimestampVersion != 3 || res.Roles != 2 || res.NewProjects != 0 || res.Reason != "staged" {
		t.Fatalf("round 2 result %+v", res)
	}
	if v, _ := e.store.latest(RoleRecentlyClaimed); v != 2 {
		t.Errorf("recently-claimed re-signed (v%d) with no new project", v)
	}
	meta = e.snapshotMeta(3)
	if meta["alpha.json"].Version != 2 || meta["alpha.json"].Length != a2.Length || meta["beta.json"].Version != 2 || meta["beta.json"].Length != b2.Length || meta["recently-claimed.json"].Version != 2 {
		t.Errorf("snapshot 3 meta: alpha %+v beta %+v rc %+v", meta["alpha.json"], meta["beta.json"], meta["recently-claimed.json"])
	}
	checkAudit(t, e.store.audit[auditBefore:], 3, e.now, []wantAudit{
		{api.ActionAccepted, "alpha", 2}, {api.ActionAccepted, "beta", 2}, {api.ActionSigned, RoleSnapshot, 3}, {api.ActionSigned, RoleTimestamp, 3},
	}, map[string][]byte{"alpha@2": e.store.get("alpha", 2).Raw, "snapshot@3": e.store.get(RoleSnapshot, 3).Raw})
	e.verifyChain()

	// Round 3: a new project with no staged role yet still gets its delegation published.
	e.now = t0.Add(4 * time.Hour)
	e.addProject("gamma")
	res = e.publish()
	if res.SnapshotVersion != 4 || res.Roles != 0 || res.NewProjects != 1 || res.Reason != "staged" {
		t.Fatalf("round 3 result %+v", res)
	}
	if v, _ := e.store.latest(RoleRecentlyClaimed); v != 3 || e.snapshotMeta(4)["recently-claimed.json"].Version != 3 {
		t.Errorf("recently-claimed not re-signed for the new project")
	}
	if e.snapshotMeta(4)["gamma.json"] != nil {
		t.Error("snapshot lists a project role that was never uploaded")
	}
	e.verifyChain()

	// Round 4: two versions of one role staged in one batch (in the store's order, by
	// role then version): the snapshot lists the newer.
	e.now = t0.Add(5 * time.Hour)
	e.stage("gamma", 1)
	e.stage("gamma", 2)
	res = e.publish()
	if res.Roles != 2 || e.snapshotMeta(5)["gamma.json"].Version != 2 {
		t.Errorf("two staged versions: result %+v, snapshot lists gamma %+v", res, e.snapshotMeta(5)["gamma.json"])
	}
	e.verifyChain()

	// Versions only go up, and every earlier snapshot's roles stay listed.
	for v := int64(2); v <= e.store.head.SnapshotVersion; v++ {
		prev, cur := e.snapshotMeta(v-1), e.snapshotMeta(v)
		for name, mf := range prev {
			if cur[name] == nil || cur[name].Version < mf.Version {
				t.Errorf("snapshot %d rolls back %s (%+v → %+v)", v, name, mf, cur[name])
			}
		}
	}
}

func TestPublishTimestampDue(t *testing.T) {
	e := newPubEnv(t)
	e.now = t0.Add(11 * time.Hour)
	if res := e.publish(); res.Published {
		t.Fatalf("timestamp re-signed with 13h of 24h left: %+v", res)
	}
	e.now = t0.Add(13 * time.Hour)
	res := e.publish()
	if !res.Published || res.SnapshotVersion != 1 || res.TimestampVersion != 2 || res.Reason != "refresh-timestamp" || res.Roles != 0 {
		t.Fatalf("result %+v, want only timestamp 2", res)
	}
	if len(e.store.inserts) != 1 || e.store.inserts[0].Role != RoleTimestamp {
		t.Fatalf("signed %v, want only a timestamp", e.store.inserts)
	}
	if v, _ := e.store.latest(RoleSnapshot); v != 1 || e.store.head.SnapshotVersion != 1 {
		t.Fatalf("snapshot version changed to %d", v)
	}
	ts, err := metadata.Timestamp().FromBytes(e.store.get(RoleTimestamp, 2).Raw)
	if err != nil {
		t.Fatal(err)
	}
	if mf := ts.Signed.Meta["snapshot.json"]; mf.Version != 1 || mf.VerifyLengthHashes(e.repo.Snap.Raw) != nil {
		t.Errorf("timestamp 2 does not point at snapshot 1: %+v", mf)
	}
	if !ts.Signed.Expires.Equal(t0.Add(13*time.Hour + TimestampExpiry)) {
		t.Errorf("timestamp 2 expires %s", ts.Signed.Expires)
	}
	checkAudit(t, e.store.audit, 1, e.now, []wantAudit{{api.ActionSigned, RoleTimestamp, 2}}, map[string][]byte{"timestamp@2": e.store.get(RoleTimestamp, 2).Raw})
	e.verifyChain()

	// Right after, nothing is due again.
	e.now = e.now.Add(time.Minute)
	if res := e.publish(); res.Published {
		t.Fatalf("published again right after a refresh: %+v", res)
	}
}

func TestPublishSnapshotDue(t *testing.T) {
	e := newPubEnv(t)
	e.now = t0.Add(4 * 24 * time.Hour)
	res := e.publish()
	if !res.Published || res.SnapshotVersion != 2 || res.TimestampVersion != 2 || res.Reason != "refresh-snapshot" {
		t.Fatalf("result %+v, want snapshot 2 and timestamp 2", res)
	}
	if v, _ := e.store.latest(RoleRecentlyClaimed); v != 1 {
		t.Errorf("recently-claimed re-signed (v%d) while not due", v)
	}
	old, cur := e.snapshotMeta(1), e.snapshotMeta(2)
	if len(old) != len(cur) {
		t.Fatalf("refreshed snapshot meta %v, was %v", cur, old)
	}
	for n, mf := range old {
		if cur[n].Version != mf.Version || cur[n].Length != mf.Length {
			t.Errorf("refreshed snapshot changed %s: %+v → %+v", n, mf, cur[n])
		}
	}
	checkAudit(t, e.store.audit, 2, e.now, []wantAudit{{api.ActionSigned, RoleSnapshot, 2}, {api.ActionSigned, RoleTimestamp, 2}}, nil)
	e.verifyChain()
}

func TestPublishRecentlyClaimedDue(t *testing.T) {
	e := newPubEnv(t)
	e.addProject("alpha")
	e.stage("alpha", 1)
	e.publish() // recently-claimed v2 at t0
	e.now = t0.Add(16 * 24 * time.Hour)
	res := e.publish()
	if !res.Published || res.SnapshotVersion != 3 || res.Reason != "refresh-snapshot" || res.NewProjects != 0 {
		t.Fatalf("result %+v", res)
	}
	v, rc := e.store.latest(RoleRecentlyClaimed)
	if v != 3 {
		t.Fatalf("recently-claimed version %d, want 3", v)
	}
	md, err := metadata.Targets().FromBytes(rc.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Signed.Delegations.Roles) != 1 || md.Signed.Delegations.Roles[0].Name != "alpha" {
		t.Errorf("re-signed recently-claimed lost its delegations: %+v", md.Signed.Delegations.Roles)
	}
	if !md.Signed.Expires.Equal(e.now.Add(RecentlyClaimedExpiry)) {
		t.Errorf("recently-claimed expires %s", md.Signed.Expires)
	}
	e.verifyChain()
}

func TestPublishFailureChangesNothing(t *testing.T) {
	ops := []string{"Head", "StagedRoles", "UndelegatedProjects", "DirtyRCShards", "NodeProjects", "InsertSigned:recently-claimed", "SaveRCShards", "InsertSigned:snapshot", "InsertSigned:timestamp", "MarkPublished", "SetHead", "AppendAudit", "NotifyPublished", "commit"}
	for _, op := range ops {
		t.Run(op, func(t *testing.T) {
			e := newPubEnv(t)
			e.addProject("alpha")
			e.addProject("beta")
			e.stage("alpha", 1)
			e.stage("beta", 1)
			e.now = t0.Add(time.Hour)
			before := e.store.state()
			e.store.failAt[op] = 1
			res, err := e.pub.PublishOnce(context.Background())
			if !errors.Is(err, errInjected) || !strings.HasPrefix(err.Error(), "publishing: ") {
				t.Fatalf("PublishOnce with %s failing: %+v, %v", op, res, err)
			}
			if after := e.store.state(); after != before {
				t.Fatalf("a failed publish changed the store:\n%s\n%s", before, after)
			}
			// The next publish succeeds and publishes each staged role exactly once.
			res = e.publish()
			if res.SnapshotVersion != 2 || res.TimestampVersion != 2 || res.Roles != 2 {
				t.Fatalf("retry result %+v", res)
			}
			meta := e.verifyChain()
			if meta["alpha.json"].Version != 1 || meta["beta.json"].Version != 1 {
				t.Fatalf("snapshot after retry: %v", meta)
			}
			accepted := 0
			for _, a := range e.store.audit {
				if a.Action == api.ActionAccepted {
					accepted++
				}
			}
			if accepted != 2 || len(e.store.audit) != 5 {
				t.Errorf("audit after retry has %d entries (%d accepted), want 5 (2 accepted)", len(e.store.audit), accepted)
			}
		})
	}
}

// A publish that failed after changing the in-memory index must not leak that change: the
// next publish starts from the database.
func TestPublishReloadsIndexAfterFailure(t *testing.T) {
	e := newPubEnv(t)
	e.addProject("alpha")
	e.addProject("beta")
	e.stage("alpha", 1)
	e.stage("beta", 1)
	e.store.failAt["InsertSigned:timestamp"] = 1 // after the index took alpha and beta
	if _, err := e.pub.PublishOnce(context.Background()); !errors.Is(err, errInjected) {
		t.Fatalf("want the injected failure, got %v", err)
	}
	// Meanwhile beta's upload is gone from the database (e.g. removed by an admin).
	e.store.staged = slices.DeleteFunc(e.store.staged, func(s StagedRole) bool { return s.Role == "beta" })
	delete(e.store.meta, "beta")
	delete(e.store.projects, "beta")
	e.publish()
	meta := e.verifyChain()
	if meta["beta.json"] != nil {
		t.Fatal("the snapshot lists beta, which only the failed attempt's in-memory index had")
	}
	if meta["alpha.json"] == nil || meta["alpha.json"].Version != 1 {
		t.Fatalf("alpha missing: %v", meta)
	}
}

// The store may run fn again (serialization failure): the retry must not build on the
// first attempt's index or versions.
func TestPublishRetriedTransaction(t *testing.T) {
	e := newPubEnv(t)
	e.addProject("alpha")
	e.stage("alpha", 1)
	e.store.failErr = errRetryable
	e.store.failAt["InsertSigned:timestamp"] = 1
	res := e.publish()
	if e.store.txs != 2 {
		t.Fatalf("%d transaction attempts, want 2", e.store.txs)
	}
	if res.SnapshotVersion != 2 || res.TimestampVersion != 2 {
		t.Fatalf("result after a retried transaction %+v", res)
	}
	if len(e.store.audit) != 4 {
		t.Errorf("%d audit entries, want 4 (accepted alpha, recently-claimed, snapshot, timestamp)", len(e.store.audit))
	}
	e.verifyChain()
}

// Two replicas take turns: each must start from the published head, not its own cache.
func TestPublishTwoReplicas(t *testing.T) {
	e := newPubEnv(t)
	p1, p2 := e.pub, e.newPublisher()
	for i, step := range []struct {
		p    *Publisher
		name string
	}{{p1, "alpha"}, {p2, "beta"}, {p1, "gamma"}, {p1, "delta"}, {p2, "epsilon"}} {
		e.now = t0.Add(time.Duration(i+1) * time.Minute)
		e.addProject(step.name)
		e.stage(step.name, 1)
		res, err := step.p.PublishOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.SnapshotVersion != int64(i+2) {
			t.Fatalf("step %d: snapshot %d", i, res.SnapshotVersion)
		}
	}
	meta := e.verifyChain()
	for _, n := range []string{"alpha", "beta", "gamma", "delta", "epsilon"} {
		if meta[MetaName(n)] == nil {
			t.Errorf("final snapshot lacks %s: a replica published from a stale index", n)
		}
	}
}

// Every stored expiry is the one inside the signed bytes.
func TestPublishStoredExpiresMatchSigned(t *testing.T) {
	e := newPubEnv(t)
	e.addProject("alpha")
	e.stage("alpha", 1)
	e.now = t0.Add(time.Hour + 987654321*time.Nanosecond)
	e.publish()
	for _, m := range e.store.inserts {
		var exp time.Time
		switch m.Role {
		case RoleSnapshot:
			md, _ := metadata.Snapshot().FromBytes(m.Raw)
			exp = md.Signed.Expires
		case RoleTimestamp:
			md, _ := metadata.Timestamp().FromBytes(m.Raw)
			exp = md.Signed.Expires
		default:
			md, _ := metadata.Targets().FromBytes(m.Raw)
			exp = md.Signed.Expires
		}
		if !m.Expires.Equal(exp) {
			t.Errorf("%s v%d stored with expiry %s, signed %s", m.Role, m.Version, m.Expires.Format(time.RFC3339Nano), exp.Format(time.RFC3339Nano))
		}
	}
}

func TestPublishObserve(t *testing.T) {
	e := newPubEnv(t)
	var errs []error
	e.pub.Observe = func(r PublishResult, err error) { e.observed = append(e.observed, r); errs = append(errs, err) }
	e.store.failAt["Head"] = 1
	if _, err := e.pub.PublishOnce(context.Background()); err == nil {
		t.Fatal("no error")
	}
	e.now = t0.Add(13 * time.Hour)
	e.publish()
	if len(e.observed) != 2 || errs[0] == nil || errs[1] != nil || !e.observed[1].Published || e.observed[1].TimestampVersion != 2 {
		t.Fatalf("observed %+v %v", e.observed, errs)
	}
}

func TestPublishKickNeverBlocks(t *testing.T) {
	e := newPubEnv(t)
	for range 10 {
		e.pub.Kick() // must merge, not block, with nobody running
	}
	if len(e.pub.kick) != 1 {
		t.Fatalf("%d kicks pending, want 1", len(e.pub.kick))
	}
}

// Run publishes on a kick and stops when its context ends.
func TestPublisherRun(t *testing.T) {
	e := newPubEnv(t)
	e.addProject("alpha")
	e.stage("alpha", 1)
	done := make(chan PublishResult, 16)
	e.pub.Observe = func(r PublishResult, err error) {
		if err == nil && r.Published {
			done <- r
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { e.pub.Run(ctx, time.Hour); close(stopped) }()
	r := <-done // the first tick publishes what is staged
	cancel()
	<-stopped
	if r.SnapshotVersion != 2 || r.Roles != 1 {
		t.Fatalf("Run published %+v", r)
	}
}

// Creating projects beyond a node's capacity splits the recently-claimed tree; every node
// stays within ShardCapacity, go-tuf verifies every node and project role through it, and a
// publish that creates one more project signs exactly one node.
func TestPublishShardsRecentlyClaimed(t *testing.T) {
	e := newPubEnv(t)
	var names []string
	for i := range 3 * ShardCapacity {
		names = append(names, fmt.Sprintf("%c%c-lib%d", 'a'+i%3, 'a'+i%5, i))
	}
	for start := 0; start < len(names); start += 50 {
		for _, n := range names[start:min(len(names), start+50)] {
			e.addProject(n)
			e.stage(n, 1)
		}
		e.publish()
	}
	meta := e.verifyChain()
	if e.pub.rc.layout.Len() < 4 {
		t.Fatalf("the tree did not split: %d nodes for %d projects", e.pub.rc.layout.Len(), len(names))
	}
	for _, prefix := range e.pub.rc.layout.Prefixes() {
		role := ShardRole(RoleRecentlyClaimed, prefix)
		_, m := e.store.latest(role)
		md, err := metadata.Targets().FromBytes(m.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(md.Signed.Delegations.Roles); n > ShardCapacity {
			t.Errorf("%s delegates %d roles, capacity %d", role, n, ShardCapacity)
		}
		if meta[MetaName(role)] == nil {
			t.Errorf("snapshot does not list %s", role)
		}
	}
	for _, n := range names {
		if p := e.store.projects[n]; !p.Delegated || p.Shard != ShardRole(RoleRecentlyClaimed, e.pub.rc.layout.Route(n)) {
			t.Fatalf("project %s: delegated %v by %s, the layout routes it to %s", n, p.Delegated, p.Shard, e.pub.rc.layout.Route(n))
		}
	}

	// One more project, routed to a node with room: one node, snapshot and timestamp
	// signed.
	before := len(e.store.inserts)
	e.addProject("zz-one-more")
	e.stage("zz-one-more", 1)
	e.publish()
	var roles []string
	for _, m := range e.store.inserts[before:] {
		roles = append(roles, m.Role)
	}
	want := []string{ShardRole(RoleRecentlyClaimed, e.pub.rc.layout.Route("zz-one-more")), RoleSnapshot, RoleTimestamp}
	if !slices.Equal(roles, want) {
		t.Errorf("creating one project signed %v, want %v", roles, want)
	}
	e.verifyChain()

	// A fresh publisher (another replica) loads the same tree and carries on.
	e.pub = e.newPublisher()
	e.addProject("cc-after-reload")
	e.stage("cc-after-reload", 1)
	e.publish()
	e.verifyChain()
}

// A repository made before sharding has every recently-claimed project in the top node; the
// first publish splits it, with no project lost.
func TestPublishSplitsAnUnshardedTree(t *testing.T) {
	e := newPubEnv(t)
	ctx := context.Background()
	// What the publisher before sharding published: recently-claimed v2 delegating every
	// project from the top, and a snapshot listing it and the project roles.
	var ps []ProjectDelegation
	idx := &SnapshotIndex{}
	idx.Set(RoleTargets, 1, int64(len(e.repo.Off.Targets)))
	idx.Set(RoleClaimed, 1, int64(len(e.repo.Off.Claimed)))
	for i := range 2*ShardCapacity + 7 {
		n := fmt.Sprintf("p%03d", i)
		e.addProject(n)
		sr := e.stage(n, 1)
		e.store.staged = nil
		e.store.get(n, 1).Snapshot = 2
		idx.Set(n, 1, sr.Length)
		p := e.store.projects[n]
		p.Delegated, p.Shard = true, RoleRecentlyClaimed
		ps = append(ps, p.Deleg)
	}
	exp := e.now.Add(RecentlyClaimedExpiry)
	signed, err := BuildShardNode(2, exp, ShardKeys{}, ShardNode{Tree: RoleRecentlyClaimed, Projects: ps})
	if err != nil {
		t.Fatal(err)
	}
	rcRaw := signRole(t, mustTargets(t, signed), e.repo.Online.RecentlyClaimed)
	e.store.put(RoleRecentlyClaimed, 2, &fakeMeta{Raw: rcRaw, Expires: exp, Snapshot: 2})
	idx.Set(RoleRecentlyClaimed, 2, int64(len(rcRaw)))
	snapRaw, err := SignEnvelope(ctx, idx.EncodeSigned(2, e.now.Add(SnapshotExpiry)), e.repo.Online.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	e.store.put(RoleSnapshot, 2, &fakeMeta{Raw: snapRaw, Expires: e.now.Add(SnapshotExpiry), Snapshot: 2})
	tsSigned, err := BuildTimestamp(2, 2, snapRaw, e.now.Add(TimestampExpiry))
	if err != nil {
		t.Fatal(err)
	}
	tsRaw, err := SignEnvelope(ctx, tsSigned, e.repo.Online.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	e.store.put(RoleTimestamp, 2, &fakeMeta{Raw: tsRaw, Expires: e.now.Add(TimestampExpiry), Snapshot: 2})
	e.store.head = Head{SnapshotVersion: 2, SnapshotRaw: snapRaw, SnapshotExpires: e.now.Add(SnapshotExpiry), TimestampVersion: 2, TimestampExpires: e.now.Add(TimestampExpiry)}
	e.legacyTimestamp = 2
	// What the Merkle migration backfills: one leaf per role the snapshot lists.
	e.store.leaves = map[uint64]MerkleLeaf{}
	for i, m := range idx.Entries() {
		role := strings.TrimSuffix(m.Name, ".json")
		sum := sha256.Sum256(e.store.get(role, m.Version).Raw)
		l, err := MerkleLeafOf(role, m.Version, m.Length, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		e.store.leaves[uint64(i)] = MerkleLeaf{Index: uint64(i), Leaf: l}
	}
	e.verifyChain()

	// The upgraded publisher splits the top at its first publish.
	e.now = e.now.Add(time.Minute)
	e.stage("p000", 2)
	e.publish()
	meta := e.verifyChain()
	if len(e.store.shards) < 3 {
		t.Fatalf("the top was not split: nodes %v", e.store.shards)
	}
	for n, p := range e.store.projects {
		if meta[MetaName(n)] == nil || p.Shard == RoleRecentlyClaimed {
			t.Errorf("project %s: listed %v, delegated by %s", n, meta[MetaName(n)] != nil, p.Shard)
		}
	}
}

// mustTargets parses canonical signed bytes of targets metadata.
func mustTargets(t *testing.T, signed []byte) *metadata.Metadata[metadata.TargetsType] {
	t.Helper()
	md, err := metadata.Targets().FromBytes(Envelope(signed, nil))
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// TestPublishForward: the recovery from a restore older than what clients saw signs the
// snapshot, the timestamp and every recently-claimed node at the floor; a floor that would
// not move the timestamp forward, or that jumps implausibly far, is refused and changes
// nothing.
func TestPublishForward(t *testing.T) {
	e := newPubEnv(t)
	e.now = t0.Add(time.Hour)
	e.addProject("alpha")
	e.stage("alpha", 1)
	if res := e.publish(); res.TimestampVersion != 2 || res.SnapshotVersion != 2 {
		t.Fatalf("first publish %+v", res)
	}
	for _, tc := range []struct {
		name  string
		floor int64
		want  string
	}{
		{"zero", 0, "want a version above"},
		{"negative", -5, "want a version above"},
		{"equal to the timestamp", 2, "is not above the current timestamp version 2"},
		{"below the timestamp", 1, "is not above the current timestamp version 2"},
		{"implausible jump", 2 + MaxForwardJump + 1, "a typo?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.store.state()
			inserts := len(e.store.inserts)
			_, err := e.pub.PublishForward(context.Background(), tc.floor)
			if err == nil || api.CodeOf(err) != api.CodeBadRequest || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("PublishForward(%d) = %v, want bad_request containing %q", tc.floor, err, tc.want)
			}
			if after := e.store.state(); after != before || len(e.store.inserts) != inserts {
				t.Errorf("a refused floor changed the store:\n%s\n%s", before, after)
			}
		})
	}
	res, err := e.pub.PublishForward(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Published || res.SnapshotVersion != 1000 || res.TimestampVersion != 1000 || res.Reason != "forward" {
		t.Fatalf("forward result %+v", res)
	}
	if v, _ := e.store.latest(RoleRecentlyClaimed); v != 1000 {
		t.Errorf("recently-claimed at version %d, want 1000", v)
	}
	if m := e.verifyChain(); m[MetaName(RoleRecentlyClaimed)].Version != 1000 || m[MetaName("alpha")].Version != 1 {
		t.Errorf("snapshot 1000 lists recently-claimed %d and alpha %d", m[MetaName(RoleRecentlyClaimed)].Version, m[MetaName("alpha")].Version)
	}
	// Publishing goes on from the floor.
	e.stage("alpha", 2)
	if res := e.publish(); res.SnapshotVersion != 1001 || res.TimestampVersion != 1001 {
		t.Fatalf("publish after the forward one: %+v", res)
	}
	e.verifyChain()
}

// checkMerkle checks the timestamp's Merkle snapshot: it commits to exactly the roles the
// snapshot lists, at its versions, with the sha256 and length of the stored bytes, in the
// order of their first audit-log entry, and the stored leaves say the same.
func (e *pubEnv) checkMerkle(ts *metadata.Metadata[metadata.TimestampType], snap *metadata.Metadata[metadata.SnapshotType]) {
	e.t.Helper()
	t, s := e.t, e.store
	field, ok := ts.Signed.UnrecognizedFields[merkle.FieldName]
	if !ok && ts.Signed.Version == e.legacyTimestamp {
		return
	}
	if !ok {
		t.Fatalf("timestamp %d has no %s field", ts.Signed.Version, merkle.FieldName)
	}
	root, err := merkle.ParseField(field)
	if err != nil {
		t.Fatal(err)
	}
	var hs []merkle.Hash
	for i := uint64(0); i < uint64(len(s.leaves)); i++ {
		l := s.leaves[i]
		mf := snap.Signed.Meta[MetaName(l.Role)]
		if mf == nil {
			t.Fatalf("leaf %d is %s, which snapshot %d does not list", i, l.Role, snap.Signed.Version)
		}
		sum := sha256.Sum256(s.get(l.Role, mf.Version).Raw)
		want, _ := MerkleLeafOf(l.Role, mf.Version, mf.Length, sum[:])
		if l.Leaf != want {
			t.Fatalf("stored leaf %d is %+v, snapshot %d says %+v", i, l.Leaf, snap.Signed.Version, want)
		}
		h, _ := want.Hash()
		hs = append(hs, h)
	}
	if len(hs) != len(snap.Signed.Meta) {
		t.Fatalf("%d leaves for %d roles in snapshot %d", len(hs), len(snap.Signed.Meta), snap.Signed.Version)
	}
	if got := merkle.Build(1, hs).Root(); got != root {
		t.Fatalf("timestamp %d commits to tree %x (%d leaves), the stored leaves make %x (%d)", ts.Signed.Version, root.Hash, root.Size, got.Hash, got.Size)
	}
}
