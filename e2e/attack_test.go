package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/internal/tufjs"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// world is a repository with project "demo" (maintainers alice, ed25519, and bob, ECDSA
// P-256) and two releases, one signed by each.
type world struct {
	r      *testrepo.Repo
	alice  *testrepo.Key
	bob    *testrepo.Key
	f1, f2 testrepo.File
}

func newWorld(t *testing.T) *world { t.Helper(); return newWorldWith(t, nil) }

// newWorldWith is newWorld with a change to cairnd's configuration.
func newWorldWith(t *testing.T, tweak func(*daemon.Config)) *world {
	t.Helper()
	u, drop, err := testdb.Create("e2e_" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, tweak)
	t.Cleanup(drop)
	w := &world{r: r, alice: testrepo.NewKey(t, tufrepo.KeyEd25519), bob: testrepo.NewKey(t, tufrepo.KeyECDSAP256),
		f1: testrepo.File{Path: "demo/1.0.0/demo-1.0.0.tar.gz", Content: []byte("the first release of demo")},
		f2: testrepo.File{Path: "demo/2.0.0/demo-2.0.0.tar.gz", Content: []byte("the second release of demo, bigger")},
	}
	r.CreateProject(t, r.AdminToken, "demo", 1, []*testrepo.Key{w.alice}, w.alice, w.bob)
	exp := time.Now().Add(90 * 24 * time.Hour)
	r.PutBlob(t, r.AdminToken, w.f1.Content)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(2, exp, w.f1), w.alice)); resp.Status != http.StatusCreated {
		t.Fatalf("upload 1: %d %s", resp.Status, resp.Body)
	}
	r.PutBlob(t, r.AdminToken, w.f2.Content)
	if resp := r.Submit(t, r.AdminToken, "demo", testrepo.Sign(t, testrepo.Role(3, exp, w.f1, w.f2), w.bob)); resp.Status != http.StatusCreated {
		t.Fatalf("upload 2: %d %s", resp.Status, resp.Body)
	}
	return w
}

// client is one downloader with its own trusted-metadata cache, which persists across
// fetches (so rollback protection has something to protect).
type client struct {
	name string
	get  func(t *testing.T, path string) ([]byte, error)
}

func clients(t *testing.T, r *testrepo.Repo) []client {
	t.Helper()
	return append(tufClients(t, r.RootJSON, r.URL), cliClient(t, r))
}

// tufClients are go-tuf and tuf-js, trusting root and reading metadata and targets from
// base (cairnd, or a static server in front of it).
func tufClients(t *testing.T, rootJSON []byte, base string) []client {
	t.Helper()
	gotufDir := t.TempDir()
	gotuf := func(t *testing.T, path string) ([]byte, error) {
		root := rootJSON
		if b, err := os.ReadFile(filepath.Join(gotufDir, "root.json")); err == nil {
			root = b
		}
		cfg, err := config.New(base+"/metadata", root)
		if err != nil {
			return nil, err
		}
		cfg.RemoteTargetsURL = base + "/targets"
		cfg.LocalMetadataDir = gotufDir
		cfg.LocalTargetsDir = t.TempDir()
		u, err := updater.New(cfg)
		if err != nil {
			return nil, err
		}
		if err := u.Refresh(); err != nil {
			return nil, err
		}
		ti, err := u.GetTargetInfo(path)
		if err != nil {
			return nil, err
		}
		_, data, err := u.DownloadTarget(ti, filepath.Join(t.TempDir(), "f"), "")
		return data, err
	}
	jsDir, err := tufjs.Ensure(context.Background())
	if err != nil {
		t.Fatalf("tuf-js: %v", err)
	}
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(rootFile, rootJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	jsCache := t.TempDir()
	js := func(t *testing.T, path string) ([]byte, error) {
		out := t.TempDir()
		res, err := tufjs.Get(context.Background(), tufjs.Options{
			Dir: jsDir, MetadataURL: base + "/metadata", TargetsURL: base + "/targets",
			Root: rootFile, CacheDir: jsCache, OutDir: out, Targets: []string{path},
		})
		if err != nil {
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("tuf-js wrote %d files to the output directory although verification failed", len(entries))
			}
			return nil, err
		}
		return os.ReadFile(res.Targets[0].File)
	}
	return []client{{"go-tuf", gotuf}, {"tuf-js", js}}
}

// cliClient is the cairn CLI against r.
func cliClient(t *testing.T, r *testrepo.Repo) client {
	t.Helper()
	return cliClientAt(t, r.URL, r.RootJSON)
}

