package tufrepo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo/merkle"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Head is the published state the publisher starts from. SnapshotRaw is not filled by
// PublishTx.Head (the snapshot can be megabytes); the publisher reads it only when needed.
type Head struct {
	SnapshotVersion  int64
	SnapshotRaw      []byte
	SnapshotExpires  time.Time
	TimestampVersion int64
	TimestampExpires time.Time
}

// ShardState is a node of the recently-claimed tree as stored.
type ShardState struct {
	Prefix  string
	Version int64 // latest signed version; 0 if never signed
	Expires time.Time
	Dirty   bool // flagged for re-signing (a project it delegated was claimed)
	Direct  int  // projects it delegates directly
}

// UndelegatedProject is a project whose delegation is not published yet: new, or with new
// keys, or moved into claimed.
type UndelegatedProject struct {
	Name string
	Tree string // RoleClaimed or RoleRecentlyClaimed: the tree that delegates it now
}

// NodeProject is a project's delegation and the node that delegates it now ("" if none).
type NodeProject struct {
	Shard string
	ProjectDelegation
}

// StagedRole is an accepted role version waiting for a snapshot.
type StagedRole struct {
	Role    string
	Version int64
	Length  int64
	SHA256  []byte
}

// MetadataVersion is a metadata version the publisher signed.
type MetadataVersion struct {
	Role    string
	Version int64
	Raw     []byte
	Expires time.Time
	// SHA256 of Raw, computed once by the publisher (a snapshot can be megabytes); the
	// store computes it when nil.
	SHA256 []byte
}

// PublishTx is the publisher's view of storage inside one transaction that holds the
// cluster-wide publisher lock. Everything it writes commits or rolls back together.
type PublishTx interface {
	Head(ctx context.Context) (Head, error)
	// SnapshotRaw returns the bytes of a published snapshot version.
	SnapshotRaw(ctx context.Context, version int64) ([]byte, error)
	// LatestRoot returns the newest root version, staged or published, and its bytes
	// unless that version is known (then raw is nil).
	LatestRoot(ctx context.Context, known int64) (version int64, raw []byte, err error)
	// StagedRoles returns a batch of the role versions accepted but not yet in a snapshot,
	// ordered by role and ascending version (the snapshot lists the last one of each role):
	// every staged version of the roles that are not project roles (top-level roles and
	// claimed nodes: few, offline-signed) and of the roles named in with (the projects of
	// this publish's uploads, whose new versions must not be published before their older
	// staged ones), and of the other project roles those staged first, whole roles, about
	// limit versions (limit ≤ 0: all). more reports that staged project versions may be
	// left for the next publish.
	StagedRoles(ctx context.Context, limit int, with []string) (roles []StagedRole, more bool, err error)
	// UndelegatedProjects lists projects whose delegation is not yet published, among those
	// with a published role version or a role staged in this batch (named in staged): a
	// project created after StagedRoles read the batch waits for the next one, so no
	// snapshot delegates to a role it does not list.
	UndelegatedProjects(ctx context.Context, staged []string) ([]UndelegatedProject, error)
	// RCShards returns every node of the recently-claimed tree.
	RCShards(ctx context.Context) ([]ShardState, error)
	// DirtyRCShards returns the prefixes of the recently-claimed nodes flagged dirty.
	DirtyRCShards(ctx context.Context) ([]string, error)
	// NodeProjects returns the recently-claimed projects that the nodes roles delegate
	// directly, and those named in names, among projects with a published role version or
	// a role staged in this batch (named in staged).
	NodeProjects(ctx context.Context, roles, names, staged []string) ([]NodeProject, error)
	// SaveRCShards records new recently-claimed nodes (by prefix), the node of each
	// project in assign (project → node role), and clears the dirty flag of the roles in
	// clean.
	SaveRCShards(ctx context.Context, added []string, assign map[string]string, clean []string) error
	// ApplySubmissions stores complete role versions validated outside the transaction,
	// published in snapshot: under the projects' row locks, each whose project is still at
	// its Expected version (taking the submissions in order) is stored — its metadata row,
	// new release files, changed custom data, the project's role and published versions,
	// and its superseded proposals removed — with one statement per table. It returns one
	// error per submission: nil if stored, version_conflict otherwise.
	ApplySubmissions(ctx context.Context, subs []*Submission, snapshot int64) ([]error, error)
	// InsertSigned stores a version the server signed, published in snapshot.
	InsertSigned(ctx context.Context, m MetadataVersion, snapshot int64) error
	// MarkPublished records that roles were published in snapshot, and that the
	// delegations of projects are now published.
	MarkPublished(ctx context.Context, roles []StagedRole, projects []string, snapshot int64) error
	// SetHead moves the published head.
	SetHead(ctx context.Context, snapshot, timestamp int64) error
	// AppendAudit appends entries (Seq, PrevHash and Hash filled by the store from the
	// chain's last entry using AuditHash).
	AppendAudit(ctx context.Context, entries []api.LogEntry) error
	// MerkleLeaves returns every leaf of the Merkle snapshot as stored (the head
	// snapshot's), ordered by index.
	MerkleLeaves(ctx context.Context) ([]MerkleLeaf, error)
	// SaveMerkleLeaves records new and changed leaves, made by snapshot.
	SaveMerkleLeaves(ctx context.Context, leaves []MerkleLeaf, snapshot int64) error
	// NotifyPublished tells every replica that a new timestamp is committed.
	NotifyPublished(ctx context.Context, timestamp int64) error
	// Ping shows the database that the publisher is alive while it works outside the
	// transaction (signing): the session's idle-in-transaction limit, which frees the
	// publisher lock of a frozen replica, must not end a busy one.
	Ping(ctx context.Context) error
}

