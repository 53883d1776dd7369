package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	cairn "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/rekortest"
	"github.com/cairn-dev/cairn/internal/testdb"
)

// startCairnd starts the real cairnd in dev mode on dir and db; the caller closes it
// (Close may be called once).
func startCairnd(t *testing.T, db, dir string, tweak func(*daemon.Config)) *daemon.Running {
	t.Helper()
	c := daemon.Config{Listen: "127.0.0.1:0", DatabaseURL: db, Dev: true, DataDir: dir, MaxBlobSize: 1 << 20, PublishInterval: time.Hour, LogLevel: "warn"}
	if tweak != nil {
		tweak(&c)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("CAIRN_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := daemon.Start(context.Background(), c, os.Getenv, io.Discard, log)
	if err != nil {
		t.Fatalf("starting cairnd: %v", err)
	}
	return r
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %d %s: %v", url, res.StatusCode, b, err)
		}
	}
	return res.StatusCode
}

// waitLogged waits until the server has no signed version without a log entry.
func waitLogged(t *testing.T, r *daemon.Running, rk *rekortest.Rekor) api.TransparencyLogPage {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var page api.TransparencyLogPage
		getJSON(t, r.URL+"/api/v1/log/transparency?limit=1000", &page)
		if page.Log == nil {
			t.Fatal("the server reports no transparency log")
		}
		if page.Log.Backlog == 0 {
			return page
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog still %d after 60 s\nrekor log:\n%s", page.Log.Backlog, rk.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func metricValue(t *testing.T, r *daemon.Running, prefix string) string {
	t.Helper()
	res, err := http.Get(r.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			return strings.TrimPrefix(l, prefix+" ")
		}
	}
	return ""
}

