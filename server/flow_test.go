package server_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// freshRepo boots a server on its own database, so tests that compare database contents
// do not see each other's writes.
func freshRepo(t *testing.T) *testrepo.Repo {
	t.Helper()
	u, drop, err := testdb.Create("server_" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, func(c *daemon.Config) { c.MaxBlobSize = 1 << 20 })
	t.Cleanup(drop) // registered after Boot's cleanup, so it runs after the server stopped
	return r
}

func newUpdater(t *testing.T, r *testrepo.Repo) *updater.Updater {
	t.Helper()
	cfg, err := config.New(r.URL+"/metadata", r.RootJSON)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteTargetsURL = r.URL + "/targets"
	cfg.LocalMetadataDir = t.TempDir()
	cfg.LocalTargetsDir = t.TempDir()
	u, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUploadPublishDownload(t *testing.T) {
	r := freshRepo(t)
	alice := testrepo.NewKey(t, tufrepo.KeyEd25519)
	created := r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{alice}, alice)
	if created.Status != api.StatusPublished || created.SnapshotVersion != 2 {
		t.Fatalf("create: %+v", created)
	}
	f1 := testrepo.File{Path: "demo/1.0/demo-1.0.tar.gz", Content: []byte("release one")}
	f2 := testrepo.File{Path: "demo/2.0/demo-2.0.tar.gz", Content: []byte("release two, longer")}
	r.PutBlob(t, r.AdminToken, f1.Content)
	resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(2, time.Now().Add(30*24*time.Hour), f1), alice))
	if resp.Status != http.StatusCreated {
		t.Fatalf("upload 1: %d %s", resp.Status, resp.Body)
	}
	r.PutBlob(t, r.AdminToken, f2.Content)
	resp = r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(3, time.Now().Add(30*24*time.Hour), f1, f2), alice))
	if resp.Status != http.StatusCreated {
		t.Fatalf("upload 2: %d %s", resp.Status, resp.Body)
	}
	var res api.SubmitResult
	if err := json.Unmarshal(resp.Body, &res); err != nil || res.Status != api.StatusPublished || res.SnapshotVersion < 4 {
		t.Fatalf("upload 2 result: %+v %v", res, err)
	}

	u := newUpdater(t, r)
	if err := u.Refresh(); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	for _, f := range []testrepo.File{f1, f2} {
		ti, err := u.GetTargetInfo(f.Path)
		if err != nil {
			t.Fatalf("target info %s: %v", f.Path, err)
		}
		out := filepath.Join(t.TempDir(), "out")
		_, data, err := u.DownloadTarget(ti, out, "")
		if err != nil {
			t.Fatalf("download %s: %v", f.Path, err)
		}
		if string(data) != string(f.Content) {
			t.Fatalf("download %s: got %q", f.Path, data)
		}
		if b, _ := os.ReadFile(out); string(b) != string(f.Content) {
			t.Fatalf("file %s: got %q", out, b)
		}
	}

	var rl api.ReleaseList
	if err := json.Unmarshal(r.Do(t, http.MethodGet, "/api/v1/projects/demo/releases", "", "", nil).Body, &rl); err != nil {
		t.Fatal(err)
	}
	if len(rl.Releases) != 2 || rl.Releases[0].Version != "2.0" || !rl.Releases[0].Published || rl.Releases[1].Files[0].Length != int64(len(f1.Content)) {
		t.Fatalf("releases: %+v", rl)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
