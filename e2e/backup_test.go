package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testenv"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/internal/tufjs"
	"github.com/cairn-dev/cairn/tufrepo"
)

// front is the address clients know (a load balancer, a DNS name): it forwards to one
// cairnd, and the operator points it at a restored one.
type front struct {
	URL    string
	target atomic.Pointer[url.URL]
}

func newFront(t *testing.T, to string) *front {
	t.Helper()
	f := &front{}
	f.point(t, to)
	srv := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(f.target.Load()) }})
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *front) point(t *testing.T, to string) {
	t.Helper()
	u, err := url.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	f.target.Store(u)
}

// backup is what docs/operations.md "Backup" takes: a pg_dump in custom format, then a
// copy of the data directory (keys of a dev repository, and the blob directory).
type backup struct {
	dump string
	dir  string
}

// pgTool finds a PostgreSQL client program: on PATH, else in the server's bin directory.
func pgTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name); len(m) > 0 {
		return m[len(m)-1]
	}
	testenv.MissingTool(t, name+" is not installed (it ships with the PostgreSQL client: apt-get install postgresql-client)")
	return ""
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// takeBackup dumps the database first and copies the files second: blobs and metadata
// files are written before the rows that name them commit, and never changed, so a copy
// taken after the dump holds every file the dump names.
func takeBackup(t *testing.T, dbURL, dataDir string) backup {
	t.Helper()
	b := backup{dump: filepath.Join(t.TempDir(), "cairn.dump"), dir: filepath.Join(t.TempDir(), "data")}
	run(t, pgTool(t, "pg_dump"), "--format=custom", "--file", b.dump, "--dbname", dbURL)
	run(t, "cp", "-a", dataDir, b.dir)
	return b
}