// cliClientAt is the cairn CLI against the server at base, trusting rootJSON.
func cliClientAt(t *testing.T, base string, rootJSON []byte) client {
	t.Helper()
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(rootFile, rootJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	cl := newCLI(t, "")
	cl.ok(t, "init", "--server", base, "--root", rootFile)
	cairn := func(t *testing.T, path string) ([]byte, error) {
		parts := strings.Split(path, "/")
		out := t.TempDir()
		code, _, errs := cl.run(t, "get", parts[0]+"@"+parts[1], "--file", parts[2], "-o", out)
		if code != 0 {
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("cairn get wrote %d files although verification failed", len(entries))
			}
			return nil, &cliFailure{code: code, stderr: errs}
		}
		return os.ReadFile(filepath.Join(out, parts[2]))
	}
	return client{"cairn", cairn}
}

// cliFailure is a failed `cairn get`.
type cliFailure struct {
	code   int
	stderr string
}

func (f *cliFailure) Error() string { return fmt.Sprintf("cairn get: exit %d: %s", f.code, f.stderr) }

func TestBothClientsDownloadVerifiedReleases(t *testing.T) {
	w := newWorld(t)
	for _, c := range clients(t, w.r) {
		for _, f := range []testrepo.File{w.f1, w.f2} {
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

// Expectation of one client facing one attack.
type refusal struct {
	gotuf   func(error) bool
	jsExit  int
	cliExit int
}

func isHashMismatch(err error) bool {
	var e *metadata.ErrLengthOrHashMismatch
	return errors.As(err, &e)
}

func isUnsigned(err error) bool {
	var e *metadata.ErrUnsignedMetadata
	return errors.As(err, &e)
}

func isBadVersion(err error) bool {
	var e *metadata.ErrBadVersionNumber
	var eq *metadata.ErrEqualVersionNumber
	return errors.As(err, &e) || errors.As(err, &eq)
}

func checkRefused(t *testing.T, c client, path string, want refusal) {
	t.Helper()
	_, err := c.get(t, path)
	if err == nil {
		t.Fatalf("%s accepted %s", c.name, path)
	}
	switch c.name {
	case "go-tuf":
		if !want.gotuf(err) {
			t.Fatalf("go-tuf refused %s, but with an unexpected error: %v", path, err)
		}
	case "tuf-js":
		var f *tufjs.Failure
		if !errors.As(err, &f) || f.ExitCode != want.jsExit {
			t.Fatalf("tuf-js refused %s with %v, want exit %d", path, err, want.jsExit)
		}
	case "cairn":
		var f *cliFailure
		if !errors.As(err, &f) || f.code != want.cliExit {
			t.Fatalf("cairn get refused %s with %v, want exit %d", path, err, want.cliExit)
		}
	}
}

// TestTamperedFileRefused: the attacker overwrites a stored release file with other bytes of
// the same length.
func TestTamperedFileRefused(t *testing.T) {
	w := newWorld(t)
	blob := filepath.Join(w.r.Dir, "blobs", "sha256", sha(w.f2.Content)[:2], sha(w.f2.Content))
	evil := bytes.Repeat([]byte("X"), len(w.f2.Content))
	if err := os.WriteFile(blob, evil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients(t, w.r) {
		checkRefused(t, c, w.f2.Path, refusal{isHashMismatch, tufjs.ExitHashMismatch, 1})
	}
}

// TestTamperedProjectRoleRefused: the attacker edits the stored bytes of the published
// project role (a target's hash, keeping the length snapshot pins).
func TestTamperedProjectRoleRefused(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var raw []byte
	if err := w.r.DB.Pool.QueryRow(ctx, `SELECT raw FROM metadata WHERE role = 'demo' AND version = 3`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	evilSum := sha([]byte("evil"))
	forged := bytes.Replace(raw, []byte(sha(w.f2.Content)), []byte(evilSum), 1)
	if bytes.Equal(forged, raw) || len(forged) != len(raw) {
		t.Fatal("could not forge the role")
	}
	if _, err := w.r.DB.Pool.Exec(ctx, `UPDATE metadata SET raw = $1 WHERE role = 'demo' AND version = 3`, forged); err != nil {
		t.Fatal(err)
	}
	// cairn get refuses before any signature check: the bytes differ from what the Merkle
	// snapshot's leaf for demo version 3 commits to (exit 1, hash mismatch).
	for _, c := range clients(t, w.r) {
		checkRefused(t, c, w.f2.Path, refusal{isUnsigned, tufjs.ExitSignature, 1})
	}
}

// TestAmbiguousProjectRoleRefused: the attacker serves the project role with its
// "signed" key spelled "Signed" (same length, so snapshot's length still matches). Go's
// decoder would read it as "signed"; JavaScript finds no "signed". Every client refuses it:
// go-tuf because it looks the key up exactly before decoding, tuf-js because the key is
// missing, and cairn get before go-tuf reads it, as ambiguous JSON (exit 10).
func TestAmbiguousProjectRoleRefused(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var raw []byte
	if err := w.r.DB.Pool.QueryRow(ctx, `SELECT raw FROM metadata WHERE role = 'demo' AND version = 3`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(raw, []byte(`"signed":`), []byte(`"Signed":`), 1)
	if bytes.Equal(forged, raw) || len(forged) != len(raw) {
		t.Fatal("could not forge the role")
	}
	if _, err := w.r.DB.Pool.Exec(ctx, `UPDATE metadata SET raw = $1 WHERE role = 'demo' AND version = 3`, forged); err != nil {
		t.Fatal(err)
	}
	anyError := func(err error) bool { return err != nil }
	for _, c := range clients(t, w.r) {
		checkRefused(t, c, w.f2.Path, refusal{anyError, tufjs.ExitOther, 10})
		if c.name == "cairn" {
			if _, err := c.get(t, w.f2.Path); err == nil || !strings.Contains(err.Error(), "JSON parsers could read it differently") {
				t.Errorf("cairn get did not name the ambiguity: %v", err)
			}
		}
	}
}

// TestProjectRoleByUndelegatedKeyRefused: the attacker writes a new project role version,
// signed by their own key, straight into the database, and lets the publisher (with the
// online keys) put it into a snapshot.
func TestProjectRoleByUndelegatedKeyRefused(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	mallory := testrepo.NewKey(t, tufrepo.KeyEd25519)
	evil := testrepo.File{Path: "demo/6.6.6/demo-6.6.6.tar.gz", Content: []byte("malware")}
	w.r.PutBlob(t, w.r.AdminToken, evil.Content)
	raw := testrepo.Sign(t, testrepo.Role(4, time.Now().Add(24*time.Hour), w.f1, w.f2, evil), mallory)
	if _, err := w.r.DB.Pool.Exec(ctx, `INSERT INTO metadata (role, version, raw, length, sha256, expires, action) VALUES ('demo', 4, $1, $2, $3, now() + interval '1 day', 'accepted')`, raw, len(raw), shaBytes(raw)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.r.DB.Pool.Exec(ctx, `INSERT INTO release_files (path, project, version, filename, length, sha256, role_version) VALUES ($1, 'demo', '6.6.6', 'demo-6.6.6.tar.gz', $2, $3, 4)`, evil.Path, len(evil.Content), shaBytes(evil.Content)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.r.DB.Pool.Exec(ctx, `UPDATE projects SET role_version = 4 WHERE name = 'demo'`); err != nil {
		t.Fatal(err)
	}
	publishAll(t, w.r)
	for _, c := range clients(t, w.r) {
		checkRefused(t, c, evil.Path, refusal{isUnsigned, tufjs.ExitSignature, 3})
		// The genuine releases are also unavailable now (the project role no longer
		// verifies), which is the correct, fail-closed outcome.
		checkRefused(t, c, w.f1.Path, refusal{isUnsigned, tufjs.ExitSignature, 3})
	}
}

// TestRollbackOfTimestampRefused: after clients have seen the current timestamp, the
// attacker makes the server serve an older one.
func TestRollbackOfTimestampRefused(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	cs := clients(t, w.r)
	for _, c := range cs {
		if _, err := c.get(t, w.f2.Path); err != nil {
			t.Fatalf("%s before the rollback: %v", c.name, err)
		}
	}
	if _, err := w.r.DB.Pool.Exec(ctx, `UPDATE repo_state SET timestamp_version = 3, snapshot_version = 3`); err != nil {
		t.Fatal(err)
	}
	waitForTimestamp(t, w.r, 3)
	for _, c := range cs {
		checkRefused(t, c, w.f1.Path, refusal{isBadVersion, tufjs.ExitPolicy, 4})
	}
}

// publishAll runs the publisher (this call or the replica's own loop may be the one that
// picks the rows up), checks nothing is left staged, and waits until the new timestamp is
// served.
func publishAll(t *testing.T, r *testrepo.Repo) {
	t.Helper()
	ctx := context.Background()
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatalf("publishing: %v", err)
	}
	var staged int
	if err := r.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM metadata WHERE snapshot_version IS NULL`).Scan(&staged); err != nil || staged != 0 {
		t.Fatalf("%d versions still staged: %v", staged, err)
	}
	_, ts, err := r.DB.Heads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitForTimestamp(t, r, ts)
}

// waitForTimestamp waits until the server serves timestamp version v.
func waitForTimestamp(t *testing.T, r *testrepo.Repo, v int64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp := r.Do(t, http.MethodGet, "/metadata/timestamp.json", "", "", nil)
		if ts, err := metadata.Timestamp().FromBytes(resp.Body); err == nil && ts.Signed.Version == v {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timestamp version %d was not served within 15s", v)
}
