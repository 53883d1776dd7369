package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
)

// scanLeaf reads (idx, role, version, length, sha256).
func scanLeaf(r pgx.CollectableRow) (tufrepo.MerkleLeaf, error) {
	var l tufrepo.MerkleLeaf
	var idx int64
	var sum []byte
	if err := r.Scan(&idx, &l.Role, &l.Version, &l.Length, &sum); err != nil {
		return l, err
	}
	if idx < 0 || len(sum) != len(l.SHA256) {
		return l, fmt.Errorf("merkle leaf %d (%s): bad index or sha256", idx, l.Role)
	}
	l.Index = uint64(idx)
	copy(l.SHA256[:], sum)
	return l, nil
}

// MerkleLeaves implements tufrepo.PublishTx.
func (p publishTx) MerkleLeaves(ctx context.Context) ([]tufrepo.MerkleLeaf, error) {
	rows, err := p.tx.Query(ctx, `SELECT idx, role, version, length, sha256 FROM merkle_leaves ORDER BY idx`)
	if err != nil {
		return nil, fmt.Errorf("reading the Merkle snapshot: %w", err)
	}
	return pgx.CollectRows(rows, scanLeaf)
}

// SaveMerkleLeaves implements tufrepo.PublishTx: one statement for the whole batch.
func (p publishTx) SaveMerkleLeaves(ctx context.Context, leaves []tufrepo.MerkleLeaf, snapshot int64) error {
	return saveMerkleLeaves(ctx, p.tx, leaves, snapshot)
}

func saveMerkleLeaves(ctx context.Context, tx pgx.Tx, leaves []tufrepo.MerkleLeaf, snapshot int64) error {
	if len(leaves) == 0 {
		return nil
	}
	idx := make([]int64, len(leaves))
	roles := make([]string, len(leaves))
	versions := make([]int64, len(leaves))
	lengths := make([]int64, len(leaves))
	sums := make([][]byte, len(leaves))
	for i, l := range leaves {
		idx[i], roles[i], versions[i], lengths[i], sums[i] = int64(l.Index), l.Role, l.Version, l.Length, l.SHA256[:]
	}
	// A leaf keeps its role: an update of an index names the same role, so a mismatch
	// would violate the role's uniqueness or be caught by the WHERE below.
	tag, err := tx.Exec(ctx, `
		INSERT INTO merkle_leaves (idx, role, version, length, sha256, snapshot_version)
		SELECT u.idx, u.role, u.version, u.length, u.sha256, $6
		FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bytea[]) AS u(idx, role, version, length, sha256)
		ON CONFLICT (idx) DO UPDATE SET version = EXCLUDED.version, length = EXCLUDED.length, sha256 = EXCLUDED.sha256, snapshot_version = EXCLUDED.snapshot_version
		WHERE merkle_leaves.role = EXCLUDED.role`, idx, roles, versions, lengths, sums, snapshot)
	if err != nil {
		return fmt.Errorf("recording %d Merkle snapshot leaves: %w", len(leaves), err)
	}
	if tag.RowsAffected() != int64(len(leaves)) {
		return fmt.Errorf("recording Merkle snapshot leaves: %d of %d written (a leaf index names another role)", tag.RowsAffected(), len(leaves))
	}
	return nil
}

// MerkleState returns the head snapshot version and every leaf of its Merkle snapshot,
// read in one consistent snapshot of the database.
func (db *DB) MerkleState(ctx context.Context) (int64, []tufrepo.MerkleLeaf, error) {
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, nil, fmt.Errorf("reading the Merkle snapshot: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var snap int64
	if err := tx.QueryRow(ctx, `SELECT snapshot_version FROM repo_state WHERE id = 1`).Scan(&snap); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, nil, ErrNotBootstrapped
		}
		return 0, nil, fmt.Errorf("reading the Merkle snapshot: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT idx, role, version, length, sha256 FROM merkle_leaves ORDER BY idx`)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the Merkle snapshot: %w", err)
	}
	leaves, err := pgx.CollectRows(rows, scanLeaf)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the Merkle snapshot: %w", err)
	}
	return snap, leaves, nil
}

// MerkleChange is a leaf as a snapshot version set it.
type MerkleChange struct {
	Snapshot int64
	tufrepo.MerkleLeaf
}

// MerkleChanges returns the leaves that snapshots after..upto set, ordered by snapshot
// version and index (several versions of one role in one snapshot: ascending, the last
// one is the leaf). Both bounds must be published.
func (db *DB) MerkleChanges(ctx context.Context, after, upto int64) ([]MerkleChange, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT m.snapshot_version, l.idx, m.role, m.version, m.length, m.sha256
		FROM metadata m JOIN merkle_leaves l ON l.role = m.role
		WHERE m.snapshot_version > $1 AND m.snapshot_version <= $2 AND m.role NOT IN ('root', 'timestamp', 'snapshot')
		ORDER BY m.snapshot_version, l.idx, m.version`, after, upto)
	if err != nil {
		return nil, fmt.Errorf("reading Merkle snapshot changes %d..%d: %w", after, upto, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (MerkleChange, error) {
		var c MerkleChange
		var idx int64
		var sum []byte
		if err := r.Scan(&c.Snapshot, &idx, &c.Role, &c.Version, &c.Length, &sum); err != nil {
			return c, err
		}
		if len(sum) != len(c.SHA256) {
			return c, fmt.Errorf("%s version %d: sha256 of %d bytes", c.Role, c.Version, len(sum))
		}
		c.Index = uint64(idx)
		copy(c.SHA256[:], sum)
		return c, nil
	})
}