// pingEvery is how often a publisher busy outside its transaction pings it: well under the
// shortest idle-in-transaction limit cairnd accepts (store.Sessions).
const pingEvery = time.Second

// keepAlive runs fn, which must not use tx, while pinging tx every pingEvery.
func keepAlive[T any](ctx context.Context, tx PublishTx, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	var pingErr error
	for {
		select {
		case r := <-done:
			if r.err == nil && pingErr != nil {
				r.err = fmt.Errorf("the publish transaction ended while signing: %w", pingErr)
			}
			return r.v, r.err
		case <-t.C:
			if pingErr == nil {
				pingErr = tx.Ping(ctx)
			}
		}
	}
}

// signIn signs signed with s while keeping tx alive.
func signIn(ctx context.Context, tx PublishTx, signed []byte, s *OnlineSigner) ([]byte, error) {
	return keepAlive(ctx, tx, func() ([]byte, error) { return SignEnvelope(ctx, signed, s) })
}

// PublishStore runs fn in one transaction holding the publisher lock, waiting for it if
// another replica holds it. fn may be retried and must be idempotent.
type PublishStore interface {
	InPublishTx(ctx context.Context, fn func(ctx context.Context, tx PublishTx) error) error
}

// PublishResult says what one publish did.
type PublishResult struct {
	Published        bool
	SnapshotVersion  int64
	TimestampVersion int64
	Roles            int
	// Submitted is how many uploads the publish took from the queue (Publisher.Submit).
	Submitted   int
	NewProjects int
	Reason      string
	Duration    time.Duration
	// More says that staged role versions were left for the next publish (the batch
	// was capped at Publisher.MaxStagedPerPublish): Run publishes again at once.
	More bool
	// Signed are the versions this publish signed (with their sha256), committed when
	// the publish returns no error: the publishing replica serves them without reading
	// them back.
	Signed []MetadataVersion
}

