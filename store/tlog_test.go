package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/cairn-dev/cairn/tufrepo"
)

// TestTlogQueue: the signed versions wait for the log until recorded; a failure holds a
// version back until its next attempt; a second entry for a version changes nothing; the
// worker lock is held by one pass at a time.
func TestTlogQueue(t *testing.T) {
	u, drop, err := testdb.Create("store_tlog")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	ctx := context.Background()
	db, err := store.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ts, sn, rc, off := signer(t), signer(t), signer(t), signer(t)
	now := time.Now()
	om, err := tufrepo.Ceremony(ctx, tufrepo.CeremonyConfig{
		RootSigners: []*tufrepo.OnlineSigner{off}, RootThreshold: 1, TargetsSigners: []*tufrepo.OnlineSigner{off}, TargetsThreshold: 1,
		ClaimedSigners: []*tufrepo.OnlineSigner{off}, ClaimedThreshold: 1, Timestamp: ts.Key, Snapshot: sn.Key, RecentlyClaimed: rc.Key, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	r, s, tm, err := tufrepo.InitialOnline(ctx, om, tufrepo.Signers{Timestamp: ts, Snapshot: sn, RecentlyClaimed: rc}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Bootstrap(ctx, om, r, s, tm, map[string]string{"timestamp": ts.KeyID}, now); err != nil {
		t.Fatal(err)
	}

	pending, err := db.TlogPending(ctx, now, 10)
	if err != nil || len(pending) != 3 {
		t.Fatalf("pending after bootstrap: %+v %v", pending, err)
	}
	byRole := map[string]*tufrepo.OnlineSigner{tufrepo.RoleTimestamp: ts, tufrepo.RoleSnapshot: sn, tufrepo.RoleRecentlyClaimed: rc}
	for _, p := range pending {
		if want := byRole[p.Role]; want == nil || p.Version != 1 || p.Attempts != 0 || len(p.SHA256) != 64 || !strings.Contains(string(p.Head), want.KeyID) {
			t.Errorf("pending %s v%d: %d attempts, head %.80q", p.Role, p.Version, p.Attempts, p.Head)
		}
	}
	if n, err := db.TlogBacklog(ctx); err != nil || n != 3 {
		t.Fatalf("backlog %d %v", n, err)
	}
	if _, err := db.TlogEntry(ctx, tufrepo.RoleSnapshot, 1); api.CodeOf(err) != api.CodeNotLogged {
		t.Fatalf("entry of an unlogged version: %v", err)
	}
	if _, err := db.TlogEntry(ctx, tufrepo.RoleSnapshot, 2); api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("entry of an unsigned version: %v", err)
	}

	// A failure holds the snapshot back until its next attempt, and is reported.
	if err := db.TlogFailed(ctx, tufrepo.RoleSnapshot, 1, now.Add(time.Minute), "log down"); err != nil {
		t.Fatal(err)
	}
	if pending, _ = db.TlogPending(ctx, now, 10); len(pending) != 2 {
		t.Fatalf("a version whose retry is not due is pending: %+v", pending)
	}
	if pending, _ = db.TlogPending(ctx, now.Add(2*time.Minute), 10); len(pending) != 3 {
		t.Fatalf("a version whose retry is due is not pending: %+v", pending)
	}
	for _, p := range pending {
		if p.Role == tufrepo.RoleSnapshot && p.Attempts != 1 {
			t.Errorf("snapshot attempts %d", p.Attempts)
		}
	}
	if _, err := db.TlogEntry(ctx, tufrepo.RoleSnapshot, 1); err == nil || !strings.Contains(err.Error(), "log down") {
		t.Fatalf("the last failure is not reported: %v", err)
	}

	// Recording the entry ends the wait; a second entry for the version changes nothing.
	e := api.TransparencyLogEntry{Role: tufrepo.RoleSnapshot, Version: 1, Length: int64(len(s.Raw)), SHA256: tlog.SHA256Hex(s.Raw), KeyID: sn.KeyID,
		Envelope: api.DSSEEnvelope{PayloadType: "t", Payload: []byte("p"), Signatures: []api.DSSESignature{{KeyID: sn.KeyID, Sig: []byte("s")}}},
		LogURL:   "http://log", Rekor: api.RekorEntry{LogIndex: 7, Kind: "hashedrekord", InclusionProof: api.InclusionProof{Hashes: [][]byte{}}}, LoggedAt: now.UTC().Truncate(time.Microsecond)}
	if err := db.TlogRecord(ctx, e); err != nil {
		t.Fatal(err)
	}
	again := e
	again.LogURL = "http://other"
	if err := db.TlogRecord(ctx, again); err != nil {
		t.Fatal(err)
	}
	got, err := db.TlogEntry(ctx, tufrepo.RoleSnapshot, 1)
	if err != nil || got.LogURL != "http://log" || got.Rekor.LogIndex != 7 || got.SHA256 != e.SHA256 || string(got.Envelope.Payload) != "p" {
		t.Fatalf("stored entry %+v %v", got, err)
	}
	if n, _ := db.TlogBacklog(ctx); n != 2 {
		t.Fatalf("backlog %d after one entry", n)
	}
	if list, err := db.TlogEntries(ctx, 0, 10); err != nil || len(list) != 1 || list[0].Seq == 0 {
		t.Fatalf("entries %+v %v", list, err)
	}

	// One pass at a time, across connections (replicas).
	errInner := errors.New("inner")
	ran, err := db.TlogPass(ctx, func(ctx context.Context) error {
		other, err := db.TlogPass(ctx, func(context.Context) error { t.Error("a second pass ran"); return nil })
		if err != nil || other {
			t.Errorf("second pass: ran %v, %v", other, err)
		}
		return errInner
	})
	if !ran || !errors.Is(err, errInner) {
		t.Fatalf("first pass: ran %v, %v", ran, err)
	}
	if ran, err := db.TlogPass(ctx, func(context.Context) error { return nil }); !ran || err != nil {
		t.Fatalf("the lock was not released: %v %v", ran, err)
	}
}
