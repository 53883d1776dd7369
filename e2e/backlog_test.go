package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// stageBacklog writes, in one transaction, a project row and the given staged versions of
// its role for each name, as a bulk import does (bench/load -mode bulk): past the API,
// waiting for a publish. It returns the release file of each role version.
func stageBacklog(t *testing.T, db *store.DB, key *testrepo.Key, roles map[string][]int64) map[string]map[int64]testrepo.File {
	t.Helper()
	ctx := context.Background()
	keys, err := json.Marshal(map[string]*metadata.Key{key.ID(): key.Signer.Key})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]map[int64]testrepo.File{}
	exp := time.Now().Add(30 * 24 * time.Hour)
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		for name, versions := range roles {
			if versions[0] == 1 {
				if _, err := tx.Exec(ctx, `INSERT INTO projects (name, canonical_name, delegator, threshold, keys, keyids, role_version) VALUES ($1, $1, 'recently-claimed', 1, $2, $3, 0)`,
					name, keys, []string{key.ID()}); err != nil {
					return err
				}
			}
			files[name] = map[int64]testrepo.File{}
			for _, v := range versions {
				f := testrepo.File{Path: fmt.Sprintf("%s/%d.0/%s.tgz", name, v, name), Content: []byte(fmt.Sprintf("%s release %d", name, v))}
				files[name][v] = f
				raw := testrepo.Sign(t, testrepo.Role(v, exp, f), key)
				sum := sha256.Sum256(raw)
				if _, err := tx.Exec(ctx, `INSERT INTO metadata (role, version, raw, length, sha256, expires, action) VALUES ($1, $2, $3, $4, $5, $6, 'accepted')`,
					name, v, raw, len(raw), sum[:], exp.UTC().Truncate(time.Second)); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `UPDATE projects SET role_version = $2 WHERE name = $1`, name, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("staging the backlog: %v", err)
	}
	return files
}