// Publisher signs new snapshot and timestamp versions for everything staged (group
// commit), and re-signs online roles before they expire.
type Publisher struct {
	Store   PublishStore
	Signers Signers
	Now     func() time.Time
	Log     *slog.Logger
	// Observe, if set, is called after every publish attempt.
	Observe func(PublishResult, error)

	kick chan struct{}
	// mu serialises PublishOnce within this process (the advisory lock does so across
	// replicas); it guards the index.
	mu sync.Mutex
	// index mirrors the snapshot at indexVersion; -1 forces a reload from the database.
	index        *SnapshotIndex
	indexVersion int64
	snapRaw      []byte // the bytes of snapshot indexVersion
	snapSum      []byte // their sha256 (nil: not computed yet)
	// rootVersion is the root whose timestamp and snapshot keys tsSigner and snapSigner hold.
	rootVersion          int64
	tsSigner, snapSigner *OnlineSigner
	// rc mirrors the recently-claimed tree at indexVersion (loaded with the index).
	rc *rcTree
	// ownComplete is a version of the top recently-claimed node found to carry the
	// repository's own content (ownContentMissing).
	ownComplete int64
	// merkle mirrors the Merkle snapshot at indexVersion (loaded with the index).
	merkle *merkleState
	// queue holds the role versions uploaded since the last publish (Submit).
	queue submitQueue
	// MaxResignPerPublish bounds how many recently-claimed nodes that are only due for
	// re-signing one publish signs, so that a tree of thousands of nodes created together
	// does not stall one publish when they all reach half their lifetime.
	MaxResignPerPublish int
	// ShardCapacity is the most delegations a recently-claimed node may hold before it is
	// split; 0 means tufrepo.ShardCapacity.
	ShardCapacity int
	// PublishTimeout bounds one publish, lock wait included (0: no bound). A publish that
	// runs out rolls back; its uploads are answered that nothing was stored.
	PublishTimeout time.Duration
	// MaxStagedPerPublish bounds how many staged project role versions one publish takes
	// (≤ 0: all); the rest go to the publishes that follow at once. A backlog of any size
	// (a registry importing a million projects) is then published in steps of bounded
	// time and memory, each far inside PublishTimeout, instead of one publish that cannot
	// finish and restarts for ever.
	MaxStagedPerPublish int
	// stagedLimit is the batch the next publish takes when a publish ran out of time
	// (guarded by mu; 0: MaxStagedPerPublish). See batchLimit.
	stagedLimit int
	// GatherWindow bounds how long after the start of the last publish a kicked one
	// waits for the uploaders that publish answered (gather; 0: publish on every kick at
	// once).
	GatherWindow time.Duration
	// lastStart is when the last publish Run started, lastBatch how many uploads it took
	// plus how many were queued when it ended (Run's goroutine only; see gather).
	lastStart time.Time
	lastBatch int
}

// GatherFull is the most queued uploads a gather waits for: a batch this big already
// shares a publish's fixed cost well.
const GatherFull = 64

// DefaultGatherWindow is GatherWindow unless configured (BENCHMARKS.md run 20).
const DefaultGatherWindow = 100 * time.Millisecond

// minStagedPerPublish is the smallest batch a publisher that keeps running out of time
// shrinks to.
const minStagedPerPublish = 100

// batchLimit returns how many staged project role versions the next publish takes. A
// publish that runs out of PublishTimeout rolls back everything it did, and retrying the
// same batch on the same machine would run out again: the batch is halved after each
// such failure and doubled back after each success, so a backlog is published on a
// machine of any speed or load instead of failing for ever.
func (p *Publisher) batchLimit() int {
	if p.stagedLimit > 0 {
		return p.stagedLimit
	}
	return max(0, p.MaxStagedPerPublish)
}

// adaptBatch moves stagedLimit after a publish that took up to limit staged versions
// (0: all) and lasted took; timedOut says that it failed because its own PublishTimeout
// passed. The batch grows back only after a publish that used less than a quarter of its
// time: doubling after any success would run straight into the timeout again (measured at
// 1M projects on a loaded machine, BENCHMARKS.md run 12).
func (p *Publisher) adaptBatch(limit int, timedOut bool, took time.Duration) {
	switch {
	case timedOut:
		if limit <= 0 {
			limit = 2 * DefaultMaxStagedPerPublish // unbounded: the first bound is the default
		}
		p.stagedLimit = max(minStagedPerPublish, limit/2)
		p.Log.Warn("publish ran out of time; the next one takes a smaller batch of staged roles", "timeout", p.PublishTimeout, "batch", limit, "next_batch", p.stagedLimit)
	case p.stagedLimit > 0 && (p.PublishTimeout <= 0 || took < p.PublishTimeout/4):
		p.stagedLimit *= 2
		if p.MaxStagedPerPublish > 0 && p.stagedLimit >= p.MaxStagedPerPublish || p.stagedLimit >= 1<<24 {
			p.stagedLimit = 0
		}
	}
}

