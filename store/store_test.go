package store_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

var dbURL string

func TestMain(m *testing.M) { os.Exit(testdb.Main(m, "store", &dbURL)) }

func open(t testing.TB) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

func signer(t *testing.T) *tufrepo.OnlineSigner {
	t.Helper()
	priv, err := tufrepo.GenerateKey(tufrepo.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := tufrepo.NewSigner(priv)
	o, err := tufrepo.NewOnlineSigner(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestMigrateIsIdempotent(t *testing.T) {
	db := open(t)
	applied, err := db.Migrate(context.Background())
	if err != nil || len(applied) != 0 {
		t.Fatalf("second migrate applied %v, %v", applied, err)
	}
}

func TestBootstrapOnceOnly(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	n := ceremony(t)
	om, r, s, tm, keys, signers := n.off, n.r, n.s, n.tm, n.keys, n.signers
	if err := db.Bootstrap(ctx, om, r, s, tm, keys, time.Now()); err != nil {
		t.Fatal(err)
	}
	err := db.Bootstrap(ctx, om, r, s, tm, keys, time.Now())
	if api.CodeOf(err) != api.CodeAlreadyBootstrapped {
		t.Fatalf("second bootstrap: %v", err)
	}
	got, err := db.LatestPublished(ctx, tufrepo.RoleRoot)
	if err != nil || !bytes.Equal(got.Raw, om.Root) {
		t.Fatalf("root not stored byte for byte: %v", err)
	}
	entries, err := db.AuditPage(ctx, 0, 100)
	if err != nil || len(entries) != 6 {
		t.Fatalf("audit log: %d entries, %v", len(entries), err)
	}
	if _, err := tufrepo.VerifyAuditChain(nil, entries); err != nil {
		t.Fatal(err)
	}
	// Publishing on the real store: nothing staged and nothing due is a no-op.
	p := tufrepo.NewPublisher(db, signers, time.Now, nil)
	res, err := p.PublishOnce(ctx)
	if err != nil || res.Published {
		t.Fatalf("idle publish: %+v %v", res, err)
	}
	// 13 hours later the timestamp is re-signed, and only it.
	p.Now = func() time.Time { return time.Now().Add(13 * time.Hour) }
	res, err = p.PublishOnce(ctx)
	if err != nil || !res.Published || res.SnapshotVersion != 1 || res.TimestampVersion != 2 {
		t.Fatalf("timestamp refresh: %+v %v", res, err)
	}
}

func TestTokens(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	secret, tok, err := db.CreateToken(ctx, store.NewTokenSpec{Name: "ci", Projects: []string{"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Authenticate(ctx, secret)
	if err != nil || got.ID != tok.ID || !got.MayWrite("demo") || got.MayWrite("other") || got.CanCreate {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	var stored []byte
	if err := db.Pool.QueryRow(ctx, `SELECT secret_hash FROM tokens WHERE id = $1`, tok.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(secret), stored) || strings.Contains(secret, hex.EncodeToString(stored)) {
		t.Fatal("secret stored in the clear")
	}
	for _, bad := range []string{"", "cairn_", "cairn_" + tok.ID, "cairn_" + tok.ID + "_wrong", secret + "x", strings.Replace(secret, tok.ID, "0000000000000000", 1), "Bearer " + secret} {
		if _, err := db.Authenticate(ctx, bad); api.CodeOf(err) != api.CodeUnauthorized {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	if err := db.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, secret); api.CodeOf(err) != api.CodeUnauthorized {
		t.Fatalf("revoked token accepted: %v", err)
	}
	if err := db.RevokeToken(ctx, "nope"); api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("revoking unknown token: %v", err)
	}
}

// TestConcurrentSubmissionsOneWinnerPerVersion: many writers race for the same project
// version; the per-project lock lets exactly one of them in.
func TestConcurrentSubmissionsOneWinnerPerVersion(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	key := signer(t)
	d := tufrepo.ProjectDelegation{Name: "race", Keys: map[string]*metadata.Key{key.KeyID: key.Key}, KeyIDs: []string{key.KeyID}, Threshold: 1}
	role := func(v int64) []byte {
		md := metadata.Targets(time.Now().Add(24 * time.Hour).Truncate(time.Second))
		md.Signed.Version = v
		signed, _ := tufrepo.Canonical(md.Signed)
		raw, err := tufrepo.SignEnvelope(ctx, signed, key)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	if _, err := tufrepo.CreateProject(ctx, db, d, "", role(1), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := tufrepo.CreateProject(ctx, db, d, "", role(1), time.Now()); api.CodeOf(err) != api.CodeProjectExists {
		t.Fatalf("duplicate create: %v", err)
	}
	const writers = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := tufrepo.SubmitRole(ctx, db, "race", role(2), time.Now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case api.CodeOf(err) == api.CodeVersionConflict:
				conflicts++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != writers-1 {
		t.Fatalf("%d writers won, %d conflicted", wins, conflicts)
	}
	if _, err := tufrepo.SubmitRole(ctx, db, "nope", role(2), time.Now()); api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("unknown project: %v", err)
	}
	// A refused submission stores nothing.
	if _, err := tufrepo.SubmitRole(ctx, db, "race", role(4), time.Now()); api.CodeOf(err) != api.CodeVersionConflict {
		t.Fatalf("version 4 after 2: %v", err)
	}
	p, err := db.GetProject(ctx, "race")
	if err != nil || p.RoleVersion != 2 || len(p.Maintainers) != 1 || !strings.HasPrefix(p.Maintainers[0].Fingerprint, "SHA256:") {
		t.Fatalf("project: %+v %v", p, err)
	}
}

func TestEnsureDatabaseCreatesOnce(t *testing.T) {
	u := strings.Replace(dbURL, "cairn_test_store_", "cairn_test_ensure_", 1)
	ctx := context.Background()
	for range 2 {
		if err := store.EnsureDatabase(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	db, err := store.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := db.Pool.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("pool still open")
	}
	admin, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := u[strings.LastIndex(u, "/")+1:]
	if i := strings.Index(name, "?"); i >= 0 {
		name = name[:i]
	}
	if _, err := admin.Pool.Exec(ctx, `DROP DATABASE `+name); err != nil {
		t.Fatal(err)
	}
}
