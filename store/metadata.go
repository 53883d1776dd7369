package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// publisherLockID is the advisory lock that makes one publisher at a time across replicas.
const publisherLockID int64 = 0x636169726e707562 // "cairnpub"

// Notification channels.
const (
	ChannelPublished = "cairn_published"
	ChannelStaged    = "cairn_staged"
	// ChannelTokens carries the ID of a token whose record changed (migration 00008).
	ChannelTokens = "cairn_tokens"
)

// ErrNotBootstrapped is returned when the repository has no metadata yet.
var ErrNotBootstrapped = api.Errorf(api.CodeNotBootstrapped, "the repository has not been bootstrapped: run `cairnd bootstrap` or `cairnd serve --dev`")

// Bootstrapped reports whether the database holds a repository.
func (db *DB) Bootstrapped(ctx context.Context) (bool, error) {
	var n int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM repo_state`).Scan(&n); err != nil {
		return false, fmt.Errorf("reading repository state: %w", err)
	}
	return n > 0, nil
}

// OnlineKeys returns the online key IDs recorded at bootstrap (role → key ID).
func (db *DB) OnlineKeys(ctx context.Context) (map[string]string, error) {
	var raw []byte
	err := db.Pool.QueryRow(ctx, `SELECT online_keys FROM repo_state WHERE id = 1`).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotBootstrapped
	}
	if err != nil {
		return nil, fmt.Errorf("reading online keys: %w", err)
	}
	m := map[string]string{}
	return m, json.Unmarshal(raw, &m)
}

// Bootstrap stores a new repository: the offline metadata from the ceremony and the first
// online versions. It refuses a database that is already bootstrapped.
func (db *DB) Bootstrap(ctx context.Context, off *tufrepo.OfflineMetadata, rc, snap, ts tufrepo.MetadataVersion, onlineKeys map[string]string, now time.Time) error {
	keys, err := json.Marshal(onlineKeys)
	if err != nil {
		return err
	}
	offExp := func(raw []byte) (time.Time, error) {
		var env struct {
			Signed struct {
				Expires time.Time `json:"expires"`
			} `json:"signed"`
		}
		err := json.Unmarshal(raw, &env)
		return env.Signed.Expires, err
	}
	return db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, publisherLockID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO repo_state (id, online_keys, snapshot_version, timestamp_version) VALUES (1, $1, 1, 1) ON CONFLICT DO NOTHING`, keys)
		if err != nil {
			return fmt.Errorf("recording bootstrap: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return api.Errorf(api.CodeAlreadyBootstrapped, "the database is already bootstrapped; refusing to overwrite it (use a new, empty database)")
		}
		var entries []api.LogEntry
		for _, m := range []struct {
			role   string
			raw    []byte
			action string
		}{{tufrepo.RoleRoot, off.Root, api.ActionAccepted}, {tufrepo.RoleTargets, off.Targets, api.ActionAccepted}, {tufrepo.RoleClaimed, off.Claimed, api.ActionAccepted}} {
			exp, err := offExp(m.raw)
			if err != nil {
				return fmt.Errorf("reading expiry of %s: %w", m.role, err)
			}
			if err := insertMetadata(ctx, tx, m.role, 1, m.raw, exp, m.action, 1); err != nil {
				return err
			}
			entries = append(entries, logEntry(m.action, m.role, 1, m.raw, 1, now))
		}
		for _, m := range []tufrepo.MetadataVersion{rc, snap, ts} {
			if err := insertMetadata(ctx, tx, m.Role, m.Version, m.Raw, m.Expires, api.ActionSigned, 1); err != nil {
				return err
			}
			entries = append(entries, logEntry(api.ActionSigned, m.Role, m.Version, m.Raw, 1, now))
		}
		leaves, err := tufrepo.InitialMerkleLeaves(off, rc.Raw)
		if err != nil {
			return err
		}
		if err := saveMerkleLeaves(ctx, tx, leaves, 1); err != nil {
			return err
		}
		return appendAudit(ctx, tx, entries)
	})
}