// TestPublishBacklogInBatches stages more role versions than one publish takes
// (--publish-batch) and checks that the publisher's loop publishes them all, without a
// kick per batch, in the order they were staged, no publish taking more than the cap, and
// that go-tuf then verifies every project's newest release.
func TestPublishBacklogInBatches(t *testing.T) {
	const batch = 4
	u, drop, err := testdb.Create("e2e_" + strings.ToLower(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	r := testrepo.Boot(t, u, func(c *daemon.Config) { c.PublishBatch = batch; c.ShardCapacity = 4 })
	ctx := context.Background()
	key := testrepo.NewKey(t, tufrepo.KeyEd25519)

	// Two imports, the second after the first (so staged later): new projects in each,
	// and in the second, versions 2 and 3 of three projects of the first.
	first, second := map[string][]int64{}, map[string][]int64{}
	for i := range 11 {
		first[fmt.Sprintf("first-%02d", i)] = []int64{1}
	}
	for i := range 9 {
		second[fmt.Sprintf("second-%02d", i)] = []int64{1}
	}
	for _, n := range []string{"first-00", "first-05", "first-10"} {
		second[n] = []int64{2, 3}
	}
	files := stageBacklog(t, r.DB, key, first)
	// (created_at is the staging transaction's start, after the first one committed.)
	for n, fs := range stageBacklog(t, r.DB, key, second) {
		if files[n] == nil {
			files[n] = fs
			continue
		}
		for v, f := range fs {
			files[n][v] = f
		}
	}
	// One wake-up for the whole backlog, as the bulk import sends.
	if _, err := r.DB.Pool.Exec(ctx, `SELECT pg_notify($1, 'test')`, store.ChannelStaged); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the backlog to be published", func() bool {
		var n int
		if err := r.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM metadata WHERE snapshot_version IS NULL`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})

	// Which snapshot published each version.
	snap := map[string]map[int64]int64{}
	rows, err := r.DB.Pool.Query(ctx, `SELECT role, version, snapshot_version FROM metadata WHERE role LIKE 'first-%' OR role LIKE 'second-%'`)
	if err != nil {
		t.Fatal(err)
	}
	var role string
	var v, s int64
	if _, err := pgx.ForEachRow(rows, []any{&role, &v, &s}, func() error {
		if snap[role] == nil {
			snap[role] = map[int64]int64{}
		}
		snap[role][v] = s
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	perSnapshot := map[int64]map[string]bool{}
	for role, vs := range snap {
		for _, s := range vs {
			if perSnapshot[s] == nil {
				perSnapshot[s] = map[string]bool{}
			}
			perSnapshot[s][role] = true
		}
	}
	total := len(first) + len(second) - 3
	if len(perSnapshot) < (total+batch-1)/batch {
		t.Errorf("%d project roles were published by %d snapshots; with at most %d per publish they need %d", total, len(perSnapshot), batch, (total+batch-1)/batch)
	}
	for s, roles := range perSnapshot {
		if len(roles) > batch {
			t.Errorf("snapshot %d published %d project roles; the cap is %d", s, len(roles), batch)
		}
	}
	// Staged first, published first; a role's versions in order.
	lastFirst := int64(0)
	for n := range first {
		lastFirst = max(lastFirst, snap[n][1])
	}
	for n := range second {
		if !strings.HasPrefix(n, "second-") {
			continue
		}
		if snap[n][1] < lastFirst {
			t.Errorf("%s (staged second) was published by snapshot %d, before %d, which published the first import", n, snap[n][1], lastFirst)
		}
	}
	for _, n := range []string{"first-00", "first-05", "first-10"} {
		if !(snap[n][1] <= snap[n][2] && snap[n][2] <= snap[n][3]) {
			t.Errorf("%s: versions 1, 2, 3 published by snapshots %d, %d, %d: out of order", n, snap[n][1], snap[n][2], snap[n][3])
		}
	}

	// go-tuf, from the pinned root, sees every project's newest release, once the server
	// serves the head that the last publish committed.
	head := headTimestamp(t, r.DB)
	waitFor(t, time.Minute, "the server to serve the last timestamp", func() bool {
		resp := r.Do(t, "GET", "/metadata/timestamp.json", "", "", nil)
		var ts struct {
			Signed struct {
				Version int64 `json:"version"`
			} `json:"signed"`
		}
		return resp.Status == 200 && json.Unmarshal(resp.Body, &ts) == nil && ts.Signed.Version >= head
	})
	base := "http://" + r.Addr
	cfg, err := config.New(base+"/metadata", r.RootJSON)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteTargetsURL = base + "/targets"
	cfg.LocalMetadataDir, cfg.LocalTargetsDir = t.TempDir(), t.TempDir()
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		t.Fatalf("go-tuf refresh: %v", err)
	}
	for _, fs := range files {
		newest := int64(0)
		for v := range fs {
			newest = max(newest, v)
		}
		f := fs[newest]
		ti, err := up.GetTargetInfo(f.Path)
		if err != nil {
			t.Errorf("go-tuf: %s: %v", f.Path, err)
			continue
		}
		want := sha256.Sum256(f.Content)
		if !bytes.Equal(ti.Hashes["sha256"], want[:]) {
			t.Errorf("go-tuf: %s has the wrong hash", f.Path)
		}
	}
}

// TestNegativePublishBatchRefused: a negative --publish-batch is refused before cairnd
// serves, with what to give instead.
func TestNegativePublishBatchRefused(t *testing.T) {
	u, drop, err := testdb.Create("e2e_" + strings.ToLower(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	c := daemon.Config{Listen: "127.0.0.1:0", DatabaseURL: u, Dev: true, DataDir: t.TempDir(), MaxBlobSize: 1 << 30, PublishInterval: time.Hour, LogLevel: "warn", PublishBatch: -1}
	r, err := daemon.Start(context.Background(), c, func(string) string { return "" }, io.Discard, slog.New(slog.DiscardHandler))
	if err == nil {
		_ = r.Close()
		t.Fatal("cairnd started with --publish-batch -1")
	}
	if !strings.Contains(err.Error(), "--publish-batch -1") || !strings.Contains(err.Error(), "0 for no bound") {
		t.Fatalf("refusal %q does not say which flag and what to give", err)
	}
}
