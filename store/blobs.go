package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Blob bytes are blobstore's; this file records them.

// BlobSize returns the recorded size of a blob, and whether it is recorded.
func (db *DB) BlobSize(ctx context.Context, sum string) (int64, bool, error) {
	raw, err := hex.DecodeString(sum)
	if err != nil {
		return 0, false, nil
	}
	var size int64
	err = db.Pool.QueryRow(ctx, `SELECT size FROM blobs WHERE sha256 = $1`, raw).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading blob record: %w", err)
	}
	return size, true, nil
}

// RecordBlob records that a blob is stored; it reports whether the record is new.
func (db *DB) RecordBlob(ctx context.Context, sum string, size int64) (bool, error) {
	raw, err := hex.DecodeString(sum)
	if err != nil {
		return false, err
	}
	tag, err := db.Pool.Exec(ctx, `INSERT INTO blobs (sha256, size) VALUES ($1, $2) ON CONFLICT DO NOTHING`, raw, size)
	if err != nil {
		return false, fmt.Errorf("recording blob: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}
