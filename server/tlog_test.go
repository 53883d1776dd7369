package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/rekortest"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func tlogPage(t *testing.T, r *testrepo.Repo) api.TransparencyLogPage {
	t.Helper()
	res := r.Do(t, http.MethodGet, "/api/v1/log/transparency?limit=1000", "", "", nil)
	checkOpenAPI(t, http.MethodGet, "/api/v1/log/transparency", &http.Response{StatusCode: res.Status, Header: res.Header}, res.Body)
	var page api.TransparencyLogPage
	if res.Status != http.StatusOK || json.Unmarshal(res.Body, &page) != nil {
		t.Fatalf("GET /api/v1/log/transparency: %d %s", res.Status, res.Body)
	}
	return page
}

// waitBacklog polls until the server reports no signed version without a log entry.
func waitBacklog(t *testing.T, r *testrepo.Repo) api.TransparencyLogPage {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		page := tlogPage(t, r)
		if page.Log == nil {
			t.Fatal("the server reports no transparency log")
		}
		if page.Log.Backlog == 0 {
			return page
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog still %d after 30 s", page.Log.Backlog)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getTlogEntry(t *testing.T, r *testrepo.Repo, path string) (int, api.Problem) {
	t.Helper()
	res := r.Do(t, http.MethodGet, "/api/v1/log/transparency/"+path, "", "", nil)
	checkOpenAPI(t, http.MethodGet, "/api/v1/log/transparency/"+path, &http.Response{StatusCode: res.Status, Header: res.Header}, res.Body)
	var p api.Problem
	if res.Status != http.StatusOK {
		_ = json.Unmarshal(res.Body, &p)
	}
	return res.Status, p
}

// TestTransparencyLogWorker runs the real server against an in-process log (rekortest.Fake;
// make test-rekor runs the same flows against the real Rekor v2): every signed version is
// logged and audits clean; a log that hangs or is down never holds up publishing, its
// versions are reported as not logged with the failure, and are logged once it is back.
func TestTransparencyLogWorker(t *testing.T) {
	f := rekortest.NewFake(t)
	keyFile := filepath.Join(t.TempDir(), "rekor.pub")
	if err := os.WriteFile(keyFile, f.PublicPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	u, drop, err := testdb.Create("server_tlog")
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, func(c *daemon.Config) {
		c.RekorURL, c.RekorKey, c.RekorOrigin = f.URL, keyFile, f.Origin
		c.RekorTimeout, c.RekorRetryMax = time.Minute, 100*time.Millisecond
	})
	t.Cleanup(drop)
	ctx := context.Background()
	logKey := &tlog.LogKey{Key: f.PublicKey, Origin: f.Origin}
	ac, err := client.NewAPI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	audit := func() *client.AuditReport {
		t.Helper()
		rep, err := ac.Audit(ctx, client.AuditOptions{LogKey: logKey, TrustedRoot: r.RootJSON})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}

	// The bootstrap's timestamp, snapshot and recently-claimed are logged.
	page := waitBacklog(t, r)
	if len(page.Entries) != 3 || page.Log.URL != f.URL || page.Log.Origin != f.Origin || !strings.Contains(page.Log.PublicKey, "PUBLIC KEY") {
		t.Fatalf("after bootstrap: %d entries, log %+v", len(page.Entries), page.Log)
	}
	if rep := audit(); len(rep.Problems) != 0 || rep.Logged != 3 || rep.Checked[tufrepo.RoleRecentlyClaimed] != 1 {
		t.Fatalf("audit after bootstrap: %+v", rep)
	}
	for path, want := range map[string]int{
		"timestamp/1": 200, "snapshot/1": 200, "recently-claimed/1": 200,
		"snapshot/99": 404, "root/1": 400, "targets/1": 400, "snapshot/0": 400, "snapshot/x": 400,
	} {
		if code, p := getTlogEntry(t, r, path); code != want {
			t.Errorf("GET %s: %d %+v, want %d", path, code, p, want)
		}
	}

	// A log that accepts connections and never answers: publishing does not wait for it
	// (CreateProject requires the 201 that says the project was published within the
	// upload's wait, well before the one-minute log timeout).
	f.SetHang(true)
	k := testrepo.NewKey(t, tufrepo.KeyEd25519)
	if res := r.CreateProject(t, r.AdminToken, "hung", 1, []*testrepo.Key{k}, k); res.Status != "published" {
		t.Fatalf("publishing with the log hung: %+v", res)
	}
	f.SetHang(false)

	// A log that is down: publishing goes on; the versions wait, with the reason.
	f.SetDown(true)
	k2 := testrepo.NewKey(t, tufrepo.KeyECDSAP256)
	r.CreateProject(t, r.AdminToken, "down", 1, []*testrepo.Key{k2}, k2)
	_, ts, err := r.DB.Heads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, p := getTlogEntry(t, r, "timestamp/"+itoa(ts))
		if code == 404 && p.Code == api.CodeNotLogged && strings.Contains(p.Detail, "503") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timestamp %d with the log down: %d %+v", ts, code, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep := audit()
	if len(rep.Problems) == 0 || rep.Code() != client.ExitPolicy {
		t.Fatalf("audit with unlogged versions: %+v", rep)
	}
	for _, p := range rep.Problems {
		if !strings.Contains(p.Detail, "no transparency log entry") {
			t.Errorf("problem %+v", p)
		}
	}

	// Back up: the backlog drains, each version logged once, and the audit is clean; with
	// another log key, every entry fails.
	f.SetDown(false)
	page = waitBacklog(t, r)
	rep = audit()
	if len(rep.Problems) != 0 || rep.Logged != len(page.Entries) || int(f.Size()) != len(page.Entries) {
		t.Fatalf("after the log is back: %d entries, %d in the log, audit %+v", len(page.Entries), f.Size(), rep)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	rep, err = ac.Audit(ctx, client.AuditOptions{LogKey: &tlog.LogKey{Key: other}, TrustedRoot: r.RootJSON})
	if err != nil || len(rep.Problems) != len(page.Entries) || rep.Code() != client.ExitSignatureInvalid {
		t.Fatalf("audit with another log key: %v %+v", err, rep)
	}
}

// TestTransparencyLogAcrossKeyRotation: after root 2 moves timestamp and snapshot to
// standby keys, the worker logs each version with the key that signed it, and the audit
// checks each against the root in effect at that version; an entry signed by a key the
// root in effect does not delegate to is reported.
func TestTransparencyLogAcrossKeyRotation(t *testing.T) {
	ctx := context.Background()
	f := rekortest.NewFake(t)
	keyFile := filepath.Join(t.TempDir(), "rekor.pub")
	if err := os.WriteFile(keyFile, f.PublicPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var uris []string
	var standby []*tufrepo.OnlineSigner
	for _, name := range []string{"timestamp2", "snapshot2"} {
		uri, o := testrepo.OnlineKeyFile(t, dir, name, tufrepo.KeyECDSAP256)
		uris, standby = append(uris, uri), append(standby, o)
	}
	u, drop, err := testdb.Create("server_tlog_rotation")
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, func(c *daemon.Config) {
		c.StandbyKeys = uris
		c.RekorURL, c.RekorKey, c.RekorOrigin = f.URL, keyFile, f.Origin
	})
	t.Cleanup(drop)
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	r.CreateProject(t, r.AdminToken, "before", 1, []*testrepo.Key{alice}, alice)

	root, _ := metadata.Root().FromBytes(r.RootJSON)
	root.Signed.Version = 2
	root.Signed.Expires = time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)
	old := r.Server.Publisher().Signers
	root.Signed.RevokeKey(old.Timestamp.KeyID, tufrepo.RoleTimestamp)
	root.Signed.RevokeKey(old.Snapshot.KeyID, tufrepo.RoleSnapshot)
	root.Signed.AddKey(standby[0].Key, tufrepo.RoleTimestamp)
	root.Signed.AddKey(standby[1].Key, tufrepo.RoleSnapshot)
	signed, _ := tufrepo.Canonical(root.Signed)
	raw, err := tufrepo.SignEnvelope(ctx, signed, r.OfflineSigner(t, tufrepo.RoleRoot))
	if err != nil {
		t.Fatal(err)
	}
	if resp := r.Do(t, "POST", "/api/v1/admin/root", r.AdminToken, api.MediaJSON, testrepo.JSON(t, api.TopLevelUpdate{Root: raw})); resp.Status != http.StatusCreated {
		t.Fatalf("rotation: %d %s", resp.Status, resp.Body)
	}
	r.CreateProject(t, r.AdminToken, "after", 1, []*testrepo.Key{alice}, alice)

	page := waitBacklog(t, r)
	byKey := map[string]int{}
	for _, e := range page.Entries {
		byKey[e.Role+" "+e.KeyID]++
	}
	if byKey["timestamp "+old.Timestamp.KeyID] == 0 || byKey["timestamp "+standby[0].KeyID] == 0 ||
		byKey["snapshot "+old.Snapshot.KeyID] == 0 || byKey["snapshot "+standby[1].KeyID] == 0 {
		t.Fatalf("entries by key: %v", byKey)
	}
	ac, err := client.NewAPI(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	logKey := &tlog.LogKey{Key: f.PublicKey, Origin: f.Origin}
	rep, err := ac.Audit(ctx, client.AuditOptions{LogKey: logKey, TrustedRoot: r.RootJSON})
	if err != nil || len(rep.Problems) != 0 || rep.Roots != 2 {
		t.Fatalf("audit across the rotation: %v %+v", err, rep)
	}

	// The first timestamp under root 2, logged instead with a statement signed by the old
	// key (what a server still holding the replaced key could do): key not trusted.
	var v2 int64
	for _, e := range page.Entries {
		if e.Role == tufrepo.RoleTimestamp && e.KeyID == standby[0].KeyID && (v2 == 0 || e.Version < v2) {
			v2 = e.Version
		}
	}
	var length int64
	var sum []byte
	if err := r.DB.Pool.QueryRow(ctx, `SELECT length, sha256 FROM metadata WHERE role = 'timestamp' AND version = $1`, v2).Scan(&length, &sum); err != nil {
		t.Fatal(err)
	}
	forged, err := tlog.Sign(ctx, old.Timestamp, tlog.Metadata{Role: tufrepo.RoleTimestamp, Version: v2, Length: length, SHA256: hex.EncodeToString(sum)})
	if err != nil {
		t.Fatal(err)
	}
	entry, err := (&tlog.Client{URL: f.URL}).Submit(ctx, forged.Request)
	if err != nil {
		t.Fatal(err)
	}
	env, _ := json.Marshal(forged.Envelope)
	rk, _ := json.Marshal(entry)
	if _, err := r.DB.Pool.Exec(ctx, `UPDATE tlog_entries SET keyid = $3, envelope = $4, rekor = $5 WHERE role = $1 AND version = $2`,
		tufrepo.RoleTimestamp, v2, old.Timestamp.KeyID, env, rk); err != nil {
		t.Fatal(err)
	}
	rep, err = ac.Audit(ctx, client.AuditOptions{LogKey: logKey, TrustedRoot: r.RootJSON})
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].Version != v2 || rep.Code() != client.ExitKeyNotTrusted {
		t.Fatalf("audit with an entry signed by the replaced key: %v %+v", err, rep)
	}
}

// TestTransparencyLogReplicas: two replicas on one database, both with the log configured,
// both woken by every publish: each version is submitted once (one worker at a time).
func TestTransparencyLogReplicas(t *testing.T) {
	f := rekortest.NewFake(t)
	keyFile := filepath.Join(t.TempDir(), "rekor.pub")
	if err := os.WriteFile(keyFile, f.PublicPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	u, drop, err := testdb.Create("server_tlog_replicas")
	if err != nil {
		t.Fatal(err)
	}
	withLog := func(c *daemon.Config) { c.RekorURL, c.RekorKey = f.URL, keyFile }
	r1 := testrepo.Boot(t, u, withLog)
	r2 := testrepo.Boot(t, u, func(c *daemon.Config) { withLog(c); c.DataDir = r1.Dir })
	t.Cleanup(drop)
	for i, r := range []*testrepo.Repo{r1, r2, r1, r2, r1, r2} {
		k := testrepo.NewKey(t, tufrepo.KeyEd25519)
		r.CreateProject(t, r1.AdminToken, "replica"+itoa(int64(i)), 1, []*testrepo.Key{k}, k)
	}
	page := waitBacklog(t, r2)
	if int(f.Size()) != len(page.Entries) || len(page.Entries) < 15 {
		t.Fatalf("%d entries stored, %d submitted to the log", len(page.Entries), f.Size())
	}
}