// DefaultMaxStagedPerPublish is MaxStagedPerPublish unless configured: at 1M projects a
// publish of 50,000 new roles takes seconds (BENCHMARKS.md), well inside the default
// one-minute PublishTimeout on a loaded machine.
const DefaultMaxStagedPerPublish = 50_000

// rcTree is the publisher's copy of the recently-claimed tree.
type rcTree struct {
	layout *ShardLayout
	nodes  map[string]*ShardState // by prefix
}

// signersFor returns the timestamp and snapshot signers that the newest root (published
// with this batch at the latest) delegates to: a new root that names standby keys switches
// the publisher to them in the very publish that makes it visible.
func (p *Publisher) signersFor(ctx context.Context, tx PublishTx) (ts, snap *OnlineSigner, err error) {
	v, raw, err := tx.LatestRoot(ctx, p.rootVersion)
	if err != nil {
		return nil, nil, err
	}
	if raw == nil && v == p.rootVersion && p.tsSigner != nil {
		return p.tsSigner, p.snapSigner, nil
	}
	root, err := metadata.Root().FromBytes(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing root version %d: %w", v, err)
	}
	if ts, snap, err = p.Signers.ForRoot(root); err != nil {
		return nil, nil, err
	}
	p.rootVersion, p.tsSigner, p.snapSigner = v, ts, snap
	return ts, snap, nil
}

// NewPublisher builds a publisher.
func NewPublisher(store PublishStore, signers Signers, now func() time.Time, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{Store: store, Signers: signers, Now: now, Log: log, kick: make(chan struct{}, 1), queue: submitQueue{full: make(chan struct{}, 1)}, indexVersion: -1, MaxResignPerPublish: 64, MaxStagedPerPublish: DefaultMaxStagedPerPublish}
}

// Kick asks for a publish soon. It never blocks: kicks that arrive while a publish runs
// are merged into the next one, which is what batches uploads.
func (p *Publisher) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run publishes on every kick and checks expiries every interval, until ctx ends. Failed
// publishes are retried with backoff up to interval. A publish that left staged roles for
// later (PublishResult.More) is followed by the next at once.
func (p *Publisher) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
			p.gather(ctx)
		case <-t.C:
		}
		p.lastStart = time.Now()
		res, err := p.PublishOnce(ctx)
		p.lastBatch = res.Submitted + p.queue.len()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.Log.Error("publish failed; will retry", "err", err, "retry_in", backoff)
			t.Reset(backoff)
			backoff = min(backoff*2, interval)
			continue
		}
		backoff = 50 * time.Millisecond
		if res.More {
			t.Reset(0)
			continue
		}
		t.Reset(interval)
	}
}

// gather holds a kicked publish back while uploads arrive concurrently, so that a
// publish's fixed cost (the snapshot and timestamp, their rows, the commit) is shared by
// more of them, as PostgreSQL's commit_delay does for WAL flushes. It waits only when the
// last publish took more than one upload, and only until the queue holds as many uploads
// as that publish took plus those that were queued when it ended (lastBatch: the
// uploaders it answered come back with their next version, so the batch gathers all of
// them instead of whoever arrived while the last publish ran), GatherFull are queued, or
// GatherWindow has passed since the last publish started, whichever comes first. A lone
// uploader (batches of one) is never held back, and no upload waits longer than the
// window for it.
func (p *Publisher) gather(ctx context.Context) {
	if p.GatherWindow <= 0 || p.lastBatch < 2 {
		return
	}
	wait := time.Until(p.lastStart.Add(p.GatherWindow))
	if wait <= 0 || !p.queue.arm(min(p.lastBatch, GatherFull)) {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-p.queue.full:
	}
}

