package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

// metaFile finds the metadata file named by sum under dir.
func metaFile(t *testing.T, dir string, sum []byte) string {
	t.Helper()
	var found string
	name := hex.EncodeToString(sum)
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == name && filepath.Base(filepath.Dir(p)) == "metadata" {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no metadata file %s under %s", name, dir)
	}
	return found
}

// TestLostSnapshotFileIsRebuilt: a snapshot's file is written before its publish commits
// but synced after, so a machine that goes down in between can lose it or leave it torn.
// The rows can rebuild it: a replica reading it and the publisher reloading it rebuild the
// exact bytes, check them against the sha256 the row (and the timestamp) names, write them
// back, and carry on; rows that no longer say what the snapshot listed rebuild nothing.
func TestLostSnapshotFileIsRebuilt(t *testing.T) {
	files := func(c *daemon.Config) { c.MetadataFileMin = 1 }
	w := newWorldWith(t, files)
	ctx := context.Background()
	u, dir := w.r.Config.DatabaseURL, w.r.Dir
	type snap struct {
		version int64
		sum     []byte
		path    string
		want    []byte
	}
	var snaps []*snap
	rows, err := w.r.DB.Pool.Query(ctx, `SELECT version, sha256 FROM metadata WHERE role = 'snapshot' AND stored = 'file' AND rebuild_head IS NOT NULL ORDER BY version DESC LIMIT 2`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		s := &snap{}
		if err := rows.Scan(&s.version, &s.sum); err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, s)
	}
	if rows.Err() != nil || len(snaps) != 2 {
		t.Fatalf("want the two newest snapshots stored as rebuildable files, got %d (%v)", len(snaps), rows.Err())
	}
	for _, s := range snaps {
		s.path = metaFile(t, dir, s.sum)
		if s.want, err = os.ReadFile(s.path); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.r.Close(); err != nil {
		t.Fatal(err)
	}
	// The head's file is gone; the one before it is torn (the same size, other bytes).
	if err := os.Remove(snaps[0].path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(snaps[1].path, bytes.Repeat([]byte{'x'}, len(snaps[1].want)), 0o640); err != nil {
		t.Fatal(err)
	}

	r := testrepo.Boot(t, u, func(c *daemon.Config) { files(c); c.DataDir = dir })
	for _, s := range snaps {
		resp := r.Do(t, http.MethodGet, "/metadata/"+itoa(s.version)+".snapshot.json", "", "", nil)
		if resp.Status != http.StatusOK || !bytes.Equal(resp.Body, s.want) {
			t.Fatalf("snapshot %d after its file was lost: %d, %d bytes, want the %d signed bytes", s.version, resp.Status, len(resp.Body), len(s.want))
		}
		if got, err := os.ReadFile(s.path); err != nil || !bytes.Equal(got, s.want) {
			t.Errorf("snapshot %d: the rebuilt file was not written back (%v)", s.version, err)
		}
	}
	// Clients verify through the replica, and the publisher (which reloads the head from
	// the rebuilt file) publishes the next upload.
	for _, c := range clients(t, r) {
		if got, err := c.get(t, w.f2.Path); err != nil || !bytes.Equal(got, w.f2.Content) {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	f3 := testrepo.File{Path: "demo/3.0.0/demo-3.0.0.tar.gz", Content: []byte("the third release of demo")}
	r.PutBlob(t, r.AdminToken, f3.Content)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(4, time.Now().Add(24*time.Hour), w.f1, w.f2, f3), w.alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload after the rebuild: %d %s", resp.Status, resp.Body)
	}
	for _, c := range clients(t, r) {
		if got, err := c.get(t, f3.Path); err != nil || !bytes.Equal(got, f3.Content) {
			t.Fatalf("%s after the next publish: %v", c.name, err)
		}
	}

	// Rows that do not say what a snapshot listed rebuild nothing: the bytes would not be
	// the signed ones.
	var head int64
	var sum []byte
	if err := r.DB.Pool.QueryRow(ctx, `SELECT version, sha256 FROM metadata WHERE role = 'snapshot' ORDER BY version DESC LIMIT 1`).Scan(&head, &sum); err != nil {
		t.Fatal(err)
	}
	path := metaFile(t, dir, sum)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DB.Pool.Exec(ctx, `UPDATE metadata SET length = length + 1 WHERE role = 'demo' AND version = 4`); err != nil {
		t.Fatal(err)
	}
	_, err = r.DB.PublishedMetadata(ctx, tufrepo.RoleSnapshot, head)
	if err == nil || !strings.Contains(err.Error(), "rebuilt bytes have sha256") {
		t.Fatalf("rebuilding from rows that changed: %v, want a refusal naming the sha256", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("a rebuild that did not match was written")
	}
}
