package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// blobRowTimeout bounds one round of blob rows: its callers wait for it.
const blobRowTimeout = time.Minute

// blobRows records the rows of blob PUTs in rounds: the rows that arrive while one round's
// INSERT runs are written together by the next, one statement and one commit for all of
// them. Each caller returns only once the round holding its row has committed, so a PUT
// is still answered only when its row is durable, before any role can reference the blob.
// An autocommit INSERT per blob was a statement, a commit (a WAL flush) and a round trip
// per upload (BENCHMARKS.md run 18). The zero value is ready to use.
type blobRows struct {
	mu      sync.Mutex
	pending []*blobRowWaiter
	running bool
}

type blobRowWaiter struct {
	sum  []byte
	size int64
	done chan blobRowResult
}

type blobRowResult struct {
	created bool
	err     error
}

// RecordBlobGrouped records that a blob is stored, as RecordBlob does, sharing the
// statement and commit with the blob PUTs that arrive at the same time. It reports whether
// the record is new; of two callers with the same digest in one round, the first is told
// it created it.
func (db *DB) RecordBlobGrouped(ctx context.Context, sum string, size int64) (bool, error) {
	raw, err := hex.DecodeString(sum)
	if err != nil || len(raw) != 32 {
		return false, fmt.Errorf("recording blob: %q is not a sha256 in hex", sum)
	}
	w := &blobRowWaiter{sum: raw, size: size, done: make(chan blobRowResult, 1)}
	r := &db.blobRows
	r.mu.Lock()
	r.pending = append(r.pending, w)
	if !r.running {
		r.running = true
		go db.blobRowRounds()
	}
	r.mu.Unlock()
	select {
	case res := <-w.done:
		return res.created, res.err
	case <-ctx.Done():
		// The row may still be written by the round: a row for bytes that are stored is
		// harmless, and the caller answers nothing.
		return false, fmt.Errorf("recording blob: %w", ctx.Err())
	}
}

// blobRowRounds writes what is pending until nothing is.
func (db *DB) blobRowRounds() {
	r := &db.blobRows
	for {
		r.mu.Lock()
		batch := r.pending
		if len(batch) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.pending = nil
		r.mu.Unlock()
		created, err := db.insertBlobRows(batch)
		for _, w := range batch {
			res := blobRowResult{err: err}
			if err == nil {
				k := string(w.sum)
				res.created = created[k]
				delete(created, k) // a second caller with the same digest did not create it
			}
			w.done <- res
		}
	}
}

// insertBlobRows writes a round's rows in one statement and returns the digests whose row
// is new.
func (db *DB) insertBlobRows(batch []*blobRowWaiter) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), blobRowTimeout)
	defer cancel()
	sums := make([][]byte, 0, len(batch))
	sizes := make([]int64, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for _, w := range batch {
		if seen[string(w.sum)] {
			continue // ON CONFLICT cannot see a duplicate within one INSERT's own rows
		}
		seen[string(w.sum)] = true
		sums, sizes = append(sums, w.sum), append(sizes, w.size)
	}
	rows, err := db.Pool.Query(ctx, `
		INSERT INTO blobs (sha256, size) SELECT * FROM unnest($1::bytea[], $2::bigint[])
		ON CONFLICT DO NOTHING RETURNING sha256`, sums, sizes)
	if err != nil {
		return nil, fmt.Errorf("recording %d blobs: %w", len(sums), err)
	}
	created := make(map[string]bool, len(sums))
	var sum []byte
	if _, err := pgx.ForEachRow(rows, []any{&sum}, func() error { created[string(sum)] = true; return nil }); err != nil {
		return nil, fmt.Errorf("recording %d blobs: %w", len(sums), err)
	}
	return created, nil
}
