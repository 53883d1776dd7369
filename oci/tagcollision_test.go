package oci_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/cmd/cairn/cli"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
)

// projectState is what a refused upload must leave unchanged besides the registry: the
// project's role versions, release files and published version.
func projectState(t *testing.T, r *testrepo.Repo, project string) string {
	t.Helper()
	var sb strings.Builder
	ctx := context.Background()
	for _, q := range []string{
		`SELECT role || ' ' || version || ' ' || md5(raw) FROM metadata WHERE role = $1 ORDER BY version`,
		`SELECT path || ' ' || role_version FROM release_files WHERE project = $1 ORDER BY path`,
		`SELECT role_version || ' ' || published_version FROM projects WHERE name = $1`,
	} {
		rows, err := r.DB.Pool.Query(ctx, q, project)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			sb.WriteString(s + "\n")
		}
		rows.Close()
	}
	return sb.String() + state(t, r)
}

func releaseManifestOf(project, version string, files ...testrepo.File) []byte {
	var rf []api.ReleaseFile
	for _, f := range files {
		rf = append(rf, api.ReleaseFile{Name: filepath.Base(f.Path), Length: int64(len(f.Content)), SHA256: sha(f.Content)[7:]})
	}
	return api.ReleaseManifest(project, version, rf)
}

// TestReleaseTagCollisionRefused (issue #9, item 3): versions 3.0+x and 3.0_x are both the
// OCI tag 3.0_x. Whichever is published first keeps it; a role version that adds the other
// is refused with oci_tag_collision naming the published one, in either order, and also
// when one role adds both; nothing is stored, and the tag keeps resolving to the first.
func TestReleaseTagCollisionRefused(t *testing.T) {
	r, _ := registry(t)
	key := testrepo.NewKey(t, tufrepo.KeyEd25519)
	exp := time.Now().Add(30 * 24 * time.Hour)
	for i, c := range []struct{ first, second string }{
		{"3.0+x", "3.0_x"},
		{"3.0_x", "3.0+x"},
		{"1+a+b", "1_a+b"},
	} {
		t.Run(c.first+" then "+c.second, func(t *testing.T) {
			p := fmt.Sprintf("tagc%d%d", i, time.Now().UnixNano()%1e9)
			a := testrepo.File{Path: p + "/" + c.first + "/" + p + ".tar.gz", Content: []byte("first release of " + p)}
			b := testrepo.File{Path: p + "/" + c.second + "/" + p + ".tar.gz", Content: []byte("second release of " + p)}
			publishRelease(t, r, key, p, 2, a)
			r.PutBlob(t, r.AdminToken, b.Content)
			before := projectState(t, r, p)
			resp := r.Submit(t, r.AdminToken, p, testrepo.Sign(t, testrepo.Role(3, exp, a, b), key))
			prob := resp.Problem()
			if resp.Status != http.StatusConflict || prob.Code != api.CodeOCITagCollision ||
				!strings.Contains(prob.Detail, "release "+p+" "+c.first) || !strings.Contains(prob.Detail, p+":"+api.ReleaseTag(c.first)) {
				t.Fatalf("adding %s next to %s: %d %s", c.second, c.first, resp.Status, resp.Body)
			}
			t.Logf("refused: %s", prob.Detail)
			if after := projectState(t, r, p); after != before {
				t.Fatalf("the refused upload changed the state:\n%s\nwant\n%s", after, before)
			}
			want := releaseManifestOf(p, c.first, a)
			for range 5 {
				got := do(t, r.URL, req{method: "GET", path: "/v2/" + p + "/manifests/" + api.ReleaseTag(c.first)})
				if got.status != 200 || !bytes.Equal(got.body, want) {
					t.Fatalf("the tag after the refusal: %d %s", got.status, got.body)
				}
			}
			// A role that adds both at once is refused too, naming both.
			q := fmt.Sprintf("tagd%d%d", i, time.Now().UnixNano()%1e9)
			r.CreateProject(t, r.AdminToken, q, 1, []*testrepo.Key{key}, key)
			qa := testrepo.File{Path: q + "/" + c.first + "/x.tar.gz", Content: a.Content}
			qb := testrepo.File{Path: q + "/" + c.second + "/x.tar.gz", Content: b.Content}
			before = projectState(t, r, q)
			resp = r.Submit(t, r.AdminToken, q, testrepo.Sign(t, testrepo.Role(2, exp, qa, qb), key))
			if prob := resp.Problem(); resp.Status != http.StatusConflict || prob.Code != api.CodeOCITagCollision ||
				!strings.Contains(prob.Detail, c.first) || !strings.Contains(prob.Detail, c.second) {
				t.Fatalf("adding %s and %s at once: %d %s", c.first, c.second, resp.Status, resp.Body)
			}
			if after := projectState(t, r, q); after != before {
				t.Fatal("the refused upload changed the state")
			}
		})
	}
}

