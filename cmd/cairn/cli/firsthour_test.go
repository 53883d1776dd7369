package cli

// The first hour of a new user (issue 15): importing the dev server's offline keys, and
// a passphrase per key.

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client/clienttest"
	"github.com/cairn-dev/cairn/tufrepo"
)

// devKeyFile writes a key file as `cairnd serve --dev` does (<data-dir>/keys/<role>.json,
// encrypted with the content of <data-dir>/keys/passphrase) and returns its path, the
// passphrase file and the key file.
func devKeyFile(t *testing.T, role, pass string) (string, string, *tufrepo.KeyFile) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	priv, err := tufrepo.GenerateKey(tufrepo.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := tufrepo.EncryptKey(role, priv, []byte(pass), tufrepo.KDFFast)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(kf, "", "  ")
	return writeFile(t, dir, role+".json", string(b)), writeFile(t, dir, "passphrase", pass), kf
}

func keyNames(t *testing.T, c *cli) []string {
	t.Helper()
	var infos []keyInfo
	if err := json.Unmarshal([]byte(c.ok("key", "list", "--output", "json")), &infos); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range infos {
		names = append(names, k.Name+"="+k.KeyID)
	}
	return names
}

func TestKeyImport(t *testing.T) {
	c := newCLI(t)
	file, passFile, kf := devKeyFile(t, "root", "dev passphrase")
	out := c.ok("key", "import", file, "--name", "dev-root")
	if !strings.Contains(out, `Imported ed25519 key "dev-root"`) || !strings.Contains(out, kf.KeyID) {
		t.Fatalf("import output: %s", out)
	}
	want := []string{"dev-root=" + kf.KeyID}
	if got := keyNames(t, c); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("key list after import: %v", got)
	}

	// The imported key signs, with its own passphrase.
	a := &app{ctx: t.Context(), stdin: strings.NewReader(""), passFiles: []string{"dev-root=" + passFile}, env: func(k string) string {
		if k == "CAIRN_HOME" {
			return c.home
		}
		return ""
	}}
	if got, err := openKey(a, "dev-root"); err != nil || got.KeyID != kf.KeyID {
		t.Fatalf("signing with the imported key: %v", err)
	}

	// Refusals, each leaving the key store as it was.
	dir := t.TempDir()
	other, _, _ := devKeyFile(t, "targets", "x")
	var damaged tufrepo.KeyFile
	b, _ := os.ReadFile(other)
	_ = json.Unmarshal(b, &damaged)
	damaged.KeyID = strings.Repeat("0", 64)
	db, _ := json.Marshal(damaged)
	for _, tc := range []struct {
		code int
		want string
		args []string
	}{
		{10, `a key named "dev-root" already exists`, []string{"key", "import", other, "--name", "dev-root"}},
		{10, "is not a Cairn key file", []string{"key", "import", passFile, "--name", "pass"}},
		{10, "is not a Cairn key file", []string{"key", "import", writeFile(t, dir, "pub.json", c.ok("key", "export", "--public", "dev-root")), "--name", "pub"}},
		{10, "is damaged: it says key ID 0000", []string{"key", "import", writeFile(t, dir, "damaged.json", string(db)), "--name", "damaged"}},
		{20, "does not exist", []string{"key", "import", filepath.Join(dir, "nope.json"), "--name", "nope"}},
		{10, "is a directory", []string{"key", "import", dir, "--name", "d"}},
		{10, `key name "../evil" is not allowed`, []string{"key", "import", other, "--name", "../evil"}},
		{10, "required flag(s) \"name\" not set", []string{"key", "import", other}},
	} {
		c.fails(tc.code, tc.want, tc.args...)
		if got := keyNames(t, c); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%v changed the key store: %v", tc.args, got)
		}
	}
}

// A key that is not in the store: the whole name, and every way to get one.
func TestKeyNotFoundSaysWhatToDo(t *testing.T) {
	c := newCLI(t)
	file, _, _ := devKeyFile(t, "root", "p")
	long := strings.Repeat("k", 70) + "-tail"
	for _, tc := range []struct {
		code int
		want []string
		name string
	}{
		{20, []string{`no key named "alcie"`, "cairn key list", "cairn key generate --name alcie", "cairn key import FILE --name alcie"}, "alcie"},
		{10, []string{"is a file", "cairn key import " + file + " --name NAME", "--key NAME"}, file},
		{10, []string{long, "not allowed", "cairn key list"}, long},
	} {
		r := c.run("key", "export", "--public", tc.name)
		for _, w := range tc.want {
			if r.code != tc.code || !strings.Contains(r.stderr, w) {
				t.Errorf("key %q: exit %d, stderr %q; want exit %d mentioning %q", tc.name, r.code, r.stderr, tc.code, w)
			}
		}
	}
}

