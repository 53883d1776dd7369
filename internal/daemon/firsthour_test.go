package daemon

// The first hour of a new user (issue 15): mistakes that used to change the wrong thing
// silently are refused with what to do, and change nothing.

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/store"
)

func newDB(t *testing.T, name string) string {
	t.Helper()
	u, drop, err := testdb.Create("daemon_" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return u
}

func cairnd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := Main(ctx, args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

// tables counts the tables in the database's public schema: 0 means nothing was migrated.
func tables(t *testing.T, u string) int {
	t.Helper()
	db, err := store.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func exec1(t *testing.T, u, sql string, args ...any) int64 {
	t.Helper()
	db, err := store.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tag, err := db.Pool.Exec(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	return tag.RowsAffected()
}

// An empty --database-url (--database-url "$CAIRN_DATABASE_URL" with the variable unset)
// left the database to libpq's defaults; every command now refuses it before connecting.
func TestEmptyDatabaseURLRefused(t *testing.T) {
	blobs := t.TempDir()
	commands := [][]string{
		{"serve"}, {"serve", "--dev", "--data-dir", filepath.Join(t.TempDir(), "dev")}, {"migrate"},
		{"bootstrap", "--metadata", t.TempDir()}, {"token", "create", "--name", "ci", "--admin"},
		{"token", "list"}, {"token", "revoke", "0123456789abcdef"}, {"gc", "--blob-dir", blobs},
	}
	for _, tc := range []struct{ url, want string }{
		{"", "--database-url is empty (is $CAIRN_DATABASE_URL unset?)"},
		{"  ", "--database-url is empty"},
		{"postgres://postgres@127.0.0.1:5432", "names no database"},
		{"postgresql://127.0.0.1/", "names no database"},
		{"host=127.0.0.1 user=postgres", "no dbname="},
	} {
		for _, args := range commands {
			code, _, errs := cairnd(t, nil, append(args, "--database-url", tc.url, "--listen", "127.0.0.1:0")...)
			if code != 1 || !strings.Contains(errs, tc.want) {
				t.Errorf("cairnd %v --database-url %q: exit %d, stderr %q; want a refusal mentioning %q", args, tc.url, code, errs, tc.want)
			}
		}
	}
	// The same through the environment: a config-file or CAIRN_ value that is blank is
	// ignored (the default applies), so only an explicit empty flag reaches the check.
	if err := checkDatabaseURL(DefaultDatabaseURL); err != nil {
		t.Errorf("default URL refused: %v", err)
	}
}

// token and gc never migrate: pointed at a database that is not Cairn's (or not yet
// migrated), they say what to run and leave it exactly as it was.
func TestTokenCommandsNeedCurrentSchema(t *testing.T) {
	u := newDB(t, "schema")
	blobs := t.TempDir()
	for _, args := range [][]string{
		{"token", "create", "--name", "ci", "--admin"}, {"token", "list"},
		{"token", "revoke", "0123456789abcdef"}, {"gc", "--blob-dir", blobs, "--dry-run"},
	} {
		code, out, errs := cairnd(t, nil, append(args, "--database-url", u)...)
		if code != 1 || !strings.Contains(errs, "has no Cairn schema") || !strings.Contains(errs, "cairnd migrate") || out != "" {
			t.Errorf("cairnd %v on an empty database: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	if n := tables(t, u); n != 0 {
		t.Fatalf("the commands created %d tables in a database they were pointed at by mistake", n)
	}

	if code, _, errs := cairnd(t, nil, "migrate", "--database-url", u); code != 0 {
		t.Fatalf("migrate: %s", errs)
	}
	if code, out, errs := cairnd(t, nil, "token", "list", "--database-url", u); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("token list after migrate: exit %d %s %s", code, out, errs)
	}

	// A token for a project that does not exist: refused, nothing stored.
	code, out, errs := cairnd(t, nil, "token", "create", "--name", "ci", "--project", "helo", "--database-url", u)
	if code != 1 || out != "" || !strings.Contains(errs, `no project named "helo"`) || !strings.Contains(errs, "no token was created") {
		t.Fatalf("token for a missing project: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if n := exec1(t, u, `SELECT 1 FROM tokens`); n != 0 {
		t.Fatalf("%d token(s) stored after a refusal", n)
	}
	if code, out, errs := cairnd(t, nil, "token", "create", "--name", "oci", "--project", "helo", "--allow-missing-project", "--database-url", u); code != 0 || !strings.HasPrefix(out, store.TokenPrefix) {
		t.Fatalf("--allow-missing-project: exit %d %s %s", code, out, errs)
	}

	// A schema behind this cairnd, and one ahead of it.
	exec1(t, u, `DELETE FROM goose_db_version WHERE version_id = 8`)
	if code, _, errs := cairnd(t, nil, "token", "list", "--database-url", u); code != 1 || !strings.Contains(errs, "missing 00008_token_notify.sql") || !strings.Contains(errs, "cairnd migrate") {
		t.Errorf("schema behind: exit %d, %s", code, errs)
	}
	exec1(t, u, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (8, true), (999, true)`)
	if code, _, errs := cairnd(t, nil, "token", "list", "--database-url", u); code != 1 || !strings.Contains(errs, "does not know (versions [999])") {
		t.Errorf("schema ahead: exit %d, %s", code, errs)
	}
}

func devConfig(dir, u string) Config {
	c := defaultConfig()
	c.Dev, c.DataDir, c.DatabaseURL, c.Listen = true, dir, u, "127.0.0.1:0"
	return c
}

func startDev(dir, u string) (*Running, error) {
	return Start(context.Background(), devConfig(dir, u), func(string) string { return "" }, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func readFiles(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = string(b)
	}
	return out
}

// A second dev server on the same --data-dir but another database overwrote admin.token
// and root.json under the first one. The data dir is now bound to its database.
func TestDevDataDirBoundToItsDatabase(t *testing.T) {
	first, second := newDB(t, "dev_first"), newDB(t, "dev_second")
	dir := filepath.Join(t.TempDir(), "dev")
	r, err := startDev(dir, first)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	files := []string{"admin.token", "root.json", dataDirDatabase}
	before := readFiles(t, dir, files...)

	// While the first server runs, a second one against another database is refused.
	_, err = startDev(dir, second)
	firstName, secondName := dbName(first), dbName(second)
	if err == nil || !strings.Contains(err.Error(), "belongs to") || !strings.Contains(err.Error(), firstName) ||
		!strings.Contains(err.Error(), secondName) || !strings.Contains(err.Error(), "another --data-dir") {
		t.Fatalf("second database on the same data dir: %v", err)
	}
	if after := readFiles(t, dir, files...); !equalMaps(before, after) {
		t.Fatalf("the refused start changed the data dir: %v -> %v", before, after)
	}
	if n := tables(t, second); n != 0 {
		t.Fatalf("the refused start migrated the second database (%d tables)", n)
	}
	// The first token still works.
	if _, err := r.DB.Authenticate(context.Background(), strings.TrimSpace(before["admin.token"])); err != nil {
		t.Fatalf("first admin token: %v", err)
	}
	r.Close()

	// The same database again: reused, nothing rewritten.
	r2, err := startDev(dir, first)
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
	if after := readFiles(t, dir, files...); !equalMaps(before, after) {
		t.Fatalf("a restart rewrote the data dir")
	}

	// A data dir from before database.json: adopted by the database its root.json came
	// from, refused by any other.
	if err := os.Remove(filepath.Join(dir, dataDirDatabase)); err != nil {
		t.Fatal(err)
	}
	if _, err := startDev(dir, second); err == nil || !strings.Contains(err.Error(), "holds the root.json of another repository") {
		t.Fatalf("legacy data dir on another database: %v", err)
	}
	r3, err := startDev(dir, first)
	if err != nil {
		t.Fatal(err)
	}
	r3.Close()
	if after := readFiles(t, dir, files...); !equalMaps(before, after) {
		t.Fatalf("adopting the legacy data dir changed it: %v -> %v", before, after)
	}

	// A fresh data dir for the second database works.
	r4, err := startDev(filepath.Join(t.TempDir(), "dev2"), second)
	if err != nil {
		t.Fatal(err)
	}
	r4.Close()
}

// A bound data dir whose database lost its repository (tables emptied) is refused, not
// bootstrapped again over its admin.token and root.json.
func TestDevNeverOverwritesTokenOrRoot(t *testing.T) {
	u := newDB(t, "dev_overwrite")
	dir := filepath.Join(t.TempDir(), "dev")
	r, err := startDev(dir, u)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	before := readFiles(t, dir, "admin.token", "root.json")
	exec1(t, u, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`)
	if _, err := startDev(dir, u); err == nil || !strings.Contains(err.Error(), "never overwritten") {
		t.Fatalf("start on an emptied database: %v", err)
	}
	if after := readFiles(t, dir, "admin.token", "root.json"); !equalMaps(before, after) {
		t.Fatal("admin.token or root.json was overwritten")
	}
}

func dbName(u string) string {
	name := u[strings.LastIndex(u, "/")+1:]
	name, _, _ = strings.Cut(name, "?")
	return name
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A busy port fails at once, before keys, database or migrations, and says what to do.
func TestBusyListenAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := defaultConfig()
	// Nothing else is configured: before the fix, this failed on the missing blob
	// directory (or, with keys, only after migrating) and never named the address.
	c.Listen, c.DatabaseURL = ln.Addr().String(), "postgres://nobody@127.0.0.1:1/none"
	_, err = Start(context.Background(), c, func(string) string { return "" }, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, want := range []string{ln.Addr().String(), "already in use", "--listen", "CAIRN_LISTEN", "make run LISTEN="} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("start on a busy port: %v; want it to mention %q", err, want)
		}
	}
}

// make run passes --listen, so CAIRN_LISTEN must reach it through the Makefile.
func TestMakeRunListen(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Fatalf("make is needed for this test: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, nil, `--listen "127.0.0.1:8080"`},
		{[]string{"CAIRN_LISTEN=127.0.0.1:9191"}, nil, `--listen "127.0.0.1:9191"`},
		{[]string{"CAIRN_LISTEN=127.0.0.1:9191"}, []string{"LISTEN=127.0.0.1:9292"}, `--listen "127.0.0.1:9292"`},
	} {
		cmd := exec.Command(mk, append([]string{"-n", "-s", "-C", root, "run"}, tc.args...)...)
		cmd.Env = append(os.Environ(), tc.env...)
		if tc.env == nil {
			cmd.Env = append(os.Environ(), "CAIRN_LISTEN=")
		}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("make -n run %v with %v: %v\n%s\nwant %s", tc.args, tc.env, err, out, tc.want)
		}
	}
}

// --publish-gather adds up to its length to every concurrent upload's wait: a negative or
// an absurd value is refused at start, naming the flag and the range, before the database
// is touched (the URL here leads nowhere).
func TestPublishGatherRange(t *testing.T) {
	for _, d := range []time.Duration{-time.Millisecond, MaxPublishGather + time.Millisecond} {
		c := defaultConfig()
		c.Listen, c.DatabaseURL, c.PublishGather = "127.0.0.1:0", "postgres://nobody@127.0.0.1:1/none", d
		_, err := Start(context.Background(), c, func(string) string { return "" }, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
		for _, want := range []string{"--publish-gather " + d.String(), "want 0", MaxPublishGather.String()} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("--publish-gather %s: %v; want it refused, mentioning %q", d, err, want)
			}
		}
	}
}
