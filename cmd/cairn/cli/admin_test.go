package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// onlineKey is an online key as the server holds it, and its public half as
// 'cairnd keys public' prints it.
type onlineKey struct {
	signer *tufrepo.OnlineSigner
	json   string
}

func newOnlineKey(t *testing.T, kt tufrepo.KeyType) onlineKey {
	t.Helper()
	priv, err := tufrepo.GenerateKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tufrepo.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	o, err := tufrepo.NewOnlineSigner(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tufrepo.KeyToAPI(o.Key))
	if err != nil {
		t.Fatal(err)
	}
	return onlineKey{signer: o, json: string(b) + "\n"}
}

// adminFixture is an admin's CLI and the public keys of a server's three online keys.
type adminFixture struct {
	c                     *cli
	ts, snap, rc          onlineKey
	tsArg, snapArg, rcArg string
	onlineDir             string
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	f := &adminFixture{c: newCLI(t), ts: newOnlineKey(t, tufrepo.KeyEd25519), snap: newOnlineKey(t, tufrepo.KeyECDSAP256), rc: newOnlineKey(t, tufrepo.KeyEd25519)}
	f.onlineDir = t.TempDir()
	// The three forms the flags take: a file, inline JSON, and a whole key file.
	f.tsArg = writeFile(t, f.onlineDir, "timestamp.pub.json", f.ts.json)
	f.snapArg = f.snap.json
	priv, err := tufrepo.GenerateKey(tufrepo.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	kf, err := tufrepo.EncryptKey("recently-claimed", priv, []byte("server secret"), tufrepo.KDFFast)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := tufrepo.NewSigner(priv)
	f.rc.signer, _ = tufrepo.NewOnlineSigner(context.Background(), s)
	b, _ := json.Marshal(kf)
	f.rcArg = writeFile(t, f.onlineDir, "recently-claimed.json", string(b))
	return f
}

func (f *adminFixture) args(out string, extra ...string) []string {
	return append([]string{"admin", "init", "--out", out,
		"--timestamp-key", f.tsArg, "--snapshot-key", f.snapArg, "--recently-claimed-key", f.rcArg}, extra...)
}

func readOffline(t *testing.T, dir string) *tufrepo.OfflineMetadata {
	t.Helper()
	var off tufrepo.OfflineMetadata
	for _, x := range []struct {
		name string
		dst  *[]byte
	}{{"1.root.json", &off.Root}, {"1.targets.json", &off.Targets}, {"1.claimed.json", &off.Claimed}} {
		b, err := os.ReadFile(filepath.Join(dir, x.name))
		if err != nil {
			t.Fatal(err)
		}
		*x.dst = b
	}
	return &off
}

func TestAdminInit(t *testing.T) {
	f := newAdminFixture(t)
	out := filepath.Join(t.TempDir(), "ceremony")
	stdout := f.c.ok(f.args(out)...)

	off := readOffline(t, out)
	if err := tufrepo.VerifyOffline(off); err != nil {
		t.Fatal(err)
	}
	// A server holding exactly these online keys accepts the metadata.
	if err := tufrepo.CheckOnlineKeys(off.Root, off.Targets, tufrepo.Signers{Timestamp: f.ts.signer, Snapshot: f.snap.signer, RecentlyClaimed: f.rc.signer}); err != nil {
		t.Fatal(err)
	}
	root, err := metadata.Root().FromBytes(off.Root)
	if err != nil {
		t.Fatal(err)
	}
	if rr := root.Signed.Roles[tufrepo.RoleRoot]; rr.Threshold != 2 || len(rr.KeyIDs) != 3 {
		t.Fatalf("root role = %+v; want 2 of 3", rr)
	}
	if tr := root.Signed.Roles[tufrepo.RoleTargets]; tr.Threshold != 1 || len(tr.KeyIDs) != 1 {
		t.Fatalf("targets role = %+v; want 1 of 1", tr)
	}
	if len(root.Signatures) != 3 {
		t.Errorf("root has %d signatures; want one from each of the 3 root keys", len(root.Signatures))
	}
	if d := time.Until(root.Signed.Expires); d < tufrepo.OfflineExpiry-time.Hour || d > tufrepo.OfflineExpiry {
		t.Errorf("root expires in %v; want %v", d, tufrepo.OfflineExpiry)
	}

	// The keys are in the key store, encrypted with the passphrase, and are the keys root
	// and targets delegate to.
	ks := KeyStore{Dir: filepath.Join(f.c.home, "keys")}
	kfs, err := ks.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, kf := range kfs {
		names = append(names, kf.Name)
	}
	if want := []string{"claimed-1", "root-1", "root-2", "root-3", "targets-1"}; !slices.Equal(names, want) {
		t.Fatalf("keys = %v; want %v", names, want)
	}
	for _, kf := range kfs {
		st, err := os.Stat(filepath.Join(ks.Dir, kf.Name+".json"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("key file %s: %v, mode %v; want 0600", kf.Name, err, st.Mode())
		}
		if _, err := kf.Decrypt([]byte(f.c.vars["CAIRN_KEY_PASSPHRASE"])); err != nil {
			t.Errorf("key %s does not open with the passphrase: %v", kf.Name, err)
		}
		role := strings.TrimSuffix(kf.Name[:strings.LastIndex(kf.Name, "-")], "-")
		if role == tufrepo.RoleClaimed {
			continue
		}
		if !slices.Contains(root.Signed.Roles[role].KeyIDs, kf.KeyID) {
			t.Errorf("root does not delegate %s to key %s (%s)", role, kf.Name, kf.KeyID)
		}
		info, err := describeKey(kf)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stdout, kf.KeyID) || !strings.Contains(stdout, info.Fingerprint) {
			t.Errorf("output does not show key %s's ID and fingerprint:\n%s", kf.Name, stdout)
		}
	}

	// The output says what was made and what to do next.
	for _, want := range []string{
		"root: 2 of these 3 offline keys", "targets: 1 of these 1", "claimed: 1 of these 1",
		root.Signed.Expires.UTC().Format("2006-01-02"),
		f.ts.signer.KeyID, f.snap.signer.KeyID, f.rc.signer.KeyID,
		"cairnd bootstrap --metadata " + out + " --timestamp-key",
		"--snapshot-key", "--recently-claimed-key", "cairn init --server",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	sum := sha256.Sum256(off.Root)
	if !strings.Contains(stdout, hex.EncodeToString(sum[:])) {
		t.Errorf("output lacks the SHA-256 of 1.root.json:\n%s", stdout)
	}

	// The pinned root works for 'cairn init' (its own checks: self-signed, consistent).
	if _, err := checkRoot(off.Root); err != nil {
		t.Fatal(err)
	}

	// A second ceremony into the same directory, or with the same key names, is refused
	// and changes nothing.
	f.c.fails(10, "already holds TUF metadata (1.claimed.json)", f.args(out)...)
	if again := readOffline(t, out); string(again.Root) != string(off.Root) || string(again.Targets) != string(off.Targets) || string(again.Claimed) != string(off.Claimed) {
		t.Fatal("a refused ceremony changed the metadata")
	}
	other := filepath.Join(t.TempDir(), "other")
	f.c.fails(10, `a key named "root-1" already exists`, f.args(other)...)
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("a refused ceremony created --out: %v", err)
	}
	if after, _ := ks.List(); len(after) != len(kfs) {
		t.Errorf("a refused ceremony changed the key store: %d keys, had %d", len(after), len(kfs))
	}
}

func TestAdminInitOptionsAndJSON(t *testing.T) {
	f := newAdminFixture(t)
	// An existing, empty directory (or one with unrelated files) is fine.
	out := t.TempDir()
	writeFile(t, out, "README", "ceremony of 2025")
	stdout := f.c.ok(f.args(out, "--root-keys", "5", "--root-threshold", "3", "--targets-keys", "2", "--targets-threshold", "2",
		"--claimed-keys", "3", "--claimed-threshold", "2", "--key-type", "ecdsa-p256", "--key-prefix", "prod", "--output", "json")...)
	var res adminInitResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if len(res.Files) != 3 || len(res.Offline) != 3 || len(res.Online) != 3 || !strings.HasPrefix(res.Next, "cairnd bootstrap --metadata ") {
		t.Fatalf("result = %+v", res)
	}
	want := map[string][2]int{tufrepo.RoleRoot: {5, 3}, tufrepo.RoleTargets: {2, 2}, tufrepo.RoleClaimed: {3, 2}}
	for _, r := range res.Offline {
		if len(r.Keys) != want[r.Role][0] || r.Threshold != want[r.Role][1] {
			t.Errorf("%s: %d keys, threshold %d; want %v", r.Role, len(r.Keys), r.Threshold, want[r.Role])
		}
		for i, k := range r.Keys {
			if k.Name != "prod-"+r.Role+"-"+itoaTest(i+1) || k.Public.Scheme != metadata.KeySchemeECDSA_SHA2_P256 {
				t.Errorf("key %d of %s = %s (%s)", i, r.Role, k.Name, k.Public.Scheme)
			}
		}
	}
	for i, r := range res.Online {
		if wantID := []string{f.ts.signer.KeyID, f.snap.signer.KeyID, f.rc.signer.KeyID}[i]; r.KeyID != wantID {
			t.Errorf("online %s = %s; want %s", r.Role, r.KeyID, wantID)
		}
	}
	off := readOffline(t, out)
	if err := tufrepo.VerifyOffline(off); err != nil {
		t.Fatal(err)
	}
	for _, file := range res.Files {
		b, err := os.ReadFile(file.Path)
		sum := sha256.Sum256(b)
		if err != nil || hex.EncodeToString(sum[:]) != file.SHA256 || len(b) != file.Length {
			t.Errorf("%s: %v, or its sha256/length differ from the report", file.Path, err)
		}
	}
	targets, err := metadata.Targets().FromBytes(off.Targets)
	if err != nil {
		t.Fatal(err)
	}
	if d := targets.Signed.Delegations.Roles[0]; d.Name != tufrepo.RoleClaimed || d.Threshold != 2 || len(d.KeyIDs) != 3 {
		t.Errorf("claimed delegation = %+v", d)
	}

	// A threshold of 1 for root works but warns.
	f2 := newAdminFixture(t)
	r := f2.c.run(f2.args(filepath.Join(t.TempDir(), "c"), "--root-keys", "1", "--root-threshold", "1")...)
	if r.code != 0 || !strings.Contains(r.stderr, "one stolen root key") {
		t.Errorf("root threshold 1: exit %d, stderr %s", r.code, r.stderr)
	}
}

func itoaTest(i int) string { return string(rune('0' + i)) }

func TestAdminInitRefusals(t *testing.T) {
	f := newAdminFixture(t)
	dir := t.TempDir()
	withMetadata := t.TempDir()
	writeFile(t, withMetadata, "2.root.json", "{}")
	notDir := writeFile(t, dir, "file", "x")
	rsaLike := `{"keytype":"rsa","scheme":"rsassa-pss-sha256","keyval":{"public":"-----BEGIN PUBLIC KEY-----"}}`
	shortEd := `{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"abcd"}}`
	var withPrivate map[string]any
	json.Unmarshal([]byte(f.ts.json), &withPrivate)
	withPrivate["keyval"].(map[string]any)["private"] = strings.Repeat("ab", 32)
	priv, _ := json.Marshal(withPrivate)

	set := func(flag, val string) func([]string) []string {
		return func(args []string) []string {
			out := slices.Clone(args)
			i := slices.Index(out, flag)
			out[i+1] = val
			return out
		}
	}
	add := func(extra ...string) func([]string) []string {
		return func(args []string) []string { return append(slices.Clone(args), extra...) }
	}
	tests := []struct {
		name string
		args func([]string) []string
		code int
		want string
	}{
		{"root threshold above keys", add("--root-threshold", "4"), 10, "--root-threshold 4 is not possible with --root-keys 3"},
		{"root threshold zero", add("--root-threshold", "0"), 10, "--root-threshold 0"},
		{"no targets keys", add("--targets-keys", "0"), 10, "--targets-keys 0: targets needs between 1 and 32 keys"},
		{"too many root keys", add("--root-keys", "33"), 10, "--root-keys 33"},
		{"claimed threshold", add("--claimed-threshold", "2"), 10, "--claimed-threshold 2 is not possible with --claimed-keys 1"},
		{"negative targets threshold", add("--targets-threshold", "-1"), 10, "--targets-threshold -1"},
		{"key type", add("--key-type", "rsa"), 10, `--key-type "rsa" is not supported`},
		{"missing timestamp key", set("--timestamp-key", ""), 10, "--timestamp-key is required"},
		{"timestamp key file missing", set("--timestamp-key", filepath.Join(dir, "nope.json")), 10, "--timestamp-key"},
		{"snapshot key not JSON", set("--snapshot-key", writeFile(t, dir, "garbage", "not json")), 10, "--snapshot-key"},
		{"snapshot key bad JSON", set("--snapshot-key", `{"keytype":`), 10, "is not valid JSON"},
		{"snapshot key not a key", set("--snapshot-key", `{"hello":"world"}`), 10, "is not a public key"},
		{"recently-claimed key rsa", set("--recently-claimed-key", rsaLike), 10, `--recently-claimed-key: invalid_key: key type "rsa"`},
		{"recently-claimed key short", set("--recently-claimed-key", shortEd), 10, "--recently-claimed-key: invalid_key: ed25519 key must be 32 bytes"},
		{"private key given", set("--timestamp-key", string(priv)), 10, "--timestamp-key holds a private key"},
		{"out holds metadata", set("--out", withMetadata), 10, "already holds TUF metadata (2.root.json)"},
		{"out is a file", set("--out", notDir), 10, "is not a directory"},
		{"bad key prefix", add("--key-prefix", "../evil"), 10, "--key-prefix"},
		{"bad output", add("--output", "yaml"), 10, "--output must be text or json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "ceremony")
			args := tt.args(f.args(out))
			f.c.fails(tt.code, tt.want, args...)
			assertNoCeremony(t, f.c, out)
		})
	}

	t.Run("missing out", func(t *testing.T) {
		args := append([]string{"admin", "init"}, f.args("x")[4:]...)
		f.c.fails(10, `required flag(s) "out" not set`, args...)
		assertNoCeremony(t, f.c, "x")
	})
	t.Run("no passphrase", func(t *testing.T) {
		c := newCLI(t)
		delete(c.vars, "CAIRN_KEY_PASSPHRASE")
		out := filepath.Join(t.TempDir(), "ceremony")
		c.fails(10, "CAIRN_KEY_PASSPHRASE", f.args(out)...)
		assertNoCeremony(t, c, out)
	})
	t.Run("one key name taken", func(t *testing.T) {
		c := newCLI(t)
		c.ok("key", "generate", "--name", "root-2")
		out := filepath.Join(t.TempDir(), "ceremony")
		c.fails(10, `a key named "root-2" already exists`, f.args(out)...)
		if kfs, _ := (KeyStore{Dir: filepath.Join(c.home, "keys")}).List(); len(kfs) != 1 {
			t.Errorf("key store has %d keys after a refused ceremony; want only the one there before", len(kfs))
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("--out created: %v", err)
		}
		// With another prefix it works.
		c.ok(append(f.args(out), "--key-prefix", "prod")...)
	})
}