// due reports whether a role that expires at exp, with lifetime life, must be re-signed:
// when less than half its lifetime is left.
func due(now, exp time.Time, life time.Duration) bool { return exp.Sub(now) < life/2 }

// PublishOnce runs one publish: if anything is staged or an online role is due, it signs
// new versions and commits them with the staged roles in one transaction.
func (p *Publisher) PublishOnce(ctx context.Context) (PublishResult, error) {
	return p.publishWith(ctx, 0)
}

// MaxForwardJump bounds how far PublishForward moves versions past the current timestamp:
// far more than any registry publishes in years (one publish a second is 3·10⁷ a year),
// so a larger floor is a typo, and every version stays well inside the integers that
// JavaScript clients (tuf-js) read exactly (2⁵³).
const MaxForwardJump = 1_000_000_000

// PublishForward is the recovery from a restore older than what clients have seen (TUF
// clients refuse a timestamp, snapshot or role version below the one they trust, §5.4–5.6):
// it signs, in one publish, a new snapshot and timestamp and a new version of every
// recently-claimed node, each at version floor or above (current + 1 where that is higher),
// so that every online-signed version clients may have seen is superseded. Roles the
// online keys do not sign (project roles, targets, claimed, root) are not touched: their
// lost versions must be uploaded again by their signers. floor must exceed the current
// timestamp version by at most MaxForwardJump; otherwise the publish is refused
// (api.CodeBadRequest) and nothing changes.
func (p *Publisher) PublishForward(ctx context.Context, floor int64) (PublishResult, error) {
	if floor < 1 {
		return PublishResult{}, api.Errorf(api.CodeBadRequest, "version floor %d: want a version above every timestamp and snapshot version clients may have seen", floor)
	}
	return p.publishWith(ctx, floor)
}

// publishWith runs one publish; floor > 0 makes it PublishForward's.
func (p *Publisher) publishWith(ctx context.Context, floor int64) (PublishResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	outer := ctx
	if p.PublishTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.PublishTimeout)
		defer cancel()
	}
	subs := p.queue.drain()
	var res PublishResult
	var refused map[*Submission]error
	limit := p.batchLimit()
	err := p.Store.InPublishTx(ctx, func(ctx context.Context, tx PublishTx) error {
		res, refused = PublishResult{}, map[*Submission]error{}
		r, err := p.publish(ctx, tx, subs, refused, floor, limit)
		res = r
		return err
	})
	if err != nil {
		p.indexVersion = -1
		err = fmt.Errorf("publishing: %w", err)
	}
	// Only this publish's own deadline says the batch was too big for the machine: not a
	// caller that gave up, nor a failed statement.
	p.adaptBatch(limit, err != nil && p.PublishTimeout > 0 && outer.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded), time.Since(start))
	res.Duration = time.Since(start)
	res.Submitted = len(subs)
	if p.Observe != nil {
		p.Observe(res, err)
	}
	finishSubmissions(subs, refused, res, err)
	return res, err
}