// writeCounter counts the write statements (INSERT, UPDATE, DELETE, TRUNCATE, also those
// that change no row, such as INSERT … ON CONFLICT DO NOTHING) that reach the registry's
// tables and the release tables while it is installed.
func writeCounter(t *testing.T, r *testrepo.Repo) func() int {
	t.Helper()
	ctx := context.Background()
	tables := []string{"oci_repositories", "oci_blobs", "oci_repo_blobs", "oci_manifests", "oci_manifest_refs", "oci_tags", "oci_uploads", "blobs", "release_files"}
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS test_write_log (tbl text NOT NULL, op text NOT NULL)`,
		`CREATE OR REPLACE FUNCTION test_log_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO test_write_log VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$`,
	}
	for _, tb := range tables {
		stmts = append(stmts, fmt.Sprintf(`CREATE OR REPLACE TRIGGER test_log_write AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION test_log_write()`, tb))
	}
	for _, s := range stmts {
		if _, err := r.DB.Pool.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() {
		for _, tb := range tables {
			_, _ = r.DB.Pool.Exec(ctx, fmt.Sprintf(`DROP TRIGGER IF EXISTS test_log_write ON %s`, tb))
		}
		_, _ = r.DB.Pool.Exec(ctx, `DROP TABLE IF EXISTS test_write_log`)
	})
	return func() int {
		var n int
		var what string
		if err := r.DB.Pool.QueryRow(ctx, `SELECT count(*), coalesce(string_agg(op || ' ' || tbl, ', '), '') FROM test_write_log`).Scan(&n, &what); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			t.Logf("writes: %s", what)
		}
		return n
	}
}

// TestReleaseTagReadsNeverWrite (issue #9, item 3): a project whose releases 3.0+x and
// 3.0_x were both accepted before the server refused such pairs (written here into the
// database and published with the online keys, as an older server did). Every read of the
// tag, by oras/crane-style GETs and HEADs, the tag list, digests, blobs and `cairn get --via
// oci`, gives the first-published release and writes nothing: not one write statement
// reaches the registry's or the release tables, and their rows are unchanged.
func TestReleaseTagReadsNeverWrite(t *testing.T) {
	r, _ := registry(t)
	ctx := context.Background()
	key := testrepo.NewKey(t, tufrepo.KeyEd25519)
	p := fmt.Sprintf("tagr%d", time.Now().UnixNano()%1e9)
	a := testrepo.File{Path: p + "/3.0+x/" + p + "-a.tar.gz", Content: []byte("3.0+x of " + p)}
	b := testrepo.File{Path: p + "/3.0_x/" + p + "-b.tar.gz", Content: []byte("3.0_x of " + p + "!")}
	publishRelease(t, r, key, p, 2, a)
	r.PutBlob(t, r.AdminToken, b.Content)
	raw := testrepo.Sign(t, testrepo.Role(3, time.Now().Add(30*24*time.Hour), a, b), key)
	sum := sha(raw)
	sumBytes, _ := hex.DecodeString(sum[7:])
	bsum, _ := hex.DecodeString(sha(b.Content)[7:])
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO metadata (role, version, raw, length, sha256, expires, action) VALUES ($1, 3, $2, $3, $4, now() + interval '30 days', 'accepted')`, []any{p, raw, len(raw), sumBytes}},
		{`INSERT INTO release_files (path, project, version, filename, length, sha256, role_version) VALUES ($1, $2, '3.0_x', $3, $4, $5, 3)`, []any{b.Path, p, filepath.Base(b.Path), len(b.Content), bsum}},
		{`UPDATE projects SET role_version = 3 WHERE name = $1`, []any{p}},
	} {
		if _, err := r.DB.Pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}
	var published int64
	if err := r.DB.Pool.QueryRow(ctx, `SELECT published_version FROM projects WHERE name = $1`, p).Scan(&published); err != nil || published != 3 {
		t.Fatalf("the colliding role version was not published: %d %v", published, err)
	}

	home := t.TempDir()
	env := func(k string) string {
		if k == "CAIRN_HOME" {
			return home
		}
		return ""
	}
	cairn := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := cli.MainContext(ctx, args, strings.NewReader(""), &out, &errb, env)
		return code, errb.String()
	}
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(rootFile, r.RootJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, errs := cairn("init", "--server", r.URL, "--root", rootFile); code != 0 {
		t.Fatalf("cairn init: %d %s", code, errs)
	}

	writes := writeCounter(t, r)
	before := projectState(t, r, p)
	want := releaseManifestOf(p, "3.0+x", a)
	wantDigest := sha(want)
	for i := range 10 {
		for _, c := range []req{
			{method: "GET", path: "/v2/" + p + "/manifests/3.0_x"},
			{method: "HEAD", path: "/v2/" + p + "/manifests/3.0_x"},
			{method: "GET", path: "/v2/" + p + "/manifests/3.0_x", auth: "basic:" + r.AdminToken},
			{method: "GET", path: "/v2/" + p + "/manifests/" + wantDigest},
		} {
			got := do(t, r.URL, c)
			if got.status != 200 || got.header.Get("Docker-Content-Digest") != wantDigest || (c.method == "GET" && !bytes.Equal(got.body, want)) {
				t.Fatalf("read %d, %s %s: %d digest %s, want %s: %s", i, c.method, c.path, got.status, got.header.Get("Docker-Content-Digest"), wantDigest, got.body)
			}
		}
		if got := do(t, r.URL, req{method: "GET", path: "/v2/" + p + "/tags/list"}); got.status != 200 || !bytes.Contains(got.body, []byte(`"tags":["3.0_x"]`)) {
			t.Fatalf("tag list: %d %s", got.status, got.body)
		}
		for _, d := range []string{sha(a.Content), sha([]byte("{}"))} {
			if got := do(t, r.URL, req{method: "GET", path: "/v2/" + p + "/blobs/" + d}); got.status != 200 || got.header.Get("Docker-Content-Digest") != d {
				t.Fatalf("blob %s: %d %s", d, got.status, got.body)
			}
		}
	}
	for i := range 4 {
		dir := t.TempDir()
		if code, errs := cairn("get", p+"@3.0+x", "--via", "oci", "-o", dir); code != 0 || !strings.Contains(errs, wantDigest) {
			t.Fatalf("cairn get --via oci, time %d: exit %d: %s", i, code, errs)
		}
		if got, err := os.ReadFile(filepath.Join(dir, filepath.Base(a.Path))); err != nil || !bytes.Equal(got, a.Content) {
			t.Fatalf("cairn get --via oci, time %d: %q %v", i, got, err)
		}
	}
	// The release that lost the tag is named, not called tampered, and is still there
	// through TUF.
	code, errs := cairn("get", p+"@3.0_x", "--via", "oci", "-o", t.TempDir())
	if code != 4 || !strings.Contains(errs, "is release "+p+" 3.0+x, not 3.0_x") {
		t.Fatalf("cairn get --via oci of the release that lost the tag: exit %d: %s", code, errs)
	}
	if code, errs := cairn("get", p+"@3.0_x", "-o", t.TempDir()); code != 0 {
		t.Fatalf("cairn get of the release that lost the tag: exit %d: %s", code, errs)
	}
	if n := writes(); n != 0 {
		t.Fatalf("%d write statements reached the registry's tables during reads", n)
	}
	if after := projectState(t, r, p); after != before {
		t.Fatalf("reads changed the state:\n%s\nwant\n%s", after, before)
	}
}
