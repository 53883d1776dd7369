package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/jackc/pgx/v5"
)

// tlogLockID is the session advisory lock that makes one transparency log worker at a time
// across replicas (so a version is not submitted twice).
const tlogLockID int64 = 0x636169726e746c67 // "cairntlg"

// The transparency log worker's storage (tlog.Store).
var _ tlog.Store = (*DB)(nil)

// tlogHead is how much of a metadata file TlogPending returns: online-signed files start
// with their signatures, which name the key.
const tlogHead = 4096

// TlogPass runs fn holding the worker lock on one connection; false when another replica
// holds it.
func (db *DB) TlogPass(ctx context.Context, fn func(ctx context.Context) error) (bool, error) {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("acquiring a connection for the transparency log lock: %w", err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, tlogLockID).Scan(&got); err != nil {
		return false, fmt.Errorf("taking the transparency log lock: %w", err)
	}
	if !got {
		return false, nil
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, tlogLockID); err != nil {
			// A session that may still hold the lock must not go back to the pool.
			_ = conn.Conn().Close(uctx)
		}
	}()
	return true, fn(ctx)
}

// TlogPending returns signed versions without an entry whose next attempt is due
// (tlog_pending, filled by a trigger when a signed version is inserted).
func (db *DB) TlogPending(ctx context.Context, now time.Time, limit int) ([]tlog.Pending, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT p.role, p.version, m.length, m.sha256, substring(m.raw FROM 1 FOR $3), m.stored, p.attempts
		FROM tlog_pending p JOIN metadata m ON m.role = p.role AND m.version = p.version
		WHERE p.next_attempt <= $1
		ORDER BY p.created_at, p.role, p.version
		LIMIT $2`, now, limit, tlogHead)
	if err != nil {
		return nil, fmt.Errorf("reading versions to log: %w", err)
	}
	type row struct {
		p      tlog.Pending
		stored string
		sum    []byte
	}
	rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.p.Role, &x.p.Version, &x.p.Length, &x.sum, &x.p.Head, &x.stored, &x.p.Attempts)
		x.p.SHA256 = hex.EncodeToString(x.sum)
		return x, err
	})
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Pending, len(rs))
	for i, x := range rs {
		if x.stored == "file" {
			raw, err := db.metaBytes(ctx, x.p.Role, x.p.Version, nil, x.stored, x.sum)
			if err != nil {
				return nil, err
			}
			x.p.Head = raw[:min(len(raw), tlogHead)]
		}
		out[i] = x.p
	}
	return out, nil
}

// TlogRecord stores an entry and removes the version from the pending ones; a second entry
// for the same version changes nothing.
func (db *DB) TlogRecord(ctx context.Context, e api.TransparencyLogEntry) error {
	sum, err := hex.DecodeString(e.SHA256)
	if err != nil {
		return fmt.Errorf("log entry of %s version %d: bad sha256: %w", e.Role, e.Version, err)
	}
	env, err := json.Marshal(e.Envelope)
	if err != nil {
		return err
	}
	rk, err := json.Marshal(e.Rekor)
	if err != nil {
		return err
	}
	return db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO tlog_entries (role, version, length, sha256, keyid, envelope, rekor, log_url, log_index, logged_at)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (role, version) DO NOTHING`,
			e.Role, e.Version, e.Length, sum, e.KeyID, env, rk, e.LogURL, e.Rekor.LogIndex, e.LoggedAt); err != nil {
			return fmt.Errorf("storing the log entry of %s version %d: %w", e.Role, e.Version, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tlog_pending WHERE role = $1 AND version = $2`, e.Role, e.Version); err != nil {
			return fmt.Errorf("removing %s version %d from the pending versions: %w", e.Role, e.Version, err)
		}
		return nil
	})
}

// TlogFailed records a failed attempt.
func (db *DB) TlogFailed(ctx context.Context, role string, version int64, next time.Time, msg string) error {
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	_, err := db.Pool.Exec(ctx, `
		UPDATE tlog_pending SET attempts = attempts + 1, last_error = $3, next_attempt = $4
		WHERE role = $1 AND version = $2`, role, version, msg, next)
	if err != nil {
		return fmt.Errorf("recording a failed log submission of %s version %d: %w", role, version, err)
	}
	return nil
}

// TlogBacklog counts signed versions without an entry.
func (db *DB) TlogBacklog(ctx context.Context) (int64, error) {
	var n int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM tlog_pending`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting versions to log: %w", err)
	}
	return n, nil
}

const tlogColumns = `seq, role, version, length, sha256, keyid, envelope, rekor, log_url, logged_at`

func scanTlogEntry(r pgx.CollectableRow) (api.TransparencyLogEntry, error) {
	var e api.TransparencyLogEntry
	var sum, env, rk []byte
	if err := r.Scan(&e.Seq, &e.Role, &e.Version, &e.Length, &sum, &e.KeyID, &env, &rk, &e.LogURL, &e.LoggedAt); err != nil {
		return e, err
	}
	e.SHA256 = hex.EncodeToString(sum)
	e.LoggedAt = e.LoggedAt.UTC()
	if err := json.Unmarshal(env, &e.Envelope); err != nil {
		return e, fmt.Errorf("decoding stored envelope of %s version %d: %w", e.Role, e.Version, err)
	}
	if err := json.Unmarshal(rk, &e.Rekor); err != nil {
		return e, fmt.Errorf("decoding stored log entry of %s version %d: %w", e.Role, e.Version, err)
	}
	return e, nil
}

// TlogEntries returns up to limit stored entries with seq > after, in the order stored.
func (db *DB) TlogEntries(ctx context.Context, after int64, limit int) ([]api.TransparencyLogEntry, error) {
	rows, err := db.Pool.Query(ctx, `SELECT `+tlogColumns+` FROM tlog_entries WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("reading transparency log entries: %w", err)
	}
	return pgx.CollectRows(rows, scanTlogEntry)
}

// TlogEntry returns the entry of one version: api CodeNotFound if the server never signed
// that version, api CodeNotLogged if it has no entry yet.
func (db *DB) TlogEntry(ctx context.Context, role string, version int64) (*api.TransparencyLogEntry, error) {
	rows, err := db.Pool.Query(ctx, `SELECT `+tlogColumns+` FROM tlog_entries WHERE role = $1 AND version = $2`, role, version)
	if err != nil {
		return nil, fmt.Errorf("reading the log entry of %s version %d: %w", role, version, err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanTlogEntry)
	if err == nil {
		return &e, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("reading the log entry of %s version %d: %w", role, version, err)
	}
	var signed bool
	var lastErr *string
	if err := db.Pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM metadata WHERE role = $1 AND version = $2 AND action = 'signed'),
		       (SELECT last_error FROM tlog_pending WHERE role = $1 AND version = $2)`, role, version).Scan(&signed, &lastErr); err != nil {
		return nil, fmt.Errorf("reading %s version %d: %w", role, version, err)
	}
	if !signed {
		return nil, api.Errorf(api.CodeNotFound, "the server signed no %s version %d with an online key (only timestamp, snapshot and recently-claimed versions are logged)", role, version)
	}
	detail := fmt.Sprintf("%s version %d was signed but has no transparency log entry yet: the worker submits it in the background", role, version)
	if lastErr != nil {
		detail += "; the last attempt failed: " + *lastErr
	}
	return nil, &api.Error{Code: api.CodeNotLogged, Detail: detail}
}
