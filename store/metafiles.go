package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
)

// MetaFiles keeps the bytes of large metadata versions outside PostgreSQL rows, by sha256.
// A PostgreSQL bytea of 4.7 MB costs ~70–100 ms to insert (TOAST: thousands of chunk
// tuples, their index entries and WAL); the same bytes written to a file and synced take
// 6–8 ms (BENCHMARKS.md §3).
type MetaFiles interface {
	// WriteMeta stores raw under its sha256. With durable it returns once the bytes are
	// durable; without, once they are readable by every replica, to be made durable by
	// SyncMeta (used for bytes the database can rebuild).
	WriteMeta(ctx context.Context, sum, raw []byte, durable bool) error
	// SyncMeta makes bytes written without durable durable.
	SyncMeta(ctx context.Context, sum []byte) error
	// ReadMeta returns the bytes stored under sum; an error wrapping fs.ErrNotExist if
	// there are none.
	ReadMeta(ctx context.Context, sum []byte) ([]byte, error)
	// RemoveMeta removes the bytes stored under sum; missing bytes are not an error.
	RemoveMeta(ctx context.Context, sum []byte) error
}

// DefaultMetaFileMin is the size from which signed metadata goes to MetaFiles.
const DefaultMetaFileMin = 256 << 10

// StoreMetadataIn makes the publisher keep signed metadata versions of at least min bytes
// in files (nil: everything in PostgreSQL rows, the default).
func (db *DB) StoreMetadataIn(files MetaFiles, min int) {
	db.meta, db.metaMin = files, min
}

// metaBytes returns the bytes of a metadata row: raw itself, or the file it names.
func (db *DB) metaBytes(ctx context.Context, role string, version int64, raw []byte, stored string, sum []byte) ([]byte, error) {
	switch stored {
	case "row":
		return raw, nil
	case "pruned":
		return nil, api.Errorf(api.CodePruned, "%s version %d is no longer kept: clients only ever need the current snapshot and the ones recent timestamps name; refresh timestamp.json", role, version)
	}
	if db.meta == nil {
		return nil, fmt.Errorf("reading %s version %d: its bytes are in a file, but this server has no metadata file store", role, version)
	}
	b, err := db.meta.ReadMeta(ctx, sum)
	if err == nil {
		if got := sha256.Sum256(b); !bytes.Equal(got[:], sum) {
			err = fmt.Errorf("the file of sha256 %x holds other bytes (%x)", sum, got)
		}
	}
	if err == nil {
		return b, nil
	}
	b, rerr := db.rebuildMeta(ctx, role, version, sum)
	if errors.Is(rerr, errNotRebuildable) {
		return nil, fmt.Errorf("reading %s version %d: %w", role, version, err)
	}
	if rerr != nil {
		return nil, fmt.Errorf("reading %s version %d: %w; rebuilding it from the database failed: %w", role, version, err, rerr)
	}
	return b, nil
}

var errNotRebuildable = errors.New("the database cannot rebuild these bytes")