func logEntry(action, role string, version int64, raw []byte, snapshot int64, now time.Time) api.LogEntry {
	sum := sha256.Sum256(raw)
	return api.LogEntry{Action: action, Role: role, Version: version, Length: int64(len(raw)), SHA256: hex.EncodeToString(sum[:]), Snapshot: snapshot, Time: tufrepo.AuditTime(now)}
}

func insertMetadata(ctx context.Context, tx pgx.Tx, role string, version int64, raw []byte, expires time.Time, action string, snapshot any) error {
	sum := sha256.Sum256(raw)
	return insertMetadataSum(ctx, tx, role, version, raw, sum[:], expires, action, snapshot)
}

func insertMetadataSum(ctx context.Context, tx pgx.Tx, role string, version int64, raw, sum []byte, expires time.Time, action string, snapshot any) error {
	_, err := tx.Exec(ctx, `INSERT INTO metadata (role, version, raw, length, sha256, expires, action, snapshot_version) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
		role, version, raw, len(raw), sum, expires, action, snapshot)
	if isUniqueViolation(err) {
		return api.Errorf(api.CodeVersionConflict, "%s version %d already exists", role, version)
	}
	if err != nil {
		return fmt.Errorf("storing %s version %d: %w", role, version, err)
	}
	return nil
}

func appendAudit(ctx context.Context, tx pgx.Tx, entries []api.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	var seq int64
	var prev []byte
	err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if errors.Is(err, pgx.ErrNoRows) {
		seq, prev = 0, []byte{}
	} else if err != nil {
		return fmt.Errorf("reading audit log head: %w", err)
	}
	n := len(entries)
	seqs, versions, lengths, snaps := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	actions, roles := make([]string, n), make([]string, n)
	sums, prevs, hashes := make([][]byte, n), make([][]byte, n), make([][]byte, n)
	ats := make([]time.Time, n)
	for i, e := range entries {
		seq++
		e.Seq = seq
		e.PrevHash = hex.EncodeToString(prev)
		h := tufrepo.AuditHash(prev, e)
		sums[i], _ = hex.DecodeString(e.SHA256)
		seqs[i], actions[i], roles[i], versions[i], lengths[i], snaps[i], ats[i], prevs[i], hashes[i] = e.Seq, e.Action, e.Role, e.Version, e.Length, e.Snapshot, e.Time, prev, h
		prev = h
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit_log (seq, action, role, version, length, sha256, snapshot, at, prev_hash, hash)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bytea[], $7::bigint[], $8::timestamptz[], $9::bytea[], $10::bytea[])`,
		seqs, actions, roles, versions, lengths, sums, snaps, ats, prevs, hashes)
	if err != nil {
		return fmt.Errorf("appending to audit log: %w", err)
	}
	return nil
}

// Metadata is one published metadata version.
type Metadata struct {
	Role     string
	Version  int64
	Raw      []byte
	Expires  time.Time
	Snapshot int64
}

// PublishedMetadata returns a published version of role, or a not_found *api.Error.
func (db *DB) PublishedMetadata(ctx context.Context, role string, version int64) (*Metadata, error) {
	m := &Metadata{Role: role, Version: version}
	var stored string
	var sum []byte
	err := db.Pool.QueryRow(ctx, `SELECT raw, stored, sha256, expires, snapshot_version FROM metadata WHERE role = $1 AND version = $2 AND snapshot_version IS NOT NULL`, role, version).Scan(&m.Raw, &stored, &sum, &m.Expires, &m.Snapshot)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, api.Errorf(api.CodeNotFound, "no published version %d of role %q", version, role)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s version %d: %w", role, version, err)
	}
	if m.Raw, err = db.metaBytes(ctx, role, version, m.Raw, stored, sum); err != nil {
		return nil, err
	}
	return m, nil
}

