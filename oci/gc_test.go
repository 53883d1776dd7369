package oci_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/store/blobstore"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
)

// TestGarbageCollection runs `cairnd gc` on a registry holding an unreferenced blob, a
// referenced one, an open upload session, a release file and an orphaned upload file:
// --dry-run changes nothing; a real run removes exactly the garbage; a grace period
// protects what is young.
func TestGarbageCollection(t *testing.T) {
	dbu := privateDB(t)
	r := testrepo.Boot(t, dbu, func(c *daemon.Config) { c.OCIAnonymousPull = true })
	base, admin := r.URL, "basic:"+r.AdminToken
	garbage := pushBlob(t, base, "g/x", admin, []byte("nobody references me"))
	layer, config := []byte("a referenced layer"), []byte(`{"os":"linux"}`)
	pushBlob(t, base, "g/x", admin, layer)
	cfg := pushBlob(t, base, "g/x", admin, config)
	if p := do(t, base, req{method: "PUT", path: "/v2/g/x/manifests/v1", auth: admin, body: imageManifest(cfg, len(config), layer), header: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}}); p.status != 201 {
		t.Fatalf("manifest: %d %s", p.status, p.body)
	}
	s := do(t, base, req{method: "POST", path: "/v2/g/x/blobs/uploads/", auth: admin})
	do(t, base, req{method: "PATCH", path: s.header.Get("Location"), auth: admin, body: []byte("half an upload")})
	// A release file that was also pushed over OCI, then unlinked: the file must stay.
	key := testrepo.NewKey(t, tufrepo.KeyEd25519)
	rel := testrepo.File{Path: "gproj/1.0/gproj.tar.gz", Content: []byte("a release file")}
	publishRelease(t, r, key, "gproj", 2, rel)
	shared := pushBlob(t, base, "g/y", admin, rel.Content)
	if d := do(t, base, req{method: "DELETE", path: "/v2/g/y/blobs/" + shared, auth: admin}); d.status != 202 {
		t.Fatalf("unlinking: %d %s", d.status, d.body)
	}
	orphan := filepath.Join(r.Config.BlobDir, "uploads", "00000000000000000000000000000000")
	if err := os.WriteFile(orphan, []byte("crash leftovers"), 0o600); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(r.Config.BlobDir, "uploads", "00000000000000000000000000000001.sha256")
	if err := os.WriteFile(leftover, []byte("a hash state without its upload"), 0o600); err != nil {
		t.Fatal(err)
	}

	gc := func(args ...string) store.OCIGCReport {
		t.Helper()
		var out, errb bytes.Buffer
		args = append([]string{"gc", "--database-url", dbu, "--blob-dir", r.Config.BlobDir, "--log-level", "warn"}, args...)
		if code := daemon.Main(context.Background(), args, &out, &errb, func(string) string { return "" }); code != 0 {
			t.Fatalf("cairnd %v: exit %d: %s", args, code, errb.String())
		}
		var rep store.OCIGCReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("gc report: %v: %s", err, out.String())
		}
		return rep
	}
	before := state(t, r)
	if rep := gc("--grace", "0s", "--upload-ttl", "0s", "--dry-run"); !rep.DryRun || !slices.Contains(rep.Blobs, garbage) || rep.Sessions != 1 {
		t.Fatalf("dry run report: %+v", rep)
	}
	if state(t, r) != before {
		t.Fatal("--dry-run changed the state")
	}
	// Young garbage is protected by the default grace period.
	if rep := gc(); len(rep.Blobs) != 0 || rep.Sessions != 0 || rep.UploadFiles != 0 || rep.Links != 0 {
		t.Fatalf("gc within the grace period removed: %+v", rep)
	}
	rep := gc("--grace", "0s", "--upload-ttl", "0s")
	if !slices.Equal(rep.Blobs, []string{garbage}) || rep.Sessions != 1 || rep.UploadFiles != 2 || rep.KeptFiles != 1 {
		t.Fatalf("gc report: %+v", rep)
	}
	for _, f := range []string{orphan, leftover} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s survived: %v", f, err)
		}
	}
	for d, want := range map[string]bool{garbage: false, sha(layer): true, cfg: true, shared: true} {
		path := filepath.Join(r.Config.BlobDir, "sha256", d[7:9], d[7:])
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("blob %s: present=%v, want %v", d, err == nil, want)
		}
	}
	if g := do(t, base, req{method: "GET", path: "/v2/g/x/manifests/v1"}); g.status != 200 {
		t.Errorf("the manifest broke: %d", g.status)
	}
	if g := do(t, base, req{method: "GET", path: "/v2/g/x/blobs/" + sha(layer)}); g.status != 200 {
		t.Errorf("a referenced blob went: %d", g.status)
	}
	if g := do(t, base, req{method: "GET", path: "/targets/" + rel.Path[:len("gproj/1.0/")] + sha(rel.Content)[7:] + ".gproj.tar.gz"}); g.status != 200 {
		t.Errorf("the release file went: %d", g.status)
	}
	// Pushing the collected blob again works.
	pushBlob(t, base, "g/x", admin, []byte("nobody references me"))
}

