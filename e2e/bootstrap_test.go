package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/cmd/cairn/cli"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/store"
	"github.com/cairn-dev/cairn/tufrepo"
)

// bootEnv is an environment of explicit variables, so that nothing from the machine
// running the tests (a CAIRN_CONFIG, a CAIRN_DATABASE_URL) leaks into a command.
type bootEnv map[string]string

func (e bootEnv) get(k string) string { return e[k] }

// cairnd runs the daemon's command line in-process and returns its exit code and output.
func bootCairnd(t *testing.T, env bootEnv, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := daemon.Main(ctx, args, &out, &errb, env.get)
	return code, out.String(), errb.String()
}

func bootCairndOK(t *testing.T, env bootEnv, args ...string) string {
	t.Helper()
	code, out, errs := bootCairnd(t, env, args...)
	if code != 0 {
		t.Fatalf("cairnd %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// bootCairn runs the cairn command line in-process as one user with env.
func bootCairn(t *testing.T, env bootEnv, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	code := cli.MainContext(ctx, args, strings.NewReader(""), &out, &errb, env.get)
	return code, out.String(), errb.String()
}

func bootCairnOK(t *testing.T, env bootEnv, args ...string) string {
	t.Helper()
	code, out, errs := bootCairn(t, env, args...)
	if code != 0 {
		t.Fatalf("cairn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// newOnlineKeyURI writes an encrypted key file, as an operator would for a file:// online
// key, and returns its URI with a passphrase file.
func newOnlineKeyURI(t *testing.T, dir, name, passFile string) string {
	t.Helper()
	priv, err := tufrepo.GenerateKey(tufrepo.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pass, err := os.ReadFile(passFile)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := tufrepo.EncryptKey(name, priv, bytes.TrimSpace(pass), tufrepo.KDFFast)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return (&url.URL{Scheme: "file", Path: path, RawQuery: "passphrase-file=" + url.QueryEscape(passFile)}).String()
}

// bootstrapDBState is every row of every table, to show that a refused command changed
// nothing.
func bootstrapDBState(t *testing.T, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b strings.Builder
	for _, tbl := range []string{"repo_state", "metadata", "projects", "release_files", "blobs", "tokens", "audit_log"} {
		rows, err := db.Pool.Query(ctx, fmt.Sprintf(`SELECT row_to_json(x)::text FROM %s x ORDER BY row_to_json(x)::text`, tbl))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %s\n", tbl, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestProductionBootstrap is the production path end to end: online keys on the server,
// the root ceremony on an admin's machine, `cairnd bootstrap` with the ceremony's output,
// the server started with the online keys (not dev mode), and a maintainer publishing a
// release that a downloader verifies from the ceremony's root.
func TestProductionBootstrap(t *testing.T) {
	dbu, drop, err := testdb.Create("e2e_bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)

	// The server: three online keys as encrypted key files, one passphrase file.
	serverDir := t.TempDir()
	passFile := filepath.Join(serverDir, "passphrase")
	if err := os.WriteFile(passFile, []byte("online key passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	uris := map[string]string{}
	pubs := map[string]string{}
	ids := map[string]string{}
	server := bootEnv{}
	for _, role := range []string{tufrepo.RoleTimestamp, tufrepo.RoleSnapshot, tufrepo.RoleRecentlyClaimed} {
		uris[role] = newOnlineKeyURI(t, serverDir, role, passFile)
		out := bootCairndOK(t, server, "keys", "public", "--key", uris[role])
		var k api.Key
		if err := json.Unmarshal([]byte(out), &k); err != nil {
			t.Fatalf("cairnd keys public printed %q: %v", out, err)
		}
		mk, err := tufrepo.KeyFromAPI(k)
		if err != nil {
			t.Fatal(err)
		}
		ids[role] = tufrepo.KeyID(mk)
		// The public keys travel to the admin machine as files.
		pubs[role] = filepath.Join(t.TempDir(), role+".pub.json")
		if err := os.WriteFile(pubs[role], []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The admin's machine: the root ceremony.
	admin := bootEnv{"CAIRN_HOME": t.TempDir(), "CAIRN_KEY_PASSPHRASE": "admin passphrase", "CAIRN_KDF": "fast"}
	ceremony := filepath.Join(t.TempDir(), "ceremony")
	out := bootCairnOK(t, admin, "admin", "init", "--out", ceremony, "--root-keys", "3", "--root-threshold", "2",
		"--timestamp-key", pubs[tufrepo.RoleTimestamp], "--snapshot-key", pubs[tufrepo.RoleSnapshot],
		"--recently-claimed-key", pubs[tufrepo.RoleRecentlyClaimed])
	for _, want := range []string{"root: 2 of these 3", ids[tufrepo.RoleTimestamp], ids[tufrepo.RoleSnapshot], ids[tufrepo.RoleRecentlyClaimed], "cairnd bootstrap --metadata " + ceremony} {
		if !strings.Contains(out, want) {
			t.Errorf("cairn admin init output lacks %q:\n%s", want, out)
		}
	}
	rootFile := filepath.Join(ceremony, "1.root.json")
	rootRaw, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatal(err)
	}

	// Back on the server. A bootstrap with a wrong online key is refused and stores no
	// repository, so the real one afterwards still finds the database empty.
	wrongTS := newOnlineKeyURI(t, serverDir, "other-timestamp", passFile)
	db := []string{"--database-url", dbu}
	keyFlags := func(ts string) []string {
		return []string{"--timestamp-key", ts, "--snapshot-key", uris[tufrepo.RoleSnapshot], "--recently-claimed-key", uris[tufrepo.RoleRecentlyClaimed]}
	}
	args := append(append([]string{"bootstrap", "--metadata", ceremony}, db...), keyFlags(wrongTS)...)
	if code, _, errs := bootCairnd(t, server, args...); code == 0 || !strings.Contains(errs, "timestamp key") {
		t.Fatalf("bootstrap with the wrong timestamp key: exit %d: %s", code, errs)
	}

	args = append(append([]string{"bootstrap", "--metadata", ceremony}, db...), keyFlags(uris[tufrepo.RoleTimestamp])...)
	if out := bootCairndOK(t, server, args...); !strings.Contains(out, "bootstrapped") {
		t.Errorf("bootstrap output: %s", out)
	}
	before := bootstrapDBState(t, dbu)
	if code, _, errs := bootCairnd(t, server, args...); code == 0 || !strings.Contains(errs, string(api.CodeAlreadyBootstrapped)) {
		t.Fatalf("second bootstrap: exit %d: %s", code, errs)
	}
	if after := bootstrapDBState(t, dbu); after != before {
		t.Fatalf("a refused second bootstrap changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Serving refuses online keys that are not the ones root delegates to.
	blobDir := filepath.Join(serverDir, "blobs")
	cfg := daemon.Config{
		Listen: "127.0.0.1:0", DatabaseURL: dbu, BlobDir: blobDir,
		TimestampKey: wrongTS, SnapshotKey: uris[tufrepo.RoleSnapshot], RecentlyClaimedKey: uris[tufrepo.RoleRecentlyClaimed],
		MaxBlobSize: 1 << 20, PublishInterval: time.Hour, LogLevel: "warn",
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if r, err := daemon.Start(context.Background(), cfg, server.get, io.Discard, log); err == nil {
		r.Close()
		t.Fatal("the server started with a timestamp key root does not delegate to")
	} else if !strings.Contains(err.Error(), "timestamp key") || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("wrong timestamp key: %v; want an error naming the timestamp key", err)
	}
	// Swapped keys are refused too, naming the role whose key is wrong.
	swapped := cfg
	swapped.TimestampKey, swapped.SnapshotKey = uris[tufrepo.RoleTimestamp], uris[tufrepo.RoleTimestamp]
	if r, err := daemon.Start(context.Background(), swapped, server.get, io.Discard, log); err == nil {
		r.Close()
		t.Fatal("the server started with the timestamp key as its snapshot key")
	} else if !strings.Contains(err.Error(), "snapshot key") {
		t.Fatalf("timestamp key as snapshot key: %v; want an error naming the snapshot key", err)
	}
	// And so does `cairnd serve`, through the environment this time.
	env := bootEnv{"CAIRN_DATABASE_URL": dbu, "CAIRN_BLOB_DIR": blobDir, "CAIRN_LISTEN": "127.0.0.1:0",
		"CAIRN_TIMESTAMP_KEY": wrongTS, "CAIRN_SNAPSHOT_KEY": uris[tufrepo.RoleSnapshot], "CAIRN_RECENTLY_CLAIMED_KEY": uris[tufrepo.RoleRecentlyClaimed]}
	if code, _, errs := bootCairnd(t, env, "serve"); code == 0 || !strings.Contains(errs, "refusing to start") || !strings.Contains(errs, "timestamp key") {
		t.Fatalf("cairnd serve with the wrong timestamp key: exit %d: %s", code, errs)
	}
	if after := bootstrapDBState(t, dbu); after != before {
		t.Fatal("a server that refused to start changed the database")
	}

	// With the right keys it serves the ceremony's root.
	cfg.TimestampKey = uris[tufrepo.RoleTimestamp]
	r, err := daemon.Start(context.Background(), cfg, server.get, io.Discard, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	token := strings.TrimSpace(bootCairndOK(t, server, append([]string{"token", "create", "--name", "t", "--admin"}, db...)...))
	if token == "" || strings.ContainsAny(token, " \n") {
		t.Fatalf("token create printed %q", token)
	}

	// A maintainer pins the ceremony's root and publishes a release.
	maint := bootEnv{"CAIRN_HOME": t.TempDir(), "CAIRN_KEY_PASSPHRASE": "maintainer passphrase", "CAIRN_KDF": "fast", "CAIRN_TOKEN": token}
	bootCairnOK(t, maint, "init", "--server", r.URL, "--root", rootFile)
	bootCairnOK(t, maint, "key", "generate", "--name", "alice")
	bootCairnOK(t, maint, "project", "create", "hello", "--key", "alice")
	content := []byte("hello from a production-bootstrapped repository\n")
	file := filepath.Join(t.TempDir(), "hello-1.0.0.tar.gz")
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	bootCairnOK(t, maint, "upload", "hello", "1.0.0", file, "--key", "alice")

	// A downloader with only the ceremony's root gets the verified bytes.
	user := bootEnv{"CAIRN_HOME": t.TempDir()}
	bootCairnOK(t, user, "init", "--server", r.URL, "--root", rootFile)
	dl := t.TempDir()
	bootCairnOK(t, user, "get", "hello@1.0.0", "-o", dl)
	got, err := os.ReadFile(filepath.Join(dl, "hello-1.0.0.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("downloaded %q; want %q", got, content)
	}

	// The server serves version 1 of root exactly as the ceremony signed it.
	served, err := r.DB.PublishedMetadata(context.Background(), tufrepo.RoleRoot, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served.Raw, rootRaw) {
		t.Fatal("the stored root is not the ceremony's bytes")
	}
}