// LatestPublished returns the newest published version of role.
func (db *DB) LatestPublished(ctx context.Context, role string) (*Metadata, error) {
	m := &Metadata{Role: role}
	var stored string
	var sum []byte
	err := db.Pool.QueryRow(ctx, `SELECT version, raw, stored, sha256, expires, snapshot_version FROM metadata WHERE role = $1 AND snapshot_version IS NOT NULL ORDER BY version DESC LIMIT 1`, role).Scan(&m.Version, &m.Raw, &stored, &sum, &m.Expires, &m.Snapshot)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotBootstrapped
	}
	if err != nil {
		return nil, fmt.Errorf("reading latest %s: %w", role, err)
	}
	if m.Raw, err = db.metaBytes(ctx, role, m.Version, m.Raw, stored, sum); err != nil {
		return nil, err
	}
	return m, nil
}

// LatestPublishedVersion returns the version and expiry of the newest published version
// of role, without its bytes.
func (db *DB) LatestPublishedVersion(ctx context.Context, role string) (int64, time.Time, error) {
	var v int64
	var exp time.Time
	err := db.Pool.QueryRow(ctx, `SELECT version, expires FROM metadata WHERE role = $1 AND snapshot_version IS NOT NULL ORDER BY version DESC LIMIT 1`, role).Scan(&v, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, exp, ErrNotBootstrapped
	}
	if err != nil {
		return 0, exp, fmt.Errorf("reading latest %s version: %w", role, err)
	}
	return v, exp, nil
}

// Heads returns the published snapshot and timestamp versions.
func (db *DB) Heads(ctx context.Context) (snapshot, timestamp int64, err error) {
	err = db.Pool.QueryRow(ctx, `SELECT snapshot_version, timestamp_version FROM repo_state WHERE id = 1`).Scan(&snapshot, &timestamp)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, ErrNotBootstrapped
	}
	return snapshot, timestamp, err
}

// InPublishTx implements tufrepo.PublishStore.
func (db *DB) InPublishTx(ctx context.Context, fn func(ctx context.Context, tx tufrepo.PublishTx) error) error {
	for attempt := 0; ; attempt++ {
		err := db.publishOnce(ctx, fn)
		var pgErr *pgconn.PgError
		if err != nil && errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") && attempt < 5 {
			continue
		}
		return err
	}
}

// publishOnce runs fn in one transaction under the publisher lock. It commits itself
// rather than through InTx so that a failed COMMIT is told apart from a failed publish.
func (db *DB) publishOnce(ctx context.Context, fn func(ctx context.Context, tx tufrepo.PublishTx) error) error {
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning the publish transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, publisherLockID); err != nil {
		return fmt.Errorf("taking the publisher lock: %w", err)
	}
	// The connection is pinged whenever the publisher leaves it unused for a while (liveTx):
	// however long its Go work between two statements (a batch of thousands of roles, a
	// 50 MB snapshot), the idle-in-transaction limit ends only a frozen publisher.
	live := newLiveTx(ctx, tx)
	defer live.stopPinging()
	p := publishTx{tx: live, db: db, writes: &sync.WaitGroup{}, writeErr: &firstErr{}, lazy: &lazySyncs{}}
	err = fn(ctx, p)
	// The metadata files written in the background must be durable before the rows that
	// name them commit. The transaction is pinged meanwhile: a slow disk must not look
	// like a frozen publisher to the idle-in-transaction limit (Sessions).
	if werr := p.waitWrites(ctx); err == nil {
		err = werr
	}
	if err == nil {
		err = p.writeErr.get()
	}
	live.stopPinging()
	if err == nil && live.pingErr != nil {
		err = fmt.Errorf("the publish transaction ended while the publisher worked: %w", live.pingErr)
	}
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		// PostgreSQL may have committed before the connection failed: nobody can say.
		return fmt.Errorf("%w: %w", tufrepo.ErrCommitUnknown, err)
	}
	// Files the rows can rebuild are synced now, off the publish's path; should the
	// machine go down first, rebuildMeta makes them again from the rows. A failed sync is
	// left to that too: the bytes stay readable until the page cache is lost.
	if sums := p.lazy.take(); len(sums) > 0 {
		go func() {
			for _, sum := range sums {
				_ = db.meta.SyncMeta(context.WithoutCancel(ctx), sum)
			}
		}()
	}
	return nil
}

