package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/cairn-dev/cairn/tufrepo"
)

// cli runs cairn in-process with its own home and environment.
type cli struct {
	t    *testing.T
	home string
	vars map[string]string
	// now, when set, is the instant the commands run at (app.now); zero is the real clock.
	now time.Time
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	return &cli{t: t, home: home, vars: map[string]string{
		"CAIRN_HOME":           home,
		"CAIRN_KEY_PASSPHRASE": "correct horse battery staple",
		"CAIRN_KDF":            "fast",
		"HOME":                 "/nonexistent",
	}}
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	a := &app{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb, env: func(k string) string { return c.vars[k] }}
	if now := c.now; !now.IsZero() {
		a.now = func() time.Time { return now }
	}
	code := mainApp(a, args)
	return result{code, out.String(), errb.String()}
}

// ok runs a command that must succeed and returns its stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("cairn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs a command that must fail with code and mention want on stderr.
func (c *cli) fails(code int, want string, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		c.t.Fatalf("cairn %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
	return r
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHomeDir(t *testing.T) {
	tests := []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"CAIRN_HOME": "/c", "XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/c"},
		{map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/cairn"},
		{map[string]string{"HOME": "/h"}, "/h/.config/cairn"},
	}
	for _, tt := range tests {
		got, err := HomeDir(func(k string) string { return tt.vars[k] })
		if err != nil || got != tt.want {
			t.Errorf("HomeDir(%v) = %q, %v; want %q", tt.vars, got, err, tt.want)
		}
	}
}

func TestKeyGenerateListExport(t *testing.T) {
	c := newCLI(t)
	out := c.ok("key", "generate", "--name", "alice")
	if !strings.Contains(out, "key ID:") || !strings.Contains(out, "SHA256:") {
		t.Errorf("generate output lacks key ID or fingerprint: %s", out)
	}
	c.ok("key", "generate", "--name", "bob", "--type", "ecdsa-p256")

	st, err := os.Stat(filepath.Join(c.home, "keys", "alice.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, st.Mode())
	}

	var infos []keyInfo
	if err := json.Unmarshal([]byte(c.ok("key", "list", "--output", "json")), &infos); err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Name != "alice" || infos[1].Name != "bob" || infos[1].Public.Scheme != "ecdsa-sha2-nistp256" {
		t.Fatalf("key list = %+v", infos)
	}
	if text := c.ok("key", "list"); !strings.Contains(text, infos[0].KeyID) || !strings.Contains(text, "bob") {
		t.Errorf("key list text = %s", text)
	}

	// The export round-trips through --maintainer's parser to the same key ID.
	exported := c.ok("key", "export", "--public", "bob")
	var wire api.Key
	if err := json.Unmarshal([]byte(exported), &wire); err != nil {
		t.Fatal(err)
	}
	a := &app{env: func(k string) string { return c.vars[k] }}
	path := writeFile(t, t.TempDir(), "bob.pub", exported)
	for _, arg := range []string{exported, path, "bob", filepath.Join(c.home, "keys", "bob.json")} {
		k, err := a.parseMaintainerKey(arg)
		if err != nil || tufrepo.KeyID(k) != infos[1].KeyID {
			t.Errorf("parseMaintainerKey(%.40q) = %v; want key %s", arg, err, infos[1].KeyID)
		}
	}
	if _, err := a.parseMaintainerKey("carol"); api.CodeOf(err) != api.CodeInvalidKey {
		t.Errorf("unknown maintainer: %v", err)
	}

	c.fails(10, "already exists", "key", "generate", "--name", "alice")
	c.fails(10, "key name", "key", "generate", "--name", "../evil")
	c.fails(10, "not supported", "key", "generate", "--name", "rsa", "--type", "rsa")
	c.fails(10, "only public keys", "key", "export", "--public=false", "alice")
	c.fails(20, "no key named", "key", "export", "carol")
	delete(c.vars, "CAIRN_KEY_PASSPHRASE")
	c.fails(10, "CAIRN_KEY_PASSPHRASE", "key", "generate", "--name", "carol")
}

func TestKeyListEmpty(t *testing.T) {
	c := newCLI(t)
	if out := c.ok("key", "list", "--output", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("empty list = %q", out)
	}
}

func TestUsageErrors(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{
		{"frobnicate"},
		{"upload", "p", "1.0"},
		{"releases"},
		{"key", "generate"},
		{"releases", "p", "--bogus"},
		{"releases", "p", "--output", "yaml"},
	} {
		if r := c.run(args...); r.code != 10 {
			t.Errorf("cairn %v: exit %d (%s), want 10", args, r.code, r.stderr)
		}
	}
}

func TestInit(t *testing.T) {
	srv := clienttest.New(t)
	c := newCLI(t)
	c.vars["CAIRN_SERVER"] = ""
	c.fails(10, "--root", "init", "--server", srv.URL)
	c.fails(10, "no server configured", "releases", "p")

	dir := t.TempDir()
	c.fails(10, "not TUF root", "init", "--server", srv.URL, "--root", writeFile(t, dir, "bad.json", `{"signed":{}}`))
	other := clienttest.New(t)
	c.fails(3, "nothing was saved", "init", "--server", srv.URL, "--root", writeFile(t, dir, "other.json", string(other.Root())))
	if _, err := os.Stat(configPath(c.home)); !os.IsNotExist(err) {
		t.Fatalf("a failed init wrote the configuration: %v", err)
	}

	out := c.ok("init", "--server", srv.URL+"/", "--root", writeFile(t, dir, "root.json", string(srv.Root())))
	if !strings.Contains(out, "Pinned root version 1") || !strings.Contains(out, "snapshot") {
		t.Errorf("init output = %s", out)
	}
	cfg, err := LoadConfig(c.home)
	if err != nil || cfg.Server != srv.URL {
		t.Fatalf("config = %+v, %v", cfg, err)
	}
	if b, err := os.ReadFile(cfg.Root); err != nil || !bytes.Equal(b, srv.Root()) {
		t.Fatalf("pinned root: %v", err)
	}

	tofu := newCLI(t)
	r := tofu.run("init", "--server", srv.URL, "--trust-on-first-use")
	if r.code != 0 || !strings.Contains(r.stderr, "WARNING: trusting root metadata downloaded") {
		t.Fatalf("tofu: exit %d, stderr %s", r.code, r.stderr)
	}
}

// maintainer sets up a server, an initialised CLI with keys alice and bob, and project
// widget maintained by both.
func maintainer(t *testing.T) (*clienttest.Server, *cli) {
	t.Helper()
	srv := clienttest.New(t)
	c := newCLI(t)
	c.vars["CAIRN_TOKEN"] = srv.Token
	c.ok("init", "--server", srv.URL, "--root", writeFile(t, t.TempDir(), "root.json", string(srv.Root())))
	c.ok("key", "generate", "--name", "alice")
	c.ok("key", "generate", "--name", "bob")
	bob := writeFile(t, t.TempDir(), "bob.pub", c.ok("key", "export", "--public", "bob"))
	out := c.ok("project", "create", "widget", "--key", "alice", "--maintainer", bob)
	if !strings.Contains(out, "2 maintainer key(s), threshold 1") || !strings.Contains(out, "published in snapshot") {
		t.Fatalf("project create output = %s", out)
	}
	return srv, c
}

func TestUploadReleasesGet(t *testing.T) {
	srv, c := maintainer(t)
	dist := t.TempDir()
	tgz := writeFile(t, dist, "widget-1.0.tar.gz", "source code")
	whl := writeFile(t, dist, "widget-1.0-py3-none-any.whl", "wheel")
	out := c.ok("upload", "widget", "1.0", tgz, whl, "--key", "alice")
	if !strings.Contains(out, "Published widget 1.0 (2 file(s)) as role version 2 in snapshot") {
		t.Fatalf("upload output = %s", out)
	}
	// Bob, the other maintainer, releases the next version.
	c.ok("upload", "widget", "1.10", writeFile(t, dist, "widget-1.10.tar.gz", "newer"), "--key", "bob")

	var list releaseList
	if err := json.Unmarshal([]byte(c.ok("releases", "widget", "--output", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Releases) != 2 || list.Releases[0].Version != "1.10" || list.RoleVersion != 3 || len(list.Releases[1].Files) != 2 {
		t.Fatalf("releases = %+v", list)
	}
	if text := c.ok("releases", "widget"); !strings.Contains(text, "widget-1.0-py3-none-any.whl") {
		t.Errorf("releases text = %s", text)
	}

	dl := filepath.Join(t.TempDir(), "dl")
	c.ok("get", "widget", "-o", dl)
	if b, err := os.ReadFile(filepath.Join(dl, "widget-1.10.tar.gz")); err != nil || string(b) != "newer" {
		t.Fatalf("latest download: %q, %v", b, err)
	}
	c.ok("get", "widget@1.0", "-o", dl, "--file", "widget-1.0.tar.gz")
	if b, err := os.ReadFile(filepath.Join(dl, "widget-1.0.tar.gz")); err != nil || string(b) != "source code" {
		t.Fatalf("pinned download: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dl, "widget-1.0-py3-none-any.whl")); !os.IsNotExist(err) {
		t.Error("--file downloaded more than the file named")
	}
	c.fails(20, "no release", "get", "widget@2.0", "-o", dl)

	if out := c.ok("log", "verify"); !strings.Contains(out, "verified") {
		t.Errorf("log verify = %s", out)
	}
	_ = srv
}

func TestUploadRefusals(t *testing.T) {
	srv, c := maintainer(t)
	dist := t.TempDir()
	good := writeFile(t, dist, "w.tar.gz", "x")
	c.ok("upload", "widget", "1.0", good, "--key", "alice")
	writes := len(srv.WriteRequests())

	c.vars["CAIRN_KEY_PASSPHRASE"] = "wrong"
	c.fails(10, "wrong passphrase", "upload", "widget", "2.0", good, "--key", "alice")
	c.vars["CAIRN_KEY_PASSPHRASE"] = "correct horse battery staple"

	before := len(srv.Requests())
	c.fails(10, "file name", "upload", "widget", "2.0", writeFile(t, dist, ".hidden", "x"), "--key", "alice")
	c.fails(10, "release version", "upload", "widget", "../2", good, "--key", "alice")
	c.fails(10, "not normalised", "upload", "Widget", "2.0", good, "--key", "alice")
	if n := len(srv.Requests()); n != before {
		t.Errorf("refusals of bad input reached the server: %v", srv.Requests()[before:])
	}

	c.fails(4, "already exists", "upload", "widget", "1.0", good, "--key", "alice")
	c.ok("key", "generate", "--name", "carol")
	c.fails(3, "not a maintainer key", "upload", "widget", "2.0", good, "--key", "carol")
	delete(c.vars, "CAIRN_TOKEN")
	c.fails(10, "CAIRN_TOKEN", "upload", "widget", "2.0", good, "--key", "alice")
	if n := len(srv.WriteRequests()); n != writes {
		t.Errorf("refused uploads wrote to the server: %v", srv.WriteRequests()[writes:])
	}

	c.vars["CAIRN_TOKEN"] = "not-the-token"
	// A token the server does not accept is a failure, not a policy verdict on the upload.
	c.fails(20, "the token came from $CAIRN_TOKEN", "upload", "widget", "2.0", good, "--key", "alice")
}

func TestUploadWaitsForStagedRelease(t *testing.T) {
	srv, c := maintainer(t)
	srv.SetStage(true)
	out := c.ok("upload", "widget", "1.0", writeFile(t, t.TempDir(), "w.tar.gz", "x"), "--key", "alice", "--output", "json")
	var res uploadResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != api.StatusPublished || res.RoleVersion != 2 || res.SnapshotVersion == 0 || len(res.Files) != 1 {
		t.Fatalf("upload result = %+v", res)
	}
}

func TestGetRefusesTamperedFile(t *testing.T) {
	srv, c := maintainer(t)
	c.ok("upload", "widget", "1.0", writeFile(t, t.TempDir(), "w.tar.gz", "genuine"), "--key", "alice")
	srv.SetTamper(func(name string, b []byte) []byte {
		if strings.HasPrefix(name, "widget/") {
			return []byte("evil!!!")
		}
		return b
	})
	dl := filepath.Join(t.TempDir(), "dl")
	c.fails(int(client.ExitHashMismatch), "widget/1.0/w.tar.gz", "get", "widget@1.0", "-o", dl)
	if entries, _ := os.ReadDir(dl); len(entries) != 0 {
		t.Fatalf("a file that failed verification was written: %v", entries)
	}
}

func TestLogVerifyDetectsRewrite(t *testing.T) {
	srv, c := maintainer(t)
	srv.RewriteLog(func(es []api.LogEntry) []api.LogEntry {
		es[1].Role = "forged"
		return es
	})
	c.fails(int(client.ExitHashMismatch), "entry 2", "log", "verify")
}