func TestPassphraseEnvName(t *testing.T) {
	for name, want := range map[string]string{
		"alice": "CAIRN_KEY_PASSPHRASE_ALICE", "dev-root": "CAIRN_KEY_PASSPHRASE_DEV_ROOT",
		"ops.targets+2": "CAIRN_KEY_PASSPHRASE_OPS_TARGETS_2", "K9": "CAIRN_KEY_PASSPHRASE_K9",
	} {
		if got := passphraseEnv(name); got != want {
			t.Errorf("passphraseEnv(%q) = %q; want %q", name, got, want)
		}
	}
}

// Each key's passphrase from its own source: --passphrase-file, then the per-key
// variable, then CAIRN_KEY_PASSPHRASE.
func TestPassphrasePrecedence(t *testing.T) {
	c := newCLI(t)
	c.vars["CAIRN_KEY_PASSPHRASE"] = "alice's"
	c.ok("key", "generate", "--name", "alice")
	delete(c.vars, "CAIRN_KEY_PASSPHRASE")
	c.vars["CAIRN_KEY_PASSPHRASE_BOB"] = "bob's"
	c.ok("key", "generate", "--name", "bob") // the per-key variable serves a new key too
	dir := t.TempDir()
	aliceFile := writeFile(t, dir, "alice.pass", "alice's\n")
	wrongFile := writeFile(t, dir, "wrong.pass", "wrong")
	empty := writeFile(t, dir, "empty.pass", "\n")
	for _, tc := range []struct {
		name  string
		env   map[string]string
		files []string
		want  string // "" for success, else part of the error
	}{
		{"generic", map[string]string{"CAIRN_KEY_PASSPHRASE": "alice's"}, nil, ""},
		{"per-key beats generic", map[string]string{"CAIRN_KEY_PASSPHRASE": "wrong", "CAIRN_KEY_PASSPHRASE_ALICE": "alice's"}, nil, ""},
		{"file beats per-key", map[string]string{"CAIRN_KEY_PASSPHRASE_ALICE": "wrong"}, []string{"alice=" + aliceFile}, ""},
		{"another key's file is not used", map[string]string{"CAIRN_KEY_PASSPHRASE_ALICE": "alice's"}, []string{"bob=" + wrongFile}, ""},
		{"wrong per-key", map[string]string{"CAIRN_KEY_PASSPHRASE_ALICE": "wrong", "CAIRN_KEY_PASSPHRASE": "alice's"}, nil, "wrong passphrase for key \"alice\""},
		{"none", nil, nil, "give --passphrase-file alice=FILE, set CAIRN_KEY_PASSPHRASE_ALICE"},
		{"not NAME=FILE", nil, []string{aliceFile}, "want NAME=FILE"},
		{"twice", nil, []string{"alice=" + aliceFile, "alice=" + wrongFile}, "names key \"alice\" twice"},
		{"empty file", nil, []string{"alice=" + empty}, "the file is empty"},
		{"missing file", nil, []string{"alice=" + filepath.Join(dir, "nope")}, "the file does not exist"},
	} {
		a := &app{ctx: t.Context(), stdin: strings.NewReader(""), passFiles: tc.files, env: func(k string) string {
			if k == "CAIRN_HOME" {
				return c.home
			}
			return tc.env[k]
		}}
		_, err := openKey(a, "alice")
		if (tc.want == "" && err != nil) || (tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want))) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
}