// lazySyncs are the metadata files a publish wrote without syncing them.
type lazySyncs struct {
	mu   sync.Mutex
	sums [][]byte
}

func (l *lazySyncs) add(sum []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sums = append(l.sums, sum)
}

func (l *lazySyncs) take() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sums
	l.sums = nil
	return s
}

type publishTx struct {
	tx pgx.Tx
	db *DB
	// writes are the metadata files being written while the publish goes on; writeErr
	// the first of their errors.
	writes   *sync.WaitGroup
	writeErr *firstErr
	// lazy are the files written without a sync, synced after the commit.
	lazy *lazySyncs
}

// firstErr keeps the first error set.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (f *firstErr) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstErr) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (p publishTx) Head(ctx context.Context) (tufrepo.Head, error) {
	var h tufrepo.Head
	err := p.tx.QueryRow(ctx, `
		SELECT s.snapshot_version, s.timestamp_version, sn.expires, ts.expires
		FROM repo_state s
		JOIN metadata sn ON sn.role = 'snapshot' AND sn.version = s.snapshot_version
		JOIN metadata ts ON ts.role = 'timestamp' AND ts.version = s.timestamp_version
		WHERE s.id = 1`).Scan(&h.SnapshotVersion, &h.TimestampVersion, &h.SnapshotExpires, &h.TimestampExpires)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, ErrNotBootstrapped
	}
	if err != nil {
		return h, fmt.Errorf("reading published head: %w", err)
	}
	return h, nil
}

func (p publishTx) SnapshotRaw(ctx context.Context, version int64) ([]byte, error) {
	var raw, sum []byte
	var stored string
	if err := p.tx.QueryRow(ctx, `SELECT raw, stored, sha256 FROM metadata WHERE role = 'snapshot' AND version = $1`, version).Scan(&raw, &stored, &sum); err != nil {
		return nil, fmt.Errorf("reading snapshot %d: %w", version, err)
	}
	return p.db.metaBytes(ctx, tufrepo.RoleSnapshot, version, raw, stored, sum)
}

func (p publishTx) LatestRoot(ctx context.Context, known int64) (int64, []byte, error) {
	var v int64
	if err := p.tx.QueryRow(ctx, `SELECT max(version) FROM metadata WHERE role = 'root'`).Scan(&v); err != nil {
		return 0, nil, fmt.Errorf("reading root version: %w", err)
	}
	if v == known {
		return v, nil, nil
	}
	var raw []byte
	if err := p.tx.QueryRow(ctx, `SELECT raw FROM metadata WHERE role = 'root' AND version = $1`, v).Scan(&raw); err != nil {
		return 0, nil, fmt.Errorf("reading root %d: %w", v, err)
	}
	return v, raw, nil
}