func (p *Publisher) publish(ctx context.Context, tx PublishTx, subs []*Submission, refused map[*Submission]error, floor int64, limit int) (PublishResult, error) {
	now := p.Now().UTC()
	head, err := tx.Head(ctx)
	if err != nil {
		return PublishResult{}, err
	}
	if floor > 0 {
		// Checked against the head inside the publisher lock, before anything is signed or
		// written: a refused floor leaves the repository as it was.
		switch {
		case floor <= head.TimestampVersion:
			return PublishResult{}, api.Errorf(api.CodeBadRequest, "version floor %d is not above the current timestamp version %d (snapshot %d): moving forward needs a version above every version clients may have seen, and above these", floor, head.TimestampVersion, head.SnapshotVersion)
		case floor-head.TimestampVersion > MaxForwardJump:
			return PublishResult{}, api.Errorf(api.CodeBadRequest, "version floor %d is more than %d versions past the current timestamp version %d: a typo? Give the highest version clients may have seen plus a margin", floor, MaxForwardJump, head.TimestampVersion)
		}
	}
	if p.indexVersion != head.SnapshotVersion || p.rc == nil || p.merkle == nil {
		raw, err := tx.SnapshotRaw(ctx, head.SnapshotVersion)
		if err != nil {
			return PublishResult{}, err
		}
		idx, _, err := ParseSnapshot(raw)
		if err != nil {
			return PublishResult{}, err
		}
		rc, err := loadRCTree(ctx, tx, p.capacity())
		if err != nil {
			return PublishResult{}, err
		}
		leaves, err := tx.MerkleLeaves(ctx)
		if err != nil {
			return PublishResult{}, err
		}
		tree, leafIdx, err := BuildMerkleTree(head.SnapshotVersion, leaves)
		if err != nil {
			return PublishResult{}, err
		}
		if tree.Size() != uint64(idx.Len()) {
			return PublishResult{}, fmt.Errorf("the Merkle snapshot has %d leaves but snapshot %d lists %d roles: the merkle_leaves table is out of step (re-run the migration's backfill)", tree.Size(), head.SnapshotVersion, idx.Len())
		}
		p.index, p.indexVersion, p.snapRaw, p.snapSum, p.rc = idx, head.SnapshotVersion, raw, nil, rc
		p.merkle = &merkleState{tree: tree, index: leafIdx}
	}
	// From here on the index and the tree are changed in place; a failure resets
	// indexVersion, which reloads both.
	p.indexVersion = -1
	subProjects := make([]string, len(subs))
	for i, s := range subs {
		subProjects[i] = s.Project
	}
	staged, more, err := tx.StagedRoles(ctx, limit, subProjects)
	if err != nil {
		return PublishResult{}, err
	}
	// Uploads queued in memory are stored now, already published in the next snapshot.
	uploaded, err := applySubmissions(ctx, tx, subs, head.SnapshotVersion+1, refused)
	if err != nil {
		return PublishResult{}, err
	}
	stagedNames := make([]string, 0, len(staged)+len(uploaded))
	for _, s := range staged {
		stagedNames = append(stagedNames, s.Role)
	}
	for _, s := range uploaded {
		stagedNames = append(stagedNames, s.Role)
	}
	newProjects, err := tx.UndelegatedProjects(ctx, stagedNames)
	if err != nil {
		return PublishResult{}, err
	}
	if floor > 0 {
		// Every node is re-signed: a client may have seen any of them at a version the
		// restore lost.
		for _, st := range p.rc.nodes {
			st.Dirty = true
		}
	}
	plan, err := p.planRC(ctx, tx, now, newProjects, stagedNames)
	if err != nil {
		return PublishResult{}, err
	}
	plan.floor = floor
	needSnap := floor > 0 || len(staged) > 0 || len(uploaded) > 0 || len(newProjects) > 0 || len(plan.dirty) > 0 || due(now, head.SnapshotExpires, SnapshotExpiry)
	needTS := needSnap || due(now, head.TimestampExpires, TimestampExpiry)
	if !needTS {
		p.indexVersion = head.SnapshotVersion
		return PublishResult{SnapshotVersion: head.SnapshotVersion, TimestampVersion: head.TimestampVersion}, nil
	}

	tsSigner, snapSigner, err := p.signersFor(ctx, tx)
	if err != nil {
		return PublishResult{}, err
	}
	res := PublishResult{Published: true, SnapshotVersion: head.SnapshotVersion, TimestampVersion: max(head.TimestampVersion+1, floor), Roles: len(staged) + len(uploaded), NewProjects: len(newProjects), More: more}
	var audit []api.LogEntry
	snapV := head.SnapshotVersion
	if needSnap {
		snapV = max(snapV+1, floor)
	}
	// leaves collects what this publish changes in the Merkle snapshot, in audit order.
	leaves := newLeafBatch(p.merkle)
	// sign inserts a version the server signed and logs it, hashing its bytes once.
	sign := func(role string, v int64, raw []byte, exp time.Time) ([]byte, error) {
		sum := sha256.Sum256(raw)
		m := MetadataVersion{Role: role, Version: v, Raw: raw, Expires: exp, SHA256: sum[:]}
		if err := tx.InsertSigned(ctx, m, snapV); err != nil {
			return nil, err
		}
		if err := leaves.set(role, v, int64(len(raw)), sum[:]); err != nil {
			return nil, err
		}
		res.Signed = append(res.Signed, m)
		audit = append(audit, api.LogEntry{Action: api.ActionSigned, Role: role, Version: v, Length: int64(len(raw)), SHA256: hex.EncodeToString(sum[:]), Snapshot: snapV, Time: AuditTime(now)})
		return sum[:], nil
	}
	for _, s := range slices.Concat(staged, uploaded) {
		// A staged root is published with this snapshot but is not listed in it.
		if s.Role != RoleRoot {
			p.index.Set(s.Role, s.Version, s.Length)
			if err := leaves.set(s.Role, s.Version, s.Length, s.SHA256); err != nil {
				return res, err
			}
		}
		audit = append(audit, api.LogEntry{Action: api.ActionAccepted, Role: s.Role, Version: s.Version, Length: s.Length, SHA256: hex.EncodeToString(s.SHA256), Snapshot: snapV, Time: AuditTime(now)})
	}
	if err := p.signRC(ctx, tx, now, plan, sign); err != nil {
		return res, err
	}
	snapRaw, snapSum := p.snapRaw, p.snapSum
	if needSnap {
		// The Merkle snapshot moves with the classic one, in the same transaction, and
		// the timestamp below commits to both.
		if err := leaves.apply(snapV, now); err != nil {
			return res, err
		}
		if err := tx.SaveMerkleLeaves(ctx, leaves.rows, snapV); err != nil {
			return res, err
		}
		exp := now.Add(SnapshotExpiry).Truncate(time.Second)
		raw, err := signIn(ctx, tx, p.index.EncodeSigned(snapV, exp), snapSigner)
		if err != nil {
			return res, err
		}
		if snapSum, err = sign(RoleSnapshot, snapV, raw, exp); err != nil {
			return res, err
		}
		snapRaw = raw
		res.SnapshotVersion = snapV
	}
	if snapSum == nil {
		sum := sha256.Sum256(snapRaw)
		snapSum = sum[:]
	}
	tsExp := now.Add(TimestampExpiry).Truncate(time.Second)
	tree := p.merkle.tree.Root()
	tsSigned, err := buildTimestamp(res.TimestampVersion, snapV, int64(len(snapRaw)), snapSum, tsExp, &tree)
	if err != nil {
		return res, err
	}
	tsRaw, err := signIn(ctx, tx, tsSigned, tsSigner)
	if err != nil {
		return res, err
	}
	if _, err := sign(RoleTimestamp, res.TimestampVersion, tsRaw, tsExp); err != nil {
		return res, err
	}
	names := make([]string, len(newProjects))
	for i, np := range newProjects {
		names[i] = np.Name
	}
	if err := tx.MarkPublished(ctx, staged, names, snapV); err != nil {
		return res, err
	}
	if err := tx.SetHead(ctx, snapV, res.TimestampVersion); err != nil {
		return res, err
	}
	if err := tx.AppendAudit(ctx, audit); err != nil {
		return res, err
	}
	if err := tx.NotifyPublished(ctx, res.TimestampVersion); err != nil {
		return res, err
	}
	switch {
	case len(staged) > 0 || len(uploaded) > 0 || len(newProjects) > 0:
		res.Reason = "staged"
	case floor > 0:
		res.Reason = "forward"
	case needSnap:
		res.Reason = "refresh-snapshot"
	default:
		res.Reason = "refresh-timestamp"
	}
	p.indexVersion, p.snapRaw, p.snapSum = snapV, snapRaw, snapSum
	return res, nil
}