// One command, two keys with different passphrases, no terminal.
func TestMultiKeyCommandWithPerKeyPassphrases(t *testing.T) {
	_, ps, c, _ := maintainerWorld(t, 2)
	// Give alice and bob passphrases of their own.
	for n, pass := range map[string]string{"alice": "alice's own", "bob": "bob's own"} {
		p := filepath.Join(c.home, "keys", n+".json")
		b, _ := os.ReadFile(p)
		kf, err := tufrepo.ParseKeyFile(b)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := kf.Decrypt([]byte(c.vars["CAIRN_KEY_PASSPHRASE"]))
		if err != nil {
			t.Fatal(err)
		}
		nkf, err := tufrepo.EncryptKey(n, priv, []byte(pass), tufrepo.KDFFast)
		if err != nil {
			t.Fatal(err)
		}
		nb, _ := json.Marshal(nkf)
		if err := os.WriteFile(p, nb, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	delete(c.vars, "CAIRN_KEY_PASSPHRASE")
	ps.mu.Lock()
	ps.Answer = api.MaintainerChangeResult{Project: "gadget", Version: 4, Status: "applied", Signatures: 2, Threshold: 2}
	ps.mu.Unlock()
	args := []string{"maintainer", "remove", "gadget", "bob", "--key", "alice", "--key", "bob", "--threshold", "1"}

	c.vars["CAIRN_KEY_PASSPHRASE"] = "alice's own"
	c.fails(10, `wrong passphrase for key "bob"`, args...)
	delete(c.vars, "CAIRN_KEY_PASSPHRASE")
	c.vars["CAIRN_KEY_PASSPHRASE_ALICE"] = "alice's own"
	c.fails(10, "CAIRN_KEY_PASSPHRASE_BOB", args...)
	if len(ps.Posted()) != 0 {
		t.Fatal("a change was posted without every signature")
	}
	bobFile := writeFile(t, t.TempDir(), "bob.pass", "bob's own\n")
	if out := c.ok(append(args, "--passphrase-file", "bob="+bobFile)...); !strings.Contains(out, "Applied") {
		t.Fatalf("remove: %s", out)
	}
	if len(ps.Posted()) != 1 {
		t.Fatal("nothing posted")
	}
}

// Errors a new user meets before anything works: each says what is wrong and what to do,
// with the right exit class.
func TestFirstHourErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	c := newCLI(t)
	r := c.fails(20, "cannot reach the Cairn server at "+down+": nothing is listening there (connection refused)", "init", "--server", down, "--trust-on-first-use")
	if strings.Contains(r.stderr, `Get "`) || !strings.Contains(r.stderr, "--server") || strings.Contains(r.stderr, "run cairnd") {
		t.Errorf("refused connection: %s", r.stderr)
	}
	missing := filepath.Join(t.TempDir(), "root.json")
	c.fails(10, "root file "+missing+" does not exist: get root.json from your repository's administrators", "init", "--server", down, "--root", missing)
	if _, err := os.Stat(filepath.Join(c.home, "config.json")); !os.IsNotExist(err) {
		t.Errorf("a failed init wrote the configuration: %v", err)
	}
	c.ok("key", "generate", "--name", "alice")
	c.fails(10, "release file "+missing+" does not exist; nothing was uploaded", "upload", "widget", "1.0", missing, "--key", "alice")
	c.fails(10, "is a directory", "upload", "widget", "1.0", t.TempDir(), "--key", "alice")
}

// A second init that moves the default server says so.
func TestSecondInitSaysTheDefaultServerMoved(t *testing.T) {
	a, b := clienttest.New(t), clienttest.New(t)
	c := newCLI(t)
	out := c.ok("init", "--server", a.URL, "--root", writeFile(t, t.TempDir(), "a.json", string(a.Root())))
	if strings.Contains(out, "default server is now") {
		t.Errorf("first init: %s", out)
	}
	if out := c.ok("init", "--server", a.URL, "--root", writeFile(t, t.TempDir(), "a.json", string(a.Root()))); strings.Contains(out, "default server is now") {
		t.Errorf("init of the same server again: %s", out)
	}
	out = c.ok("init", "--server", b.URL, "--root", writeFile(t, t.TempDir(), "b.json", string(b.Root())))
	if !strings.Contains(out, "The default server is now "+b.URL+" (it was "+a.URL) {
		t.Errorf("second init: %s", out)
	}
}

// openKey opens key name from the key store as a command that signs with it does.
func openKey(a *app, name string) (*tufrepo.OnlineSigner, error) {
	kf, err := a.loadKey(name)
	if err != nil {
		return nil, err
	}
	return a.openSigner(kf)
}

// A key file whose key ID is not its private key's (damaged, or edited by hand) is refused
// when it is opened to sign, with the key's name and what to do.
func TestOpenSignerRefusesADamagedKeyFile(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--name", "alice")
	a := &app{ctx: t.Context(), stdin: strings.NewReader(""), env: func(k string) string { return c.vars[k] }}
	if _, err := openKey(a, "alice"); err != nil {
		t.Fatalf("opening the intact key: %v", err)
	}
	p := filepath.Join(c.home, "keys", "alice.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["keyid"] = strings.Repeat("0", 64)
	b, _ = json.Marshal(doc)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openKey(a, "alice")
	if api.CodeOf(err) != api.CodeInvalidKey || !strings.Contains(err.Error(), `key "alice" is damaged`) || !strings.Contains(err.Error(), "does not match key ID 0000") || !strings.Contains(err.Error(), "cairn key import FILE --name alice") {
		t.Fatalf("opening a key file with another key's ID: %v; want invalid_key naming the key and saying it is damaged", err)
	}
}