// rebuildMeta rebuilds a snapshot file whose bytes were lost (the machine went down after
// the publish committed and before the file was synced) from the rows: the role versions
// published up to that snapshot and the file's head (its signatures). The result must
// have the sha256 the row names, or nothing is returned: the bytes served are always the
// bytes signed. The file is then written back, durably.
func (db *DB) rebuildMeta(ctx context.Context, role string, version int64, sum []byte) ([]byte, error) {
	if role != tufrepo.RoleSnapshot {
		return nil, errNotRebuildable
	}
	var head []byte
	var expires time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT rebuild_head, expires FROM metadata WHERE role = $1 AND version = $2`, role, version).Scan(&head, &expires); err != nil {
		return nil, fmt.Errorf("reading the snapshot's row: %w", err)
	}
	if head == nil {
		return nil, errNotRebuildable
	}
	rows, err := db.Pool.Query(ctx, `
		SELECT DISTINCT ON (role) role, version, length FROM metadata
		WHERE snapshot_version IS NOT NULL AND snapshot_version <= $1 AND role NOT IN ('root', 'timestamp', 'snapshot')
		ORDER BY role, version DESC`, version)
	if err != nil {
		return nil, fmt.Errorf("reading the role versions of snapshot %d: %w", version, err)
	}
	idx := &tufrepo.SnapshotIndex{}
	var name string
	var v, length int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &v, &length}, func() error {
		idx.Set(name, v, length)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading the role versions of snapshot %d: %w", version, err)
	}
	b := slices.Concat(head, idx.EncodeSigned(version, expires), []byte("}"))
	if got := sha256.Sum256(b); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("the rebuilt bytes have sha256 %x, not %x: the rows do not say what snapshot %d listed", got, sum, version)
	}
	// A damaged file of the same size would be taken for the good one: remove it first.
	if err := db.meta.RemoveMeta(ctx, sum); err != nil {
		return nil, err
	}
	if err := db.meta.WriteMeta(ctx, sum, b, true); err != nil {
		return nil, fmt.Errorf("writing the rebuilt file back: %w", err)
	}
	return b, nil
}

// EnvelopeHead returns the start of a metadata file made by tufrepo.Envelope up to its
// signed value ({"signatures":[…],"signed":), or nil if raw does not have that shape.
func EnvelopeHead(raw []byte) []byte {
	const mark = `],"signed":`
	if !bytes.HasPrefix(raw, []byte(`{"signatures":[`)) || !bytes.HasSuffix(raw, []byte("}")) {
		return nil
	}
	i := bytes.Index(raw, []byte(mark))
	if i < 0 {
		return nil
	}
	return raw[:i+len(mark)]
}

// PruneSnapshots drops the bytes of the snapshot versions no client can still ask for:
// those older than every snapshot named by a timestamp published in the last keep, and
// than the current one. Clients fetch the snapshot a timestamp names right after fetching
// that timestamp, and timestamp.json is cached for at most 5 seconds, so keep bounds how
// long a client may take between the two. The rows stay (version, length and sha256 are
// what the audit and transparency logs refer to); a pruned version is served as 410.
// It returns how many versions it pruned.
func (db *DB) PruneSnapshots(ctx context.Context, keep time.Duration, now time.Time) (int, error) {
	var pruned []struct {
		stored string
		sum    []byte
	}
	err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		pruned = pruned[:0]
		rows, err := tx.Query(ctx, `
			WITH floor AS (
				SELECT least(
					(SELECT snapshot_version FROM repo_state WHERE id = 1),
					coalesce((SELECT min(snapshot_version) FROM metadata WHERE role = 'timestamp' AND created_at >= $1), 9223372036854775807)) AS v),
			old AS (
				SELECT version, stored, sha256 FROM metadata, floor
				WHERE role = 'snapshot' AND stored <> 'pruned' AND version < floor.v
				FOR UPDATE OF metadata)
			UPDATE metadata m SET raw = NULL, stored = 'pruned' FROM old
			WHERE m.role = 'snapshot' AND m.version = old.version
			RETURNING old.stored, old.sha256`, now.Add(-keep))
		if err != nil {
			return fmt.Errorf("pruning snapshots: %w", err)
		}
		var stored string
		var sum []byte
		_, err = pgx.ForEachRow(rows, []any{&stored, &sum}, func() error {
			pruned = append(pruned, struct {
				stored string
				sum    []byte
			}{stored, slices.Clone(sum)})
			return nil
		})
		return err
	})
	if err != nil {
		return 0, err
	}
	// The files go after the commit: a crash before leaves files that no row names, which
	// RemoveOrphanMeta collects.
	for _, p := range pruned {
		if p.stored == "file" && db.meta != nil {
			if err := db.meta.RemoveMeta(ctx, p.sum); err != nil {
				return len(pruned), err
			}
		}
	}
	return len(pruned), nil
}

// RemoveOrphanMeta removes metadata files that no row names and that are older than grace:
// the bytes of a publish that crashed between writing them and its commit, or of a prune
// that crashed after its commit. It returns how many files it removed (or would, dryRun).
func (db *DB) RemoveOrphanMeta(ctx context.Context, m *blobstore.MetaDir, grace time.Duration, now time.Time, dryRun bool) (int, error) {
	files, err := m.List()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range files {
		if now.Sub(f.ModTime) < grace {
			continue
		}
		var named bool
		if err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM metadata WHERE sha256 = $1 AND stored = 'file')`, f.SHA256).Scan(&named); err != nil {
			return n, fmt.Errorf("checking metadata file %x: %w", f.SHA256, err)
		}
		if named {
			continue
		}
		n++
		if !dryRun {
			if err := m.RemoveMeta(ctx, f.SHA256); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}
