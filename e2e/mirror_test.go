package e2e

import (
	"bytes"
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

	cairnclient "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/cmd/cairn/cli"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/mirror"
)

// cairnd runs the cairnd command line in-process and returns its exit code and output.
func cairnd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := daemon.Main(context.Background(), args, &out, &errb, func(string) string { return "" })
	return code, out.String(), errb.String()
}

// TestMirrorAirGapped is issue #14's round trip: releases (a yank, a co-signed version)
// exported from a live server, the server stopped, the bundle verified offline, imported
// into 'cairnd serve --mirror' and into a static directory behind nginx, and go-tuf,
// tuf-js and 'cairn get --as-of-bundle' verifying against the mirror. Then the attacks on
// the import: a rollback, a tampered bundle, each refused with nothing changed.
func TestMirrorAirGapped(t *testing.T) {
	u, drop, err := testdb.Create("e2e_mirror")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	r := testrepo.Boot(t, u, nil)
	work := t.TempDir()
	rootFile := filepath.Join(work, "root.json")
	if err := os.WriteFile(rootFile, r.RootJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	m := newCLI(t, r.AdminToken)
	m.ok(t, "init", "--server", r.URL, "--root", rootFile)
	m.ok(t, "key", "generate", "--name", "alice")
	m.ok(t, "key", "generate", "--name", "bob")
	bobPub := filepath.Join(work, "bob.pub")
	if err := os.WriteFile(bobPub, []byte(m.ok(t, "key", "export", "--public", "bob")), 0o644); err != nil {
		t.Fatal(err)
	}
	m.ok(t, "project", "create", "widget", "--key", "alice", "--maintainer", bobPub)
	dist := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dist, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m.ok(t, "upload", "widget", "1.0", file("widget-1.0.tar.gz", "one"), "--key", "alice")
	m.ok(t, "upload", "widget", "2.0", file("widget-2.0.tar.gz", "two"), "--key", "bob")
	m.ok(t, "yank", "widget", "1.0", "--key", "alice", "--reason", "broken")
	old := filepath.Join(work, "old.tar")
	m.ok(t, "mirror", "export", "--project", "widget", "-o", old)
	// A co-signed version: threshold 2, alice proposes, bob completes.
	m.ok(t, "project", "resign", "widget", "--key", "alice", "--key", "bob")
	m.ok(t, "project", "threshold", "widget", "2", "--key", "alice", "--key", "bob")
	m.run(t, "upload", "widget", "3.0", file("widget-3.0.tar.gz", "three"), "--key", "alice")
	m.ok(t, "sign", "widget", "--key", "bob", "--yes")
	bundle := filepath.Join(work, "bundle.tar")
	m.ok(t, "mirror", "export", "--project", "widget", "-o", bundle)
	_, sourceTS := httpGet(t, r.URL+"/metadata/timestamp.json")
	_, sourceRoot := httpGet(t, r.URL+"/metadata/1.root.json")

	// From here on the source server is gone: everything below is offline.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	off := newCLI(t, "")
	var ver cairnclient.BundleVerification
	if err := json.Unmarshal([]byte(off.ok(t, "mirror", "verify", bundle, "--root", rootFile, "-o", "json")), &ver); err != nil {
		t.Fatal(err)
	}
	if ver.Files != 3 || len(ver.Projects) != 1 {
		t.Fatalf("verify = %+v", ver)
	}

	// The expiry policy: two days after export the timestamp (1 day) has expired, yet the
	// bundle verifies as of its export time; beyond the site's staleness bound it is refused.
	raw, err := os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mirror.Read(raw, t.TempDir(), mirror.Limits{})
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return time.Now().Add(48 * time.Hour) }
	if _, err := cairnclient.VerifyBundle(b, r.RootJSON, cairnclient.BundleVerifyOptions{Now: later}); err != nil {
		t.Errorf("as of its export time, two days later: %v", err)
	}
	if _, err := cairnclient.VerifyBundle(b, r.RootJSON, cairnclient.BundleVerifyOptions{Now: later, MaxStaleness: 24 * time.Hour}); err == nil || cairnclient.Classify(err) != cairnclient.ExitPolicy || !strings.Contains(err.Error(), "maximum staleness") {
		t.Errorf("beyond the staleness bound: %v", err)
	}

	// cairnd: import, then serve --mirror.
	mdir := filepath.Join(work, "mirror")
	if code, out, errs := cairnd(t, "mirror", "import", bundle, "--mirror-dir", mdir, "--root", rootFile); code != 0 || !strings.Contains(out, "Imported") {
		t.Fatalf("cairnd mirror import: %d\n%s\n%s", code, out, errs)
	}
	mr, err := daemon.StartMirror(context.Background(), daemon.Config{Listen: "127.0.0.1:0", MirrorDir: mdir}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mr.Close() })
	// Byte-identical metadata.
	if _, ts := httpGet(t, mr.URL+"/metadata/timestamp.json"); !bytes.Equal(ts, sourceTS) {
		t.Error("the mirror's timestamp.json differs from the source's")
	}
	if _, rt := httpGet(t, mr.URL+"/metadata/1.root.json"); !bytes.Equal(rt, sourceRoot) {
		t.Error("the mirror's 1.root.json differs from the source's")
	}
	// Writes are refused with a clear error.
	for _, w := range []struct{ method, path, want string }{
		{http.MethodPost, "/api/v1/projects", `"code":"read_only_mirror"`},
		{http.MethodPut, "/metadata/timestamp.json", `"code":"read_only_mirror"`},
		{http.MethodPut, "/v2/widget/manifests/1.0", `"code":"DENIED"`},
	} {
		req, _ := http.NewRequest(w.method, mr.URL+w.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), w.want) || !strings.Contains(string(body), "read-only mirror") {
			t.Errorf("%s %s: %d %s", w.method, w.path, resp.StatusCode, body)
		}
	}

	paths := map[string]string{"widget/1.0/widget-1.0.tar.gz": "one", "widget/2.0/widget-2.0.tar.gz": "two", "widget/3.0/widget-3.0.tar.gz": "three"}
	check := func(t *testing.T, where string, cs []client) {
		for _, c := range cs {
			for p, want := range paths {
				got, err := c.get(t, p)
				if err != nil || string(got) != want {
					t.Errorf("%s via %s: %s: %q, %v", c.name, where, p, got, err)
				}
			}
		}
	}
	check(t, "cairnd --mirror", tufClients(t, r.RootJSON, mr.URL))

	// cairn get, expiry as of the bundle.
	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", mr.URL, "--root", rootFile)
	out := t.TempDir()
	dl.ok(t, "get", "widget@3.0", "--as-of-bundle", "--output-dir", out)
	if got, _ := os.ReadFile(filepath.Join(out, "widget-3.0.tar.gz")); string(got) != "three" {
		t.Errorf("cairn get --as-of-bundle: %q", got)
	}
	// The site's bound from cairn's configuration ("mirror_max_staleness").
	cfg, err := cli.LoadConfig(dl.home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MirrorMaxStaleness = "1ns"
	if err := cli.SaveConfig(dl.home, cfg); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := dl.run(t, "get", "widget@3.0", "--as-of-bundle", "--output-dir", t.TempDir()); code != 4 || !strings.Contains(errs, "maximum staleness of 1ns") {
		t.Errorf("cairn get with mirror_max_staleness 1ns: exit %d, %s", code, errs)
	}
	cfg.MirrorMaxStaleness = ""
	if err := cli.SaveConfig(dl.home, cfg); err != nil {
		t.Fatal(err)
	}
	// Without it, through the Merkle proofs the bundle carried (while the timestamp is
	// fresh), and through snapshot.json.
	dl.ok(t, "get", "widget@3.0", "--output-dir", t.TempDir())
	dl.ok(t, "--classic-snapshot", "get", "widget@3.0", "--output-dir", t.TempDir())
	if code, body := httpGet(t, mr.URL+"/api/v1/merkle/1/targets"); code.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "--classic-snapshot") {
		t.Errorf("a proof the bundle did not carry: %d %s", code.StatusCode, body)
	}
	if code, _, errs := dl.run(t, "get", "widget@3.0", "--as-of-bundle", "--max-staleness", "1ns", "--output-dir", t.TempDir()); code != 4 || !strings.Contains(errs, "maximum staleness") {
		t.Errorf("cairn get past the staleness bound: exit %d, %s", code, errs)
	}

	// The same bundle laid out as a static directory, behind nginx.
	static := staticDir(t)
	off.ok(t, "mirror", "import", bundle, "--static", static, "--root", rootFile)
	base := startNginx(t, nginxOrSkip(t), static)
	check(t, "nginx", tufClients(t, r.RootJSON, base))

	// Attacks on the import: each refused, the mirror unchanged and still serving.
	before := dirSums(t, mdir)
	if code, _, errs := cairnd(t, "mirror", "import", old, "--mirror-dir", mdir); code == 0 || !strings.Contains(errs, "rollback") {
		t.Errorf("rollback import: exit %d, %s", code, errs)
	}
	tampered := filepath.Join(work, "tampered.tar")
	var files []mirror.File
	for _, f := range b.Files {
		if strings.HasSuffix(f.Path, ".widget-3.0.tar.gz") {
			f = mirror.BytesFile(f.Path, f.MediaType, []byte("THREE"))
		}
		files = append(files, f)
	}
	var tb bytes.Buffer
	if err := mirror.Write(&tb, &mirror.Bundle{Info: b.Info, Files: files}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tampered, tb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cairnd(t, "mirror", "import", tampered, "--mirror-dir", mdir); code == 0 || !strings.Contains(errs, "hash mismatch") {
		t.Errorf("tampered import: exit %d, %s", code, errs)
	}
	if after := dirSums(t, mdir); after != before {
		t.Error("a refused import changed the mirror directory")
	}
	check(t, "cairnd --mirror after refusals", tufClients(t, r.RootJSON, mr.URL))
}

// dirSums lists every file under dir with its contents' sha256.
func dirSums(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b.WriteString(p + " " + sha(data) + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