// restoreBackup restores b into a new, empty database and a new directory, and starts a
// production-mode cairnd on them (online keys given by URI, as from a KMS).
func restoreBackup(t *testing.T, b backup, adminToken string, rootJSON []byte) *testrepo.Repo {
	t.Helper()
	u, drop, err := testdb.Create("e2e_restored_" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	dir := filepath.Join(t.TempDir(), "data")
	run(t, "cp", "-a", b.dir, dir)
	run(t, pgTool(t, "pg_restore"), "--no-owner", "--exit-on-error", "--dbname", u, b.dump)
	c := restoredConfig(u, dir)
	r, err := daemon.Start(context.Background(), c, os.Getenv, io.Discard, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("starting cairnd on the restored database: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return &testrepo.Repo{Running: r, Dir: dir, AdminToken: adminToken, RootJSON: rootJSON}
}

func keyURI(dir, role string) string {
	keys := filepath.Join(dir, "keys")
	return (&url.URL{Scheme: "file", Path: filepath.Join(keys, role+".json"), RawQuery: "passphrase-file=" + url.QueryEscape(filepath.Join(keys, "passphrase"))}).String()
}

func restoredConfig(dbURL, dir string) daemon.Config {
	return daemon.Config{
		Listen: "127.0.0.1:0", DatabaseURL: dbURL, BlobDir: filepath.Join(dir, "blobs"),
		TimestampKey: keyURI(dir, tufrepo.RoleTimestamp), SnapshotKey: keyURI(dir, tufrepo.RoleSnapshot), RecentlyClaimedKey: keyURI(dir, tufrepo.RoleRecentlyClaimed),
		MaxBlobSize: 1 << 30, PublishInterval: time.Hour, LogLevel: "warn",
	}
}

// metadataURLs lists every published metadata URL of r, and the target URLs.
func metadataURLs(t *testing.T, r *testrepo.Repo) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := r.DB.Pool.Query(ctx, `SELECT role, version FROM metadata WHERE snapshot_version IS NOT NULL ORDER BY role, version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	urls := []string{"/metadata/timestamp.json", "/metadata/root.json"}
	for rows.Next() {
		var role string
		var v int64
		if err := rows.Scan(&role, &v); err != nil {
			t.Fatal(err)
		}
		if role != tufrepo.RoleTimestamp {
			urls = append(urls, "/metadata/"+itoa(v)+"."+role+".json")
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	paths, err := r.DB.Pool.Query(ctx, `SELECT path, encode(sha256, 'hex') FROM release_files ORDER BY path`)
	if err != nil {
		t.Fatal(err)
	}
	defer paths.Close()
	for paths.Next() {
		var p, sum string
		if err := paths.Scan(&p, &sum); err != nil {
			t.Fatal(err)
		}
		dir, file := p[:strings.LastIndex(p, "/")+1], p[strings.LastIndex(p, "/")+1:]
		urls = append(urls, "/targets/"+dir+sum+"."+file)
	}
	return urls
}

// sameBytes checks that every URL answers 200 with the same bytes on both servers.
func sameBytes(t *testing.T, a, b *testrepo.Repo, urls []string) {
	t.Helper()
	for _, u := range urls {
		ra, rb := a.Do(t, http.MethodGet, u, "", "", nil), b.Do(t, http.MethodGet, u, "", "", nil)
		if ra.Status != http.StatusOK || rb.Status != http.StatusOK || !bytes.Equal(ra.Body, rb.Body) {
			t.Errorf("%s: original %d (%d bytes), restored %d (%d bytes), same bytes %v", u, ra.Status, len(ra.Body), rb.Status, len(rb.Body), bytes.Equal(ra.Body, rb.Body))
		}
	}
}

func getAll(t *testing.T, cs []client, files ...testrepo.File) {
	t.Helper()
	for _, c := range cs {
		for _, f := range files {
			got, err := c.get(t, f.Path)
			if err != nil {
				t.Fatalf("%s: %s: %v", c.name, f.Path, err)
			}
			if !bytes.Equal(got, f.Content) {
				t.Fatalf("%s: %s: got %q", c.name, f.Path, got)
			}
		}
	}
}

// repoState is what a refused command must leave as it was.
func repoState(t *testing.T, r *testrepo.Repo) string {
	t.Helper()
	var s string
	if err := r.DB.Pool.QueryRow(context.Background(), `SELECT format('head %s/%s, %s metadata rows, %s audit entries, %s shards dirty',
		(SELECT snapshot_version FROM repo_state), (SELECT timestamp_version FROM repo_state), (SELECT count(*) FROM metadata),
		(SELECT count(*) FROM audit_log), (SELECT count(*) FROM shards WHERE dirty))`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s + ", timestamp.json " + sha(r.Do(t, http.MethodGet, "/metadata/timestamp.json", "", "", nil).Body)
}

// cairndPublish runs `cairnd publish` in-process against r's database and directory.
func cairndPublish(r *testrepo.Repo, args ...string) (int, string, string) {
	c := restoredConfig(r.Config.DatabaseURL, r.Dir)
	args = append([]string{"publish", "--database-url", c.DatabaseURL, "--blob-dir", c.BlobDir,
		"--timestamp-key", c.TimestampKey, "--snapshot-key", c.SnapshotKey, "--recently-claimed-key", c.RecentlyClaimedKey, "--log-level", "warn"}, args...)
	var out, errb bytes.Buffer
	code := daemon.Main(context.Background(), args, &out, &errb, os.Getenv)
	return code, out.String(), errb.String()
}

// TestBackupAndRestore: a pg_dump plus a copy of the data directory, restored into a new
// database, serves the very same bytes, and clients that cached metadata from the
// original go on from their caches.
func TestBackupAndRestore(t *testing.T) {
	w := newWorld(t)
	f := newFront(t, w.r.URL)
	cs := append(tufClients(t, w.r.RootJSON, f.URL), cliClientAt(t, f.URL, w.r.RootJSON))
	getAll(t, cs, w.f1, w.f2)

	b := takeBackup(t, w.r.Config.DatabaseURL, w.r.Dir)
	restored := restoreBackup(t, b, w.r.AdminToken, w.r.RootJSON)
	urls := metadataURLs(t, w.r)
	if len(urls) < 12 {
		t.Fatalf("only %d URLs to compare: %v", len(urls), urls)
	}
	sameBytes(t, w.r, restored, urls)
	if got := metadataURLs(t, restored); strings.Join(got, " ") != strings.Join(urls, " ") {
		t.Errorf("the restored database publishes other versions:\n%v\n%v", got, urls)
	}

	f.point(t, restored.URL)
	getAll(t, cs, w.f1, w.f2)
	// And the restored server goes on publishing: a new release reaches every client.
	f3 := testrepo.File{Path: "demo/3.0.0/demo-3.0.0.tar.gz", Content: []byte("the third release, uploaded after the restore")}
	restored.PutBlob(t, restored.AdminToken, f3.Content)
	if resp := restored.Submit(t, restored.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(4, time.Now().Add(90*24*time.Hour), w.f1, w.f2, f3), w.alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload to the restored server: %d %s", resp.Status, resp.Body)
	}
	getAll(t, cs, f3, w.f1)
}

// TestRestoreOlderThanClientsSaw: the backup restored is older than metadata clients have
// already trusted. Every client refuses the restored server (rollback); `cairnd publish
// --bump-to` re-signs the online roles above what they saw, the maintainer uploads the
// project role version the restore lost again, and every client goes on.
func TestRestoreOlderThanClientsSaw(t *testing.T) {
	w := newWorld(t)
	f := newFront(t, w.r.URL)
	cs := append(tufClients(t, w.r.RootJSON, f.URL), cliClientAt(t, f.URL, w.r.RootJSON))
	getAll(t, cs, w.f1)
	old := takeBackup(t, w.r.Config.DatabaseURL, w.r.Dir)

	// After the backup: a new release and a new project, which clients see.
	f3 := testrepo.File{Path: "demo/3.0.0/demo-3.0.0.tar.gz", Content: []byte("the third release of demo, lost by the restore")}
	w.r.PutBlob(t, w.r.AdminToken, f3.Content)
	lostRole := testrepo.Sign(t, testrepo.Role(4, time.Now().Add(90*24*time.Hour), w.f1, w.f2, f3), w.alice)
	if resp := w.r.Submit(t, w.r.AdminToken, "demo", lostRole); resp.Status != http.StatusCreated {
		t.Fatalf("upload 3: %d %s", resp.Status, resp.Body)
	}
	carol := testrepo.NewKey(t, tufrepo.KeyEd25519)
	w.r.CreateProject(t, w.r.AdminToken, "other", 1, []*testrepo.Key{carol}, carol)
	publishAll(t, w.r)
	getAll(t, cs, f3)
	_, seen, err := w.r.DB.Heads(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	restored := restoreBackup(t, old, w.r.AdminToken, w.r.RootJSON)
	f.point(t, restored.URL)
	for _, c := range cs {
		checkRefused(t, c, w.f1.Path, refusal{isBadVersion, tufjs.ExitPolicy, 4})
	}

	// Bad input for the recovery command is refused with a reason and changes nothing.
	_, cur, err := restored.DB.Heads(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	before := repoState(t, restored)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"zero", []string{"--bump-to", "0"}, "want a version above every timestamp and snapshot version"},
		{"negative", []string{"--bump-to", "-4"}, "want a version above every timestamp and snapshot version"},
		{"not a number", []string{"--bump-to", "ten"}, "invalid argument"},
		{"the current version", []string{"--bump-to", itoa(cur)}, "is not above the current timestamp version " + itoa(cur)},
		{"a typo's jump", []string{"--bump-to", itoa(cur + tufrepo.MaxForwardJump + 1)}, "a typo?"},
		{"past what JavaScript reads exactly", []string{"--bump-to", "9007199254740993"}, "past the versions every TUF client reads exactly"},
		{"wrong online key", []string{"--bump-to", itoa(seen + 100), "--timestamp-key", keyURI(restored.Dir, tufrepo.RoleSnapshot)}, "refusing to publish"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := cairndPublish(restored, tc.args...)
			if code == 0 || !strings.Contains(errs, tc.want) {
				t.Fatalf("cairnd publish %v: exit %d, stderr %q; want a refusal naming %q", tc.args, code, errs, tc.want)
			}
			if after := repoState(t, restored); after != before {
				t.Fatalf("a refused bump changed the repository:\n%s\n%s", before, after)
			}
		})
	}

	// The recovery: every online-signed role moves above what any client may have seen.
	floor := seen + 100
	code, out, errs := cairndPublish(restored, "--bump-to", itoa(floor))
	if code != 0 || !strings.Contains(out, "published snapshot version "+itoa(floor)+" and timestamp version "+itoa(floor)) {
		t.Fatalf("cairnd publish --bump-to %d: exit %d\nstdout: %s\nstderr: %s", floor, code, out, errs)
	}
	waitForTimestamp(t, restored, floor)
	// The snapshot still lists the project role at the version before the one clients
	// trust, and not the project created after the backup: until their maintainers upload
	// them again, clients refuse the snapshot (a rollback of "demo", "other" missing).
	for _, c := range cs {
		if _, err := c.get(t, w.f1.Path); err == nil {
			t.Fatalf("%s accepted a snapshot without the project role versions it trusts", c.name)
		}
	}
	// The maintainer uploads the lost version again, the very bytes clients saw (kept by
	// the maintainer, or taken from any client's cache: they verify against the keys), and
	// the project created after the backup is created again.
	restored.PutBlob(t, restored.AdminToken, f3.Content)
	if resp := restored.Submit(t, restored.AdminToken, "demo", lostRole); resp.Status != http.StatusCreated {
		t.Fatalf("uploading the lost role again: %d %s", resp.Status, resp.Body)
	}
	restored.CreateProject(t, restored.AdminToken, "other", 1, []*testrepo.Key{carol}, carol)
	getAll(t, cs, f3, w.f1, w.f2)
}