// TestConcurrentWrites: two chunks racing for the same place of one session (one wins,
// the other is told where the session is), and garbage collection with no grace period
// running in a loop while blobs are pushed, read and unlinked: a pushed blob is always
// readable until it is unlinked.
func TestConcurrentWrites(t *testing.T) {
	r := testrepo.Boot(t, privateDB(t), func(c *daemon.Config) { c.OCIAnonymousPull = true })
	base, admin := r.URL, "basic:"+r.AdminToken

	s := do(t, base, req{method: "POST", path: "/v2/c/x/blobs/uploads/", auth: admin})
	loc := s.header.Get("Location")
	chunks := [][]byte{bytes.Repeat([]byte("a"), 1000), bytes.Repeat([]byte("b"), 1000)}
	statuses := make([]int, 2)
	var wg sync.WaitGroup
	for i := range chunks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = do(t, base, req{method: "PATCH", path: loc, auth: admin, body: chunks[i], header: map[string]string{"Content-Range": "0-999"}}).status
		}()
	}
	wg.Wait()
	slices.Sort(statuses)
	if !slices.Equal(statuses, []int{202, 416}) {
		t.Fatalf("racing chunks: %v, want one 202 and one 416", statuses)
	}
	var winner []byte
	for _, c := range chunks {
		if p := do(t, base, req{method: "PUT", path: loc + "?digest=" + sha(c), auth: admin}); p.status == 201 {
			winner = c
			break
		}
	}
	if g := do(t, base, req{method: "GET", path: "/v2/c/x/blobs/" + sha(winner)}); g.status != 200 || !bytes.Equal(g.body, winner) {
		t.Fatalf("the winning chunk's blob: %d", g.status)
	}

	db, blobs := r.DB, mustBlobs(t, r.Config.BlobDir)
	stop := make(chan struct{})
	gcErr := make(chan error, 1)
	go func() {
		defer close(gcErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.OCIGarbageCollect(context.Background(), blobs, store.OCIGCOptions{UploadTTL: time.Hour, Now: time.Now}); err != nil && !strings.Contains(err.Error(), "another OCI garbage collection") {
				gcErr <- err
				return
			}
		}
	}()
	// With no grace period the collector may take a link the moment it exists (no manifest
	// references it), so a read may find the blob gone (404), but never broken: and every
	// blob that is still linked at the end has its file.
	content := []byte("pushed, read, unlinked, collected, pushed again")
	for i := range 40 {
		d := pushBlob(t, base, "c/x", admin, content)
		if g := do(t, base, req{method: "GET", path: "/v2/c/x/blobs/" + d}); !(g.status == 200 && bytes.Equal(g.body, content)) && g.status != 404 {
			t.Fatalf("round %d: reading a pushed blob: %d %q", i, g.status, g.body)
		}
		if m := do(t, base, req{method: "POST", path: "/v2/c/y/blobs/uploads/?mount=" + d + "&from=c/x", auth: admin}); m.status == 201 {
			if g := do(t, base, req{method: "GET", path: "/v2/c/y/blobs/" + d}); !(g.status == 200 && bytes.Equal(g.body, content)) && g.status != 404 {
				t.Fatalf("round %d: reading a mounted blob: %d", i, g.status)
			}
		}
		if del := do(t, base, req{method: "DELETE", path: "/v2/c/x/blobs/" + d, auth: admin}); del.status != 202 && del.status != 404 {
			t.Fatalf("round %d: unlink: %d %s", i, del.status, del.body)
		}
	}
	close(stop)
	if err := <-gcErr; err != nil {
		t.Fatal(err)
	}
	pushBlob(t, base, "c/z", admin, content)
	rows, err := db.Pool.Query(context.Background(), `SELECT DISTINCT digest FROM oci_repo_blobs`)
	if err != nil {
		t.Fatal(err)
	}
	linked, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range linked {
		if _, err := blobs.Content.Stat(context.Background(), d); err != nil {
			t.Errorf("blob %s is linked but its file is gone: %v", d, err)
		}
	}
}

func mustBlobs(t *testing.T, dir string) *blobstore.Store {
	t.Helper()
	b, err := blobstore.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