// assertNoCeremony checks that a refused 'admin init' generated no key and wrote no file.
func assertNoCeremony(t *testing.T, c *cli, out string) {
	t.Helper()
	if kfs, err := (KeyStore{Dir: filepath.Join(c.home, "keys")}).List(); err != nil || len(kfs) != 0 {
		t.Errorf("a refused ceremony left %d keys (%v)", len(kfs), err)
	}
	if _, err := os.Stat(filepath.Join(out, "1.root.json")); !os.IsNotExist(err) {
		t.Errorf("a refused ceremony wrote 1.root.json: %v", err)
	}
}

func TestAdminInitValidatesOnlineKeyKinds(t *testing.T) {
	// The JSON printed by 'cairnd keys public' for both key types, a whole key file, and
	// the older "ecdsa-sha2-nistp256" key type are all accepted.
	for _, kt := range []tufrepo.KeyType{tufrepo.KeyEd25519, tufrepo.KeyECDSAP256} {
		k := newOnlineKey(t, kt)
		got, err := parseOnlineKey("--timestamp-key", k.json)
		if err != nil || tufrepo.KeyID(got) != k.signer.KeyID {
			t.Errorf("%s: %v", kt, err)
		}
	}
	k := newOnlineKey(t, tufrepo.KeyECDSAP256)
	var wire api.Key
	json.Unmarshal([]byte(k.json), &wire)
	wire.KeyType = metadata.KeyTypeECDSA_SHA2_P256_COMPAT
	b, _ := json.Marshal(wire)
	if _, err := parseOnlineKey("--snapshot-key", string(b)); err != nil {
		t.Errorf("compat ECDSA key type: %v", err)
	}
	if _, err := parseOnlineKey("--snapshot-key", "  "); api.CodeOf(err) != api.CodeBadRequest {
		t.Errorf("blank key: %v", err)
	}
}

func TestAdminInHelp(t *testing.T) {
	c := newCLI(t)
	if out := c.ok("--help"); !strings.Contains(out, "admin") {
		t.Errorf("cairn --help does not list admin:\n%s", out)
	}
	if out := c.ok("admin", "init", "--help"); !strings.Contains(out, "cairnd keys public") || !strings.Contains(out, "--root-threshold") {
		t.Errorf("cairn admin init --help:\n%s", out)
	}
}
