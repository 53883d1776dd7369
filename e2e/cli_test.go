package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/cmd/cairn/cli"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
)

// cairnCLI runs the cairn command line in-process with its own home directory, as one
// user on one machine.
type cairnCLI struct {
	home string
	env  map[string]string
}

func newCLI(t *testing.T, token string) *cairnCLI {
	return &cairnCLI{home: t.TempDir(), env: map[string]string{"CAIRN_KEY_PASSPHRASE": "correct horse", "CAIRN_KDF": "fast", "CAIRN_TOKEN": token}}
}

func (c *cairnCLI) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) string {
		if k == "CAIRN_HOME" {
			return c.home
		}
		return c.env[k]
	}
	code = cli.MainContext(context.Background(), args, strings.NewReader(""), &out, &errb, env)
	return code, out.String(), errb.String()
}

func (c *cairnCLI) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := c.run(t, args...)
	if code != 0 {
		t.Fatalf("cairn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// TestMaintainerAndDownloaderWalkthrough is the README's walkthrough with the real CLI:
// keys, init, create, two uploads, releases, get; then the exit codes for attacks.
func TestMaintainerAndDownloaderWalkthrough(t *testing.T) {
	u, drop, err := testdb.Create("e2e_cli")
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, nil)
	t.Cleanup(drop)

	maint := newCLI(t, r.AdminToken)
	rootFile := filepath.Join(r.Dir, "root.json")
	maint.ok(t, "init", "--server", r.URL, "--root", rootFile)
	out := maint.ok(t, "key", "generate", "--name", "alice")
	if !strings.Contains(out, "SHA256:") {
		t.Fatalf("key generate printed no fingerprint: %s", out)
	}
	maint.ok(t, "project", "create", "hello", "--key", "alice")

	dir := t.TempDir()
	v1 := filepath.Join(dir, "hello-1.0.0.tar.gz")
	v2 := filepath.Join(dir, "hello-2.0.0.tar.gz")
	os.WriteFile(v1, []byte("hello, world: one"), 0o644)
	os.WriteFile(v2, []byte("hello, world: two, a bit longer"), 0o644)
	out = maint.ok(t, "upload", "hello", "1.0.0", v1, "--key", "alice")
	if !strings.Contains(out, "snapshot") {
		t.Fatalf("upload does not report the snapshot: %s", out)
	}
	maint.ok(t, "upload", "hello", "2.0.0", v2, "--key", "alice")
	if code, _, errs := maint.run(t, "upload", "hello", "2.0.0", v2, "--key", "alice"); code == 0 || !strings.Contains(errs, "2.0.0") {
		t.Fatalf("re-uploading 2.0.0: exit %d: %s", code, errs)
	}

	// A downloader who pinned the root.
	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	var rels struct {
		Releases []struct {
			Version string `json:"version"`
		} `json:"releases"`
	}
	if err := json.Unmarshal([]byte(dl.ok(t, "releases", "hello", "--output", "json")), &rels); err != nil || len(rels.Releases) != 2 || rels.Releases[0].Version != "2.0.0" {
		t.Fatalf("releases: %v %+v", err, rels)
	}
	got := t.TempDir()
	dl.ok(t, "get", "hello", "-o", got)
	if b, err := os.ReadFile(filepath.Join(got, "hello-2.0.0.tar.gz")); err != nil || string(b) != "hello, world: two, a bit longer" {
		t.Fatalf("get latest: %q %v", b, err)
	}
	got1 := t.TempDir()
	dl.ok(t, "get", "hello@1.0.0", "-o", got1)
	if b, err := os.ReadFile(filepath.Join(got1, "hello-1.0.0.tar.gz")); err != nil || string(b) != "hello, world: one" {
		t.Fatalf("get 1.0.0: %q %v", b, err)
	}
	dl.ok(t, "log", "verify")

	// init without a root refuses.
	if code, _, errs := newCLI(t, "").run(t, "init", "--server", r.URL); code == 0 || !strings.Contains(errs, "root") {
		t.Fatalf("init without a root: exit %d: %s", code, errs)
	}

	// Attack: the stored file is replaced (same length). Exit 1, nothing written.
	sum := sha([]byte("hello, world: one"))
	blob := filepath.Join(r.Dir, "blobs", "sha256", sum[:2], sum)
	os.WriteFile(blob, []byte("HELLO, WORLD: ONE"), 0o644)
	bad := t.TempDir()
	code, _, errs := dl.run(t, "get", "hello@1.0.0", "-o", bad)
	if code != 1 || !strings.Contains(errs, "hello/1.0.0/hello-1.0.0.tar.gz") {
		t.Fatalf("tampered file: exit %d (want 1): %s", code, errs)
	}
	if entries, _ := os.ReadDir(bad); len(entries) != 0 {
		t.Fatalf("files written although verification failed: %v", entries)
	}
}