func (p publishTx) StagedRoles(ctx context.Context, limit int, with []string) ([]tufrepo.StagedRole, bool, error) {
	take := append(tufrepo.ReservedRoles(), with...)
	more := false
	if limit > 0 {
		// The project roles staged first, whole: every staged version of each (a role's
		// versions are few, and taking them all never leaves an older one behind a
		// published newer one, whatever order their transactions began in). Project names
		// start with a letter or digit (ValidateProjectName); shard nodes with '_'.
		rows, err := p.tx.Query(ctx, `SELECT role FROM metadata WHERE snapshot_version IS NULL AND role ~ '^[a-z0-9]' AND NOT role = ANY($1)
			ORDER BY created_at, role, version LIMIT $2`, take, limit)
		if err != nil {
			return nil, false, fmt.Errorf("listing staged project roles: %w", err)
		}
		first, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, false, fmt.Errorf("listing staged project roles: %w", err)
		}
		// A full page may be all there is: then the next publish finds nothing to do.
		more = len(first) == limit
		take = append(take, first...)
	}
	q := `SELECT role, version, length, sha256 FROM metadata WHERE snapshot_version IS NULL AND role = ANY($1)
		UNION ALL
		SELECT role, version, length, sha256 FROM metadata WHERE snapshot_version IS NULL AND NOT role = ANY($1) AND role !~ '^[a-z0-9]'`
	args := []any{take}
	if limit <= 0 {
		q, args = `SELECT role, version, length, sha256 FROM metadata WHERE snapshot_version IS NULL`, nil
	}
	rows, err := p.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("listing staged roles: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tufrepo.StagedRole, error) {
		var s tufrepo.StagedRole
		return s, r.Scan(&s.Role, &s.Version, &s.Length, &s.SHA256)
	})
	if err != nil {
		return nil, false, fmt.Errorf("listing staged roles: %w", err)
	}
	slices.SortFunc(out, func(a, b tufrepo.StagedRole) int {
		return cmp.Or(strings.Compare(a.Role, b.Role), cmp.Compare(a.Version, b.Version))
	})
	return out, more, nil
}

func (p publishTx) UndelegatedProjects(ctx context.Context, staged []string) ([]tufrepo.UndelegatedProject, error) {
	rows, err := p.tx.Query(ctx, `SELECT name, delegator FROM projects WHERE NOT delegated AND role_version > 0 AND (published_version > 0 OR name = ANY($1)) ORDER BY name`, staged)
	if err != nil {
		return nil, fmt.Errorf("listing new projects: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (tufrepo.UndelegatedProject, error) {
		var u tufrepo.UndelegatedProject
		return u, r.Scan(&u.Name, &u.Tree)
	})
}

func (p publishTx) RCShards(ctx context.Context) ([]tufrepo.ShardState, error) {
	rows, err := p.tx.Query(ctx, `
		SELECT s.prefix, coalesce(m.version, 0), coalesce(m.expires, 'epoch'::timestamptz), s.dirty,
		       (SELECT count(*) FROM projects p WHERE p.shard = s.role AND p.delegator = 'recently-claimed')
		FROM shards s
		LEFT JOIN LATERAL (SELECT version, expires FROM metadata WHERE role = s.role ORDER BY version DESC LIMIT 1) m ON true
		WHERE s.tree = 'recently-claimed'`)
	if err != nil {
		return nil, fmt.Errorf("reading the recently-claimed tree: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (tufrepo.ShardState, error) {
		var st tufrepo.ShardState
		return st, r.Scan(&st.Prefix, &st.Version, &st.Expires, &st.Dirty, &st.Direct)
	})
}

