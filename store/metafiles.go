package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/jackc/pgx/v5"
)

// MetaFiles keeps the bytes of large metadata versions outside PostgreSQL rows, by sha256.
// A PostgreSQL bytea of 4.7 MB costs ~70–100 ms to insert (TOAST: thousands of chunk
// tuples, their index entries and WAL); the same bytes written to a file and synced take
// 6–8 ms (BENCHMARKS.md §3).
type MetaFiles interface {
	// WriteMeta stores raw under its sha256 and returns once the bytes are durable.
	WriteMeta(ctx context.Context, sum, raw []byte) error
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
	if err != nil {
		return nil, fmt.Errorf("reading %s version %d: %w", role, version, err)
	}
	if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != hex.EncodeToString(sum) {
		return nil, fmt.Errorf("reading %s version %d: the file of sha256 %x holds other bytes (%x)", role, version, sum, got)
	}
	return b, nil
}

func (b *FSBlobs) metaPath(sum []byte) string {
	return filepath.Join(b.Dir, "metadata", hex.EncodeToString(sum))
}

// WriteMeta implements MetaFiles: <dir>/metadata/<hex sha256>, written through a synced
// temporary file renamed into place, with the directory synced after the rename.
func (b *FSBlobs) WriteMeta(ctx context.Context, sum, raw []byte) error {
	dst := b.metaPath(sum)
	if st, err := os.Stat(dst); err == nil && st.Size() == int64(len(raw)) {
		return nil // content-addressed: the same bytes are already there
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating metadata directory: %w", err)
	}
	// Locked until it is renamed into place, so that garbage collection of tmp/ leaves it
	// alone (RemoveAbandonedTemp).
	tmp, err := b.createLockedTemp("meta-*")
	if err != nil {
		return fmt.Errorf("creating metadata file: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := tmp.Write(raw); err != nil {
		return fmt.Errorf("writing metadata file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing metadata file: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("storing metadata file: %w", err)
	}
	return syncDir(dir)
}

// ReadMeta implements MetaFiles.
func (b *FSBlobs) ReadMeta(ctx context.Context, sum []byte) ([]byte, error) {
	raw, err := os.ReadFile(b.metaPath(sum))
	if err != nil {
		return nil, fmt.Errorf("reading metadata file: %w", err)
	}
	return raw, nil
}

// RemoveMeta implements MetaFiles.
func (b *FSBlobs) RemoveMeta(ctx context.Context, sum []byte) error {
	if err := os.Remove(b.metaPath(sum)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing metadata file: %w", err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
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
func (db *DB) RemoveOrphanMeta(ctx context.Context, b *FSBlobs, grace time.Duration, now time.Time, dryRun bool) (int, error) {
	dir := filepath.Join(b.Dir, "metadata")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing metadata files: %w", err)
	}
	n := 0
	for _, e := range entries {
		sum, err := hex.DecodeString(e.Name())
		if err != nil || len(sum) != sha256.Size {
			continue
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < grace {
			continue
		}
		var named bool
		if err := db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM metadata WHERE sha256 = $1 AND stored = 'file')`, sum).Scan(&named); err != nil {
			return n, fmt.Errorf("checking metadata file %s: %w", e.Name(), err)
		}
		if named {
			continue
		}
		n++
		if !dryRun {
			if err := b.RemoveMeta(ctx, sum); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}
