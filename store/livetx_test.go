package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
)

// slowStore is the real store whose publish transactions stand for a publisher with slow
// Go work (a batch of many thousand roles on a loaded machine): after reading the staged
// roles and before marking them published, nothing is sent to PostgreSQL for pause.
type slowStore struct {
	db    *store.DB
	pause time.Duration
}

func (s slowStore) InPublishTx(ctx context.Context, fn func(ctx context.Context, tx tufrepo.PublishTx) error) error {
	return s.db.InPublishTx(ctx, func(ctx context.Context, tx tufrepo.PublishTx) error {
		return fn(ctx, slowTx{PublishTx: tx, pause: s.pause})
	})
}

type slowTx struct {
	tufrepo.PublishTx
	pause time.Duration
}

func (x slowTx) StagedRoles(ctx context.Context, limit int, with []string) ([]tufrepo.StagedRole, bool, error) {
	roles, more, err := x.PublishTx.StagedRoles(ctx, limit, with)
	time.Sleep(x.pause)
	return roles, more, err
}

func (x slowTx) MarkPublished(ctx context.Context, roles []tufrepo.StagedRole, projects []string, snapshot int64) error {
	time.Sleep(x.pause)
	return x.PublishTx.MarkPublished(ctx, roles, projects, snapshot)
}

// newRepository is what bootstrapping a repository takes: the offline metadata from a
// ceremony, the first online versions, and the online signers.
type newRepository struct {
	signers  tufrepo.Signers
	off      *tufrepo.OfflineMetadata
	r, s, tm tufrepo.MetadataVersion
	keys     map[string]string
}

func ceremony(t *testing.T) newRepository {
	t.Helper()
	ctx := context.Background()
	ts, sn, rc, off := signer(t), signer(t), signer(t), signer(t)
	om, err := tufrepo.Ceremony(ctx, tufrepo.CeremonyConfig{
		RootSigners: []*tufrepo.OnlineSigner{off}, RootThreshold: 1, TargetsSigners: []*tufrepo.OnlineSigner{off}, TargetsThreshold: 1,
		ClaimedSigners: []*tufrepo.OnlineSigner{off}, ClaimedThreshold: 1, Timestamp: ts.Key, Snapshot: sn.Key, RecentlyClaimed: rc.Key, Now: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	n := newRepository{signers: tufrepo.Signers{Timestamp: ts, Snapshot: sn, RecentlyClaimed: rc}, off: om, keys: map[string]string{"timestamp": ts.KeyID}}
	if n.r, n.s, n.tm, err = tufrepo.InitialOnline(ctx, om, n.signers, time.Now()); err != nil {
		t.Fatal(err)
	}
	return n
}

// bootstrap stores a new repository in db and returns its online signers.
func bootstrap(t *testing.T, db *store.DB) tufrepo.Signers {
	t.Helper()
	n := ceremony(t)
	if err := db.Bootstrap(context.Background(), n.off, n.r, n.s, n.tm, n.keys, time.Now()); err != nil {
		t.Fatal(err)
	}
	return n.signers
}

// TestPublishOutlastsIdleInTransactionLimit checks that a publish whose Go work between two
// statements lasts longer than the sessions' idle-in-transaction limit still commits: the
// limit is there to free the publisher lock of a frozen replica, not to end a busy one
// (BENCHMARKS.md: at 1M projects it ended every attempt, for ever).
func TestPublishOutlastsIdleInTransactionLimit(t *testing.T) {
	const idle = 2 * time.Second // the shortest limit cairnd accepts
	ctx := context.Background()
	u, drop, err := testdb.Create("store_" + strings.ToLower(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	db, err := store.OpenWith(ctx, u, store.Sessions{IdleInTransaction: idle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	signers := bootstrap(t, db)

	// The limit is in force on these sessions: a transaction left idle longer is ended.
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * idle)
	if _, err := tx.Exec(ctx, `SELECT 1`); err == nil {
		t.Fatalf("a transaction idle for %s survived an idle-in-transaction limit of %s: the test proves nothing", 2*idle, idle)
	}
	_ = tx.Rollback(ctx)

	// 13 hours later the timestamp is due: a publish, with two pauses of twice the limit.
	_, before, err := db.Heads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := tufrepo.NewPublisher(slowStore{db: db, pause: 2 * idle}, signers, func() time.Time { return time.Now().Add(13 * time.Hour) }, nil)
	res, err := p.PublishOnce(ctx)
	if err != nil || !res.Published {
		t.Fatalf("slow publish: %+v %v", res, err)
	}
	if _, after, err := db.Heads(ctx); err != nil || after != before+1 || after != res.TimestampVersion {
		t.Fatalf("head timestamp %d after the publish (was %d, published %d): %v", after, before, res.TimestampVersion, err)
	}
}