// BuildTimestamp returns the canonical signed bytes of a timestamp that points at the
// snapshot file snapRaw (version, length and sha256), without a Merkle snapshot.
func BuildTimestamp(version, snapVersion int64, snapRaw []byte, expires time.Time) ([]byte, error) {
	sum := sha256.Sum256(snapRaw)
	return buildTimestamp(version, snapVersion, int64(len(snapRaw)), sum[:], expires, nil)
}

// BuildMerkleTimestamp is BuildTimestamp with the Merkle snapshot tree in the custom
// field merkle.FieldName.
func BuildMerkleTimestamp(version, snapVersion int64, snapRaw []byte, expires time.Time, tree merkle.Root) ([]byte, error) {
	sum := sha256.Sum256(snapRaw)
	return buildTimestamp(version, snapVersion, int64(len(snapRaw)), sum[:], expires, &tree)
}

func buildTimestamp(version, snapVersion, length int64, sum []byte, expires time.Time, tree *merkle.Root) ([]byte, error) {
	ts := metadata.Timestamp(expires.UTC().Truncate(time.Second))
	ts.Signed.SpecVersion = SpecVersion
	ts.Signed.Version = version
	mf := metadata.MetaFile(snapVersion)
	mf.Length = length
	mf.Hashes = metadata.Hashes{"sha256": sum}
	ts.Signed.Meta = map[string]*metadata.MetaFiles{MetaName(RoleSnapshot): mf}
	if tree != nil {
		// A custom field in "signed": covered by the signature, kept and ignored by
		// standard clients (TUF spec: unrecognised fields), read by Cairn's client.
		ts.Signed.UnrecognizedFields = map[string]any{merkle.FieldName: tree.Field()}
	}
	return Canonical(ts.Signed)
}