// TestTransparencyLogAudit runs cairnd against a real Rekor v2 log: every signed version is
// logged and `cairn audit` passes; publishing goes on while the log is down and the backlog
// drains when it is back; then an attacker who publishes with the log disabled, and one
// who changes the bytes of a logged snapshot, are both reported by `cairn audit`.
func TestTransparencyLogAudit(t *testing.T) {
	rk := rekortest.Start(t)
	u, drop, err := testdb.Create("e2e_tlog")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "rekor.pub")
	if err := os.WriteFile(keyFile, rk.PublicPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	withLog := func(c *daemon.Config) {
		c.RekorURL, c.RekorKey, c.RekorOrigin = rk.URL, keyFile, rk.Origin
		c.RekorTimeout, c.RekorRetryMax = 10*time.Second, time.Second
	}
	r := startCairnd(t, u, dir, withLog)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = r.Close()
		}
	})
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(dir, "root.json")
	maint := newCLI(t, strings.TrimSpace(string(tok)))
	maint.ok(t, "init", "--server", r.URL, "--root", rootFile)
	maint.ok(t, "key", "generate", "--name", "alice")
	maint.ok(t, "project", "create", "hello", "--key", "alice")
	files := t.TempDir()
	upload := func(v string) {
		t.Helper()
		f := filepath.Join(files, "hello-"+v+".tar.gz")
		os.WriteFile(f, []byte("hello "+v), 0o644)
		maint.ok(t, "upload", "hello", v, f, "--key", "alice")
	}
	upload("1.0.0")

	// 1. Everything signed is logged, served, and audits clean.
	page := waitLogged(t, r, rk)
	if len(page.Entries) < 6 { // bootstrap (ts, snap, rc) + two publishes (ts, snap each)
		t.Fatalf("only %d entries", len(page.Entries))
	}
	if page.Log.URL != rk.URL || !strings.Contains(page.Log.PublicKey, "PUBLIC KEY") {
		t.Fatalf("log info %+v", page.Log)
	}
	var one api.TransparencyLogEntry
	if code := getJSON(t, r.URL+"/api/v1/log/transparency/snapshot/1", &one); code != 200 || one.Rekor.Kind != "hashedrekord" {
		t.Fatalf("GET snapshot/1: %d %+v", code, one)
	}
	var p api.Problem
	if code := getJSON(t, r.URL+"/api/v1/log/transparency/snapshot/999", &p); code != 404 || p.Code != api.CodeNotFound {
		t.Fatalf("GET snapshot/999: %d %+v", code, p)
	}
	if code := getJSON(t, r.URL+"/api/v1/log/transparency/root/1", &p); code != 400 || p.Code != api.CodeBadRequest {
		t.Fatalf("GET root/1: %d %+v", code, p)
	}
	out := maint.ok(t, "audit", "--rekor-key", keyFile)
	if !strings.Contains(out, "OK: every signed version is in the transparency log") {
		t.Fatalf("audit: %s", out)
	}
	if v := metricValue(t, r, "cairn_tlog_backlog"); v != "0" {
		t.Fatalf("cairn_tlog_backlog = %q", v)
	}

	// 2. The log goes down: publishing goes on; the new versions are reported as not
	// logged (exit 4), with the failure, until the log is back and the backlog drains.
	rk.Stop()
	upload("2.0.0")
	_, ts, err := r.DB.Heads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code := getJSON(t, r.URL+"/api/v1/log/transparency/timestamp/"+itoa(ts), &p)
		if code == 404 && p.Code == api.CodeNotLogged && strings.Contains(p.Detail, "last attempt failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timestamp %d while the log is down: %d %+v", ts, code, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out, errs := maint.run(t, "audit", "--rekor-key", keyFile)
	if code != int(cairn.ExitPolicy) || !strings.Contains(out, "timestamp version "+itoa(ts)) || !strings.Contains(out, "no transparency log entry") {
		t.Fatalf("audit while the log is down: exit %d\n%s\n%s", code, out, errs)
	}
	if v := metricValue(t, r, `cairn_tlog_failures_total{reason="unavailable"}`); v == "" || v == "0" {
		t.Fatalf("no failures counted: %q", v)
	}
	rk.Restart()
	waitLogged(t, r, rk)
	maint.ok(t, "audit", "--rekor-key", keyFile)
	if v := metricValue(t, r, "cairn_tlog_retries_total"); v == "" || v == "0" {
		t.Fatalf("no retries counted: %q", v)
	}

	// 3. The attacker holds the database and the online keys, and publishes with the log
	// turned off (the same server, restarted without --rekor-url).
	var logged int64
	if err := r.DB.Pool.QueryRow(context.Background(), `SELECT max(version) FROM tlog_entries WHERE role = 'snapshot'`).Scan(&logged); err != nil {
		t.Fatal(err)
	}
	closed = true
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := startCairnd(t, u, dir, nil)
	r2closed := false
	t.Cleanup(func() {
		if !r2closed {
			_ = r2.Close()
		}
	})
	maint.ok(t, "init", "--server", r2.URL, "--root", rootFile)
	maint.env["CAIRN_SERVER"] = r2.URL
	upload("3.0.0")
	_, ts3, err := r2.DB.Heads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var page2 api.TransparencyLogPage
	getJSON(t, r2.URL+"/api/v1/log/transparency", &page2)
	if page2.Log != nil {
		t.Fatalf("a server without --rekor-url reports a log: %+v", page2.Log)
	}
	code, out, errs = maint.run(t, "audit", "--server", r2.URL, "--rekor-key", keyFile)
	if code != int(cairn.ExitPolicy) || !strings.Contains(out, "timestamp version "+itoa(ts3)+" [policy rejection]: signed by the server") {
		t.Fatalf("audit after an unlogged publish: exit %d\n%s\n%s", code, out, errs)
	}

	// 4. The attacker changes the bytes of a snapshot version that was logged (and
	// restarts the server, which kept the old bytes in memory): the served file no longer
	// matches the log (nor the audit log): hash mismatch, exit 1.
	if _, err := r2.DB.Pool.Exec(context.Background(), `UPDATE metadata SET raw = raw || '\x0a'::bytea WHERE role = 'snapshot' AND version = $1`, logged); err != nil {
		t.Fatal(err)
	}
	r2closed = true
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	r3 := startCairnd(t, u, dir, nil)
	t.Cleanup(func() { _ = r3.Close() })
	code, out, errs = maint.run(t, "audit", "--server", r3.URL, "--rekor-key", keyFile)
	if code != int(cairn.ExitHashMismatch) || !strings.Contains(out, "snapshot version "+itoa(logged)+" [hash mismatch]") {
		t.Fatalf("audit after a logged snapshot changed: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestTransparencyLogKMSKeys logs with ECDSA P-256 timestamp and snapshot keys held by a
// KMS provider (sigstore's fakekms, through the same code as awskms/gcpkms/…) and an
// Ed25519 recently-claimed file key, against the real Rekor v2: both kinds of entry are
// accepted and audit clean.
func TestTransparencyLogKMSKeys(t *testing.T) {
	rk := rekortest.Start(t)
	u, drop, err := testdb.Create("e2e_tlog_kms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "rekor.pub")
	if err := os.WriteFile(keyFile, rk.PublicPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	r := startCairnd(t, u, dir, func(c *daemon.Config) {
		c.TimestampKey, c.SnapshotKey = "fakekms://timestamp", "fakekms://snapshot"
		c.RekorURL, c.RekorKey = rk.URL, keyFile
	})
	t.Cleanup(func() { _ = r.Close() })
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	maint := newCLI(t, strings.TrimSpace(string(tok)))
	maint.ok(t, "init", "--server", r.URL, "--root", filepath.Join(dir, "root.json"))
	maint.ok(t, "key", "generate", "--name", "alice")
	maint.ok(t, "project", "create", "kms", "--key", "alice")
	page := waitLogged(t, r, rk)
	kinds := map[string]int{}
	for _, e := range page.Entries {
		var body struct {
			Spec struct {
				HashedRekordV002 struct {
					Signature struct {
						Verifier struct {
							KeyDetails string `json:"keyDetails"`
						} `json:"verifier"`
					} `json:"signature"`
				} `json:"hashedRekordV002"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(e.Rekor.CanonicalizedBody, &body); err != nil {
			t.Fatal(err)
		}
		kinds[e.Role+" "+body.Spec.HashedRekordV002.Signature.Verifier.KeyDetails]++
	}
	if kinds["timestamp PKIX_ECDSA_P256_SHA_256"] == 0 || kinds["snapshot PKIX_ECDSA_P256_SHA_256"] == 0 || kinds["recently-claimed PKIX_ED25519_PH"] == 0 {
		t.Fatalf("entry kinds %v", kinds)
	}
	out := maint.ok(t, "audit", "--rekor-key", keyFile)
	if !strings.Contains(out, "OK: every signed version is in the transparency log") {
		t.Fatalf("audit: %s", out)
	}
	// Without --rekor-key the key the server reports is used, with a warning.
	code, out, errs := maint.run(t, "audit")
	if code != 0 || !strings.Contains(errs, "WARNING: the transparency log key was taken from the server being audited") {
		t.Fatalf("audit without --rekor-key: exit %d\n%s\n%s", code, out, errs)
	}
}