func (p publishTx) DirtyRCShards(ctx context.Context) ([]string, error) {
	rows, err := p.tx.Query(ctx, `SELECT prefix FROM shards WHERE dirty AND tree = 'recently-claimed'`)
	if err != nil {
		return nil, fmt.Errorf("reading recently-claimed nodes to re-sign: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (p publishTx) NodeProjects(ctx context.Context, roles, names, staged []string) ([]tufrepo.NodeProject, error) {
	rows, err := p.tx.Query(ctx, `
		SELECT coalesce(shard, ''), name, keys, keyids, threshold FROM projects
		WHERE delegator = 'recently-claimed' AND role_version > 0 AND (published_version > 0 OR name = ANY($3))
		  AND (shard = ANY($1) OR name = ANY($2))`, roles, names, staged)
	if err != nil {
		return nil, fmt.Errorf("reading the projects of recently-claimed nodes: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (tufrepo.NodeProject, error) {
		var np tufrepo.NodeProject
		var keys []byte
		if err := r.Scan(&np.Shard, &np.Name, &keys, &np.KeyIDs, &np.Threshold); err != nil {
			return np, err
		}
		return np, json.Unmarshal(keys, &np.Keys)
	})
}

func (p publishTx) SaveRCShards(ctx context.Context, added []string, assign map[string]string, clean []string) error {
	if len(added) > 0 {
		roles := make([]string, len(added))
		for i, a := range added {
			roles[i] = tufrepo.ShardRole(tufrepo.RoleRecentlyClaimed, a)
		}
		if _, err := p.tx.Exec(ctx, `INSERT INTO shards (role, tree, prefix) SELECT * FROM unnest($1::text[], array_fill('recently-claimed'::text, ARRAY[cardinality($1::text[])]), $2::text[])`, roles, added); err != nil {
			return fmt.Errorf("recording new recently-claimed nodes: %w", err)
		}
	}
	if len(assign) > 0 {
		names, roles := make([]string, 0, len(assign)), make([]string, 0, len(assign))
		for n, r := range assign {
			names, roles = append(names, n), append(roles, r)
		}
		if _, err := p.tx.Exec(ctx, `UPDATE projects p SET shard = a.role FROM unnest($1::text[], $2::text[]) AS a(name, role) WHERE p.name = a.name`, names, roles); err != nil {
			return fmt.Errorf("recording the nodes of projects: %w", err)
		}
	}
	if len(clean) > 0 {
		if _, err := p.tx.Exec(ctx, `UPDATE shards SET dirty = false WHERE role = ANY($1)`, clean); err != nil {
			return fmt.Errorf("clearing re-signed nodes: %w", err)
		}
	}
	return nil
}

func (p publishTx) InsertSigned(ctx context.Context, m tufrepo.MetadataVersion, snapshot int64) error {
	if p.db.meta != nil && len(m.Raw) >= p.db.metaMin {
		sum := m.SHA256
		if sum == nil {
			s := sha256.Sum256(m.Raw)
			sum = s[:]
		}
		// The bytes are written before the row that names them can commit (InPublishTx
		// waits for the write), overlapping the rest of the publish: a crash in between
		// leaves an unnamed file, never a published version without its bytes. A snapshot
		// can be rebuilt from the rows and its head (rebuildMeta), so its file is synced
		// after the commit, off the publish's path (a sync of 5 MB was most of the wait
		// for the commit at 100k projects); anything else is durable before the commit.
		var head []byte
		if m.Role == tufrepo.RoleSnapshot {
			head = EnvelopeHead(m.Raw)
		}
		durable := head == nil
		p.writes.Add(1)
		go func() {
			defer p.writes.Done()
			if err := p.db.meta.WriteMeta(ctx, sum, m.Raw, durable); err != nil {
				p.writeErr.set(fmt.Errorf("storing %s version %d: %w", m.Role, m.Version, err))
			}
		}()
		if !durable {
			p.lazy.add(sum)
		}
		_, err := p.tx.Exec(ctx, `INSERT INTO metadata (role, version, raw, stored, length, sha256, expires, action, snapshot_version, rebuild_head) VALUES ($1,$2,NULL,'file',$3,$4,$5,$6,$7,$8)`,
			m.Role, m.Version, len(m.Raw), sum, m.Expires, api.ActionSigned, snapshot, head)
		if isUniqueViolation(err) {
			return api.Errorf(api.CodeVersionConflict, "%s version %d already exists", m.Role, m.Version)
		}
		if err != nil {
			return fmt.Errorf("storing %s version %d: %w", m.Role, m.Version, err)
		}
		return nil
	}
	if m.SHA256 != nil {
		return insertMetadataSum(ctx, p.tx, m.Role, m.Version, m.Raw, m.SHA256, m.Expires, api.ActionSigned, snapshot)
	}
	return insertMetadata(ctx, p.tx, m.Role, m.Version, m.Raw, m.Expires, api.ActionSigned, snapshot)
}

func (p publishTx) MarkPublished(ctx context.Context, roles []tufrepo.StagedRole, projects []string, snapshot int64) error {
	if len(roles) > 0 {
		names := make([]string, len(roles))
		versions := make([]int64, len(roles))
		for i, r := range roles {
			names[i], versions[i] = r.Role, r.Version
		}
		if _, err := p.tx.Exec(ctx, `
			UPDATE metadata m SET snapshot_version = $3
			FROM unnest($1::text[], $2::bigint[]) AS s(role, version)
			WHERE m.role = s.role AND m.version = s.version`, names, versions, snapshot); err != nil {
			return fmt.Errorf("marking roles published: %w", err)
		}
	}
	// One statement, one new row version per project, for both what was published of it
	// and its delegation: at a batch of 50,000 new projects the cost is the rows written
	// (each with its index entries), not the join (BENCHMARKS.md run 12). The newest
	// version of each role is found here rather than by a GROUP BY over the unnest, whose
	// groups PostgreSQL cannot estimate (it guesses 200, and at a million rows spilled
	// and looped). GREATEST: an upload applied in this publish may have set a newer one.
	type change struct {
		version   int64
		delegated bool
	}
	changes := map[string]change{}
	for _, r := range roles {
		c := changes[r.Role]
		c.version = max(c.version, r.Version)
		changes[r.Role] = c
	}
	for _, n := range projects {
		c := changes[n]
		c.delegated = true
		changes[n] = c
	}
	if len(changes) == 0 {
		return nil
	}
	names, versions, delegated := make([]string, 0, len(changes)), make([]int64, 0, len(changes)), make([]bool, 0, len(changes))
	for n, c := range changes {
		names, versions, delegated = append(names, n), append(versions, c.version), append(delegated, c.delegated)
	}
	if _, err := p.tx.Exec(ctx, `
		UPDATE projects p SET published_version = GREATEST(p.published_version, u.version), delegated = p.delegated OR u.delegated
		FROM unnest($1::text[], $2::bigint[], $3::boolean[]) AS u(name, version, delegated)
		WHERE p.name = u.name`, names, versions, delegated); err != nil {
		return fmt.Errorf("recording published project versions and delegations: %w", err)
	}
	return nil
}

func (p publishTx) SetHead(ctx context.Context, snapshot, timestamp int64) error {
	_, err := p.tx.Exec(ctx, `UPDATE repo_state SET snapshot_version = $1, timestamp_version = $2 WHERE id = 1`, snapshot, timestamp)
	return err
}

func (p publishTx) AppendAudit(ctx context.Context, entries []api.LogEntry) error {
	return appendAudit(ctx, p.tx, entries)
}

// Ping implements tufrepo.PublishTx.
func (p publishTx) Ping(ctx context.Context) error {
	_, err := p.tx.Exec(ctx, `SELECT 1`)
	return err
}

// waitWrites waits for the background metadata file writes, pinging the transaction every
// second meanwhile.
func (p publishTx) waitWrites(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		p.writes.Wait()
		close(done)
	}()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var pingErr error
	for {
		select {
		case <-done:
			return pingErr
		case <-t.C:
			if pingErr == nil {
				pingErr = p.Ping(ctx)
			}
		}
	}
}

func (p publishTx) NotifyPublished(ctx context.Context, timestamp int64) error {
	_, err := p.tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ChannelPublished, fmt.Sprint(timestamp))
	return err
}

// AuditPage returns up to limit audit log entries with seq > after.
func (db *DB) AuditPage(ctx context.Context, after int64, limit int) ([]api.LogEntry, error) {
	rows, err := db.Pool.Query(ctx, `SELECT seq, action, role, version, length, sha256, snapshot, at, prev_hash, hash FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.LogEntry, error) {
		var e api.LogEntry
		var sum, prev, h []byte
		err := r.Scan(&e.Seq, &e.Action, &e.Role, &e.Version, &e.Length, &sum, &e.Snapshot, &e.Time, &prev, &h)
		e.SHA256, e.PrevHash, e.Hash = hex.EncodeToString(sum), hex.EncodeToString(prev), hex.EncodeToString(h)
		e.Time = e.Time.UTC()
		return e, err
	})
}