// InitialOnline signs version 1 of recently-claimed, snapshot and timestamp around the
// offline metadata of a new repository.
func InitialOnline(ctx context.Context, off *OfflineMetadata, s Signers, now time.Time) (rc, snap, ts MetadataVersion, err error) {
	now = now.UTC()
	rcExp := now.Add(RecentlyClaimedExpiry).Truncate(time.Second)
	signed, err := BuildShardNode(1, rcExp, s.rcKeys(), ShardNode{Tree: RoleRecentlyClaimed})
	if err != nil {
		return rc, snap, ts, err
	}
	rcRaw, err := SignEnvelope(ctx, signed, s.RecentlyClaimed)
	if err != nil {
		return rc, snap, ts, err
	}
	idx := &SnapshotIndex{}
	idx.Set(RoleTargets, 1, int64(len(off.Targets)))
	idx.Set(RoleClaimed, 1, int64(len(off.Claimed)))
	idx.Set(RoleRecentlyClaimed, 1, int64(len(rcRaw)))
	snapExp := now.Add(SnapshotExpiry).Truncate(time.Second)
	snapRaw, err := SignEnvelope(ctx, idx.EncodeSigned(1, snapExp), s.Snapshot)
	if err != nil {
		return rc, snap, ts, err
	}
	tsExp := now.Add(TimestampExpiry).Truncate(time.Second)
	leaves, err := InitialMerkleLeaves(off, rcRaw)
	if err != nil {
		return rc, snap, ts, err
	}
	tree, _, err := BuildMerkleTree(1, leaves)
	if err != nil {
		return rc, snap, ts, err
	}
	tsSigned, err := BuildMerkleTimestamp(1, 1, snapRaw, tsExp, tree.Root())
	if err != nil {
		return rc, snap, ts, err
	}
	tsRaw, err := SignEnvelope(ctx, tsSigned, s.Timestamp)
	if err != nil {
		return rc, snap, ts, err
	}
	return MetadataVersion{Role: RoleRecentlyClaimed, Version: 1, Raw: rcRaw, Expires: rcExp},
		MetadataVersion{Role: RoleSnapshot, Version: 1, Raw: snapRaw, Expires: snapExp},
		MetadataVersion{Role: RoleTimestamp, Version: 1, Raw: tsRaw, Expires: tsExp}, nil
}
