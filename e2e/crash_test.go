package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/tufrepo"
)

// buildCairnd builds cmd/cairnd into the test's temporary directory.
func buildCairnd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cairnd")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/cairnd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building cairnd: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestCrashBetweenMetadataFileAndCommit: cairnd keeps large signed metadata as files
// written before the publish transaction commits. A kill -9 right after the file is written
// and before the commit leaves a file no row names; nothing is published that has no
// bytes, no version gets two byte strings, the upload that publish carried is neither
// acknowledged nor stored (group commit), the next publish succeeds, every client reads
// what the database says, and gc collects the orphan.
func TestCrashBetweenMetadataFileAndCommit(t *testing.T) {
	bin := buildCairnd(t)
	// Every signed version goes to a file, so that a small repository exercises the path.
	small := func(c *daemon.Config) { c.MetadataFileMin = 1 }
	w := newWorldWith(t, small)
	u, dir := w.r.Config.DatabaseURL, w.r.Dir
	_ = w.r.Close()
	ctx := context.Background()
	db, err := store.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var headBefore int64
	if err := db.Pool.QueryRow(ctx, `SELECT snapshot_version FROM repo_state`).Scan(&headBefore); err != nil {
		t.Fatal(err)
	}

	// The dying server: it accepts an upload, then dies when its publisher has written
	// the new snapshot's file.
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--dev", "--data-dir", dir, "--database-url", u, "--listen", addr, "--metadata-file-min", "1", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "CAIRN_FAILPOINT=kill-after-metadata-file")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitUp(t, "http://"+addr, done)
	f3 := testrepo.File{Path: "demo/3.0.0/demo-3.0.0.tar.gz", Content: []byte("the third release, uploaded as the server dies")}
	dying := &testrepo.Repo{Running: &daemon.Running{URL: "http://" + addr}, AdminToken: w.r.AdminToken}
	dying.PutBlob(t, w.r.AdminToken, f3.Content)
	raw := testrepo.Sign(t, testrepo.Role(4, time.Now().Add(30*24*time.Hour), w.f1, w.f2, f3), w.alice)
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/projects/demo/roles?wait=30s", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+w.r.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusCreated {
			t.Fatalf("the upload was acknowledged as published by a server that must have died before its commit")
		}
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("cairnd did not die by SIGKILL: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("the failpoint did not fire\n%s", stderr.String())
	}

	// Nothing was published; the new snapshot's file is there, named by no row.
	var headAfter int64
	if err := db.Pool.QueryRow(ctx, `SELECT snapshot_version FROM repo_state`).Scan(&headAfter); err != nil || headAfter != headBefore {
		t.Fatalf("head moved from snapshot %d to %d (%v) although the publish died before its commit", headBefore, headAfter, err)
	}
	orphans := metadataFilesNamedByNoRow(t, db, dir)
	if len(orphans) == 0 {
		t.Fatalf("no orphaned metadata file: the failpoint fired before the file was written")
	}

	// The upload was never acknowledged, and nothing of it was stored: it was in the
	// publish that died (group commit).
	var roleVersion int64
	if err := db.Pool.QueryRow(ctx, `SELECT role_version FROM projects WHERE name = 'demo'`).Scan(&roleVersion); err != nil || roleVersion != 3 {
		t.Fatalf("demo is at role version %d (%v) after the crash, want 3: an unacknowledged upload was stored", roleVersion, err)
	}

	// The server comes back; the maintainer uploads again (the answer never came) and it is
	// published. What is served, what the rows say and what the files hold agree, for
	// every client.
	r := testrepo.Boot(t, u, func(c *daemon.Config) { c.DataDir = dir; small(c) })
	w.r = r
	if resp := r.Submit(t, r.AdminToken, "demo", raw); resp.Status != http.StatusCreated {
		t.Fatalf("the upload again after the crash: %d %s", resp.Status, resp.Body)
	}
	publishAll(t, r)
	checkFilesMatchRows(t, w, dir)
	for _, c := range clients(t, r) {
		for _, f := range []testrepo.File{w.f1, w.f2, f3} {
			got, err := c.get(t, f.Path)
			if err != nil || !bytes.Equal(got, f.Content) {
				t.Fatalf("%s after the crash: %s: %v", c.name, f.Path, err)
			}
		}
	}
	// gc removes the orphan and nothing else.
	blobs, err := blobstore.OpenDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.DB.RemoveOrphanMeta(ctx, blobs.Meta, 0, time.Now(), false)
	if err != nil || n != len(orphans) {
		t.Fatalf("gc removed %d orphaned files (%v), want %d", n, err, len(orphans))
	}
	checkFilesMatchRows(t, w, dir)
	if left := metadataFilesNamedByNoRow(t, db, dir); len(left) != 0 {
		t.Fatalf("orphans left after gc: %v", left)
	}
}

func waitUp(t *testing.T, url string, done chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("cairnd exited while starting: %v", err)
		default:
		}
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("cairnd did not come up at %s", url)
}

// metadataFilesNamedByNoRow lists the metadata files no row with stored = 'file' names.
func metadataFilesNamedByNoRow(t *testing.T, db *store.DB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "blobs", "metadata"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		sum, _ := hex.DecodeString(e.Name())
		var named bool
		if err := db.Pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM metadata WHERE sha256 = $1 AND stored = 'file')`, sum).Scan(&named); err != nil {
			t.Fatal(err)
		}
		if !named {
			out = append(out, e.Name())
		}
	}
	return out
}

// checkFilesMatchRows checks that every row kept in a file has its file, with exactly the
// bytes the row's sha256 and length name, and that the server serves those bytes.
func checkFilesMatchRows(t *testing.T, w *world, dir string) {
	t.Helper()
	rows, err := w.r.DB.Pool.Query(context.Background(), `SELECT role, version, length, sha256 FROM metadata WHERE stored = 'file' AND snapshot_version IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		role    string
		version int64
		length  int64
		sum     []byte
	}
	var rs []row
	for rows.Next() {
		var x row
		if err := rows.Scan(&x.role, &x.version, &x.length, &x.sum); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, x)
	}
	if len(rs) == 0 {
		t.Fatal("no metadata is kept in files")
	}
	for _, x := range rs {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", "metadata", hex.EncodeToString(x.sum)))
		if err != nil {
			t.Fatalf("%s version %d: %v", x.role, x.version, err)
		}
		if s := sha256.Sum256(b); !bytes.Equal(s[:], x.sum) || int64(len(b)) != x.length {
			t.Fatalf("%s version %d: the file does not hold the bytes its row names", x.role, x.version)
		}
		if x.role == tufrepo.RoleTimestamp {
			continue // only timestamp.json is served
		}
		resp := w.r.Do(t, http.MethodGet, fmt.Sprintf("/metadata/%d.%s.json", x.version, x.role), "", "", nil)
		if resp.Status != http.StatusOK || !bytes.Equal(resp.Body, b) {
			t.Fatalf("%s version %d: served %d, %d bytes; the file holds %d", x.role, x.version, resp.Status, len(resp.Body), len(b))
		}
	}
}
