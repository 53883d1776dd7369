package store

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// livePingEvery is how long the publish transaction's connection may sit unused before
// the pinger sends it a statement: well under the shortest idle-in-transaction limit
// cairnd accepts (2 s, Sessions), so that Go work of any length between two statements
// (parsing a 50 MB snapshot, building the Merkle tree, planning a batch of 50,000 new
// delegations on a loaded machine) never looks like a frozen replica to PostgreSQL.
const livePingEvery = 500 * time.Millisecond

// liveTx is the publish transaction, shared by the publisher and a pinger. A pgx
// connection serves one statement at a time, so every use takes mu: a statement holds it
// until it returns, a query until its rows are closed (or its row scanned). The pinger
// only tries the lock; if the publisher is using the connection it is not idle.
//
// The pinger stops with the publish's context: a publisher stuck in a loop that ignores
// its deadline (PublishTimeout) is then ended by the idle limit as before, and a frozen
// process pings nothing, so the limit still frees the lock of a frozen replica.
type liveTx struct {
	pgx.Tx
	mu sync.Mutex
	// used is when the connection was last released (guarded by mu).
	used time.Time
	// pingErr is the first failed ping (guarded by mu): the session is gone, and the
	// publish's next statement will say so too.
	pingErr error
	stop    chan struct{}
	done    chan struct{}
}

// newLiveTx starts pinging tx while ctx lasts, until stopPinging.
func newLiveTx(ctx context.Context, tx pgx.Tx) *liveTx {
	t := &liveTx{Tx: tx, used: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go t.pinger(ctx)
	return t
}

func (t *liveTx) pinger(ctx context.Context) {
	defer close(t.done)
	tick := time.NewTicker(livePingEvery / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.stop:
			return
		case <-tick.C:
		}
		if !t.mu.TryLock() {
			continue // in use: not idle
		}
		if t.pingErr == nil && time.Since(t.used) >= livePingEvery {
			if _, err := t.Tx.Exec(ctx, `SELECT 1`); err != nil {
				t.pingErr = err
			}
			t.used = time.Now()
		}
		t.mu.Unlock()
	}
}

// stopPinging stops the pinger and waits for it: Commit and Rollback then have the
// connection to themselves.
func (t *liveTx) stopPinging() {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
}

func (t *liveTx) release() {
	t.used = time.Now()
	t.mu.Unlock()
}

func (t *liveTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	t.mu.Lock()
	defer t.release()
	return t.Tx.Exec(ctx, sql, args...)
}

func (t *liveTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	t.mu.Lock()
	rows, err := t.Tx.Query(ctx, sql, args...)
	if err != nil {
		t.release()
		return nil, err
	}
	return &liveRows{Rows: rows, t: t}, nil
}

func (t *liveTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	t.mu.Lock()
	return &liveRow{row: t.Tx.QueryRow(ctx, sql, args...), t: t}
}

func (t *liveTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	t.mu.Lock()
	return &liveBatch{BatchResults: t.Tx.SendBatch(ctx, b), t: t}
}

func (t *liveTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	t.mu.Lock()
	defer t.release()
	return t.Tx.CopyFrom(ctx, table, cols, src)
}

// liveRows holds the connection until closed. pgx closes rows itself when they run out,
// but callers (pgx.CollectRows, ForEachRow) always Close, which is where it is released.
type liveRows struct {
	pgx.Rows
	t    *liveTx
	once sync.Once
}

func (r *liveRows) Close() {
	r.Rows.Close()
	r.once.Do(r.t.release)
}

type liveRow struct {
	row pgx.Row
	t   *liveTx
}

func (r *liveRow) Scan(dest ...any) error {
	defer r.t.release()
	return r.row.Scan(dest...)
}

type liveBatch struct {
	pgx.BatchResults
	t    *liveTx
	once sync.Once
}

func (b *liveBatch) Close() error {
	defer b.once.Do(b.t.release)
	return b.BatchResults.Close()
}
