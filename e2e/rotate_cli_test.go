package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/cmd/cairn/cli"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// rotationAdmin is the repository admin of a dev server, with the CLI: the dev repository's
// offline keys (root, targets, claimed) are copied into the admin's key store, and their
// passphrase is the admin's.
func rotationAdmin(t *testing.T, r *testrepo.Repo) *cairnCLI {
	t.Helper()
	pass, err := os.ReadFile(filepath.Join(r.Dir, "keys", "passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	admin := newCLI(t, r.AdminToken)
	admin.env["CAIRN_KEY_PASSPHRASE"] = strings.TrimSpace(string(pass))
	store := filepath.Join(admin.home, "keys")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{tufrepo.RoleRoot, tufrepo.RoleTargets, tufrepo.RoleClaimed} {
		b, err := os.ReadFile(filepath.Join(r.Dir, "keys", role+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(store, role+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	admin.ok(t, "init", "--server", r.URL, "--root", filepath.Join(r.Dir, "root.json"))
	return admin
}

// keyIDsOf reads key IDs from the CLI's key store, by name.
func keyIDsOf(t *testing.T, c *cairnCLI) map[string]string {
	t.Helper()
	var keys []struct {
		Name  string `json:"name"`
		KeyID string `json:"keyid"`
	}
	if err := json.Unmarshal([]byte(c.ok(t, "key", "list", "--output", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		out[k.Name] = k.KeyID
	}
	return out
}

// servedRoot fetches /metadata/N.root.json.
func servedRoot(t *testing.T, r *testrepo.Repo, version string) (*metadata.Metadata[metadata.RootType], int) {
	t.Helper()
	resp := r.Do(t, http.MethodGet, "/metadata/"+version+".root.json", "", "", nil)
	if resp.Status != http.StatusOK {
		return nil, resp.Status
	}
	md, err := metadata.Root().FromBytes(resp.Body)
	if err != nil {
		t.Fatalf("served root %s: %v", version, err)
	}
	return md, resp.Status
}

func adminStatusJSON(t *testing.T, c *cairnCLI) (int, api.RepositoryStatus, string) {
	t.Helper()
	code, out, errs := c.run(t, "admin", "status", "--output", "json")
	var st api.RepositoryStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("admin status --output json: exit %d, %v: %s %s", code, err, out, errs)
	}
	return code, st, errs
}

func statusRole(st api.RepositoryStatus, role string) api.RoleExpiry {
	for _, e := range st.Roles {
		if e.Role == role {
			return e
		}
	}
	return api.RoleExpiry{}
}

// TestRotateRootWithTheCLI: the admin rotates the dev repository's single root key to two
// generated keys (2 of 2) and its targets key to a generated one with 'cairn admin root
// rotate'; a downloader who pinned root 1 before the rotation still gets releases and
// follows to root 2. Refusals (a key that is not a current root key, too few keys, a
// threshold that cannot be met) change nothing on the server. Then targets is re-signed
// with a short expiry and 'cairn admin status' warns and exits 4.
func TestRotateRootWithTheCLI(t *testing.T) {
	u, drop, err := testdb.Create("e2e_rotate_cli")
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, nil)
	t.Cleanup(drop)
	rootFile := filepath.Join(r.Dir, "root.json")

	// A maintainer publishes hello 1.0.0; a downloader pins root 1 and gets it.
	maint := newCLI(t, r.AdminToken)
	maint.ok(t, "init", "--server", r.URL, "--root", rootFile)
	maint.ok(t, "key", "generate", "--name", "alice")
	maint.ok(t, "project", "create", "hello", "--key", "alice")
	rel := filepath.Join(t.TempDir(), "hello-1.0.0.tar.gz")
	os.WriteFile(rel, []byte("hello before the rotation"), 0o644)
	maint.ok(t, "upload", "hello", "1.0.0", rel, "--key", "alice")
	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	dl.ok(t, "get", "hello", "-o", t.TempDir())

	admin := rotationAdmin(t, r)
	ids := keyIDsOf(t, admin)

	// Status of a fresh repository: every role, nothing to warn about.
	code, out, errs := admin.run(t, "admin", "status")
	if code != 0 {
		t.Fatalf("admin status on a fresh repository: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"ROLE", "root", "targets", "claimed", "recently-claimed", "snapshot", "timestamp", "offline", "online", "Verified through TUF"} {
		if !strings.Contains(out, want) {
			t.Fatalf("admin status does not show %q:\n%s", want, out)
		}
	}

	rotate := []string{"admin", "root", "rotate", "--generate-root-keys", "2", "--threshold", "2", "--generate-targets-key", "--yes"}
	// Refusals, each before anything is generated or sent.
	for _, c := range []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"signed with the targets key", append(slices.Clone(rotate), "--key", "targets"), 3, []string{`key "targets"`, ids["targets"], "is not a current root key", ids["root"][:16]}},
		{"signed with the claimed key next to the root key", append(slices.Clone(rotate), "--key", "root", "--key", "claimed"), 3, []string{`key "claimed"`, "not a current root key"}},
		{"threshold above the new keys", []string{"admin", "root", "rotate", "--key", "root", "--generate-root-keys", "2", "--threshold", "3", "--yes"}, 10, []string{"--threshold 3", "1 to 2"}},
		{"no such key", append(slices.Clone(rotate), "--key", "nobody"), 20, []string{"nobody"}},
		{"expiry too short", append(slices.Clone(rotate), "--key", "root", "--expires", "3d"), 4, []string{"less than 7 days"}},
		{"expiry too far", append(slices.Clone(rotate), "--key", "root", "--expires", "1000d"), 4, []string{"at most 730 days"}},
		{"without a token", nil, 10, []string{"token"}},
	} {
		var code int
		var errs string
		if c.args == nil {
			noToken := rotationAdmin(t, r)
			noToken.env["CAIRN_TOKEN"] = ""
			code, _, errs = noToken.run(t, append(slices.Clone(rotate), "--key", "root")...)
		} else {
			code, _, errs = admin.run(t, c.args...)
		}
		if code != c.code {
			t.Fatalf("%s: exit %d, want %d: %s", c.name, code, c.code, errs)
		}
		for _, w := range c.wants {
			if !strings.Contains(errs, w) {
				t.Fatalf("%s: the error does not mention %q: %s", c.name, w, errs)
			}
		}
		if _, st := servedRoot(t, r, "2"); st != http.StatusNotFound {
			t.Fatalf("%s: root 2 is served (%d) although rotate refused", c.name, st)
		}
		if n := len(keyIDsOf(t, admin)); n != 3 {
			t.Fatalf("%s: the key store holds %d keys, want the 3 it had: nothing may be generated", c.name, n)
		}
	}

	// A dry run shows the change and sends nothing.
	out = admin.ok(t, append(slices.Clone(rotate), "--key", "root", "--dry-run")...)
	for _, want := range []string{"Root keys: 1 of 1 key → 2 of 2 keys", "- removes", "+ adds", "(new, generated now)", "Targets keys: 1 of 1 key → 1 of 1 key", "Targets version 1 → 2", "claimed: 1 of 1 key", "Dry run"} {
		if !strings.Contains(out, want) {
			t.Fatalf("dry run does not say %q:\n%s", want, out)
		}
	}
	if _, st := servedRoot(t, r, "2"); st != http.StatusNotFound || len(keyIDsOf(t, admin)) != 3 {
		t.Fatalf("a dry run changed something: root 2 %d", st)
	}
	// Without --yes and without a terminal it refuses to sign.
	if code, _, errs := admin.run(t, "admin", "root", "rotate", "--key", "root", "--generate-root-keys", "2", "--threshold", "2"); code == 0 || !strings.Contains(errs, "--yes") {
		t.Fatalf("rotate without confirmation: exit %d: %s", code, errs)
	}

	// The rotation.
	out = admin.ok(t, append(slices.Clone(rotate), "--key", "root")...)
	t.Logf("cairn admin root rotate:\n%s", out)
	for _, want := range []string{"Published root version 2 and targets version 2", "Verified through TUF", "root version 2, targets version 2", "root-v2-1", "root-v2-2", "targets-v2-1", "Keep the old root keys"} {
		if !strings.Contains(out, want) {
			t.Fatalf("rotate output does not say %q:\n%s", want, out)
		}
	}
	ids = keyIDsOf(t, admin)
	root2, st := servedRoot(t, r, "2")
	if st != http.StatusOK {
		t.Fatalf("root 2 is not served: %d", st)
	}
	rr, tr := root2.Signed.Roles[tufrepo.RoleRoot], root2.Signed.Roles[tufrepo.RoleTargets]
	if rr.Threshold != 2 || !sameIDs(rr.KeyIDs, ids["root-v2-1"], ids["root-v2-2"]) || tr.Threshold != 1 || !sameIDs(tr.KeyIDs, ids["targets-v2-1"]) {
		t.Fatalf("root 2 delegates root %v (%d) and targets %v (%d); want the generated keys %v", rr.KeyIDs, rr.Threshold, tr.KeyIDs, tr.Threshold, ids)
	}
	if resp := r.Do(t, http.MethodGet, "/metadata/root.json", "", "", nil); resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), `"version":2`) {
		t.Fatalf("the unversioned root.json is not root 2: %d", resp.Status)
	}
	root1, _ := metadata.Root().FromBytes(r.RootJSON)
	if err := root1.VerifyDelegate(tufrepo.RoleRoot, root2); err != nil {
		t.Fatalf("root 2 does not verify with root 1's keys: %v", err)
	}
	for _, role := range []string{tufrepo.RoleTimestamp, tufrepo.RoleSnapshot} {
		if !slices.Equal(root1.Signed.Roles[role].KeyIDs, root2.Signed.Roles[role].KeyIDs) {
			t.Fatalf("root 2 changed the %s keys", role)
		}
	}

	// The downloader, who pinned root 1 before the rotation, follows.
	got := t.TempDir()
	dl.ok(t, "get", "hello@1.0.0", "-o", got)
	if b, err := os.ReadFile(filepath.Join(got, "hello-1.0.0.tar.gz")); err != nil || string(b) != "hello before the rotation" {
		t.Fatalf("get after rotation: %q %v", b, err)
	}
	cached, err := os.ReadFile(filepath.Join(cli.MetadataDir(dl.home, r.URL), "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if md, err := metadata.Root().FromBytes(cached); err != nil || md.Signed.Version != 2 {
		t.Fatalf("the downloader's trusted root after get: %v %+v", err, md)
	}
	// 'cairn explain' (when this build has it) shows root version 2 at the top of the chain.
	if code, _, _ := dl.run(t, "explain", "--help"); code == 0 {
		var ex struct {
			Chain []struct {
				Role      string `json:"role"`
				Version   int64  `json:"version"`
				Threshold int    `json:"threshold"`
			} `json:"chain"`
		}
		out := dl.ok(t, "explain", "hello@1.0.0", "--output", "json")
		if err := json.Unmarshal([]byte(out), &ex); err != nil || len(ex.Chain) == 0 || ex.Chain[0].Role != tufrepo.RoleRoot || ex.Chain[0].Version != 2 || ex.Chain[0].Threshold != 2 {
			t.Fatalf("explain after rotation: %v %s", err, out)
		}
	}
	// A new release is still published and fetched by the downloader.
	rel2 := filepath.Join(t.TempDir(), "hello-2.0.0.tar.gz")
	os.WriteFile(rel2, []byte("hello after the rotation"), 0o644)
	maint.ok(t, "upload", "hello", "2.0.0", rel2, "--key", "alice")
	dl.ok(t, "get", "hello", "-o", t.TempDir())

	// Status follows: root 2, targets 2.
	code, stj, errs := adminStatusJSON(t, admin)
	if code != 0 || statusRole(stj, tufrepo.RoleRoot).Version != 2 || statusRole(stj, tufrepo.RoleTargets).Version != 2 {
		t.Fatalf("status after rotation: exit %d %+v %s", code, stj, errs)
	}

	// The old root key alone is no longer a root key; one of the two new keys is not enough.
	if code, _, errs := admin.run(t, "admin", "root", "rotate", "--key", "root", "--yes"); code != 3 || !strings.Contains(errs, `key "root"`) || !strings.Contains(errs, "root version 2") {
		t.Fatalf("rotating with the retired root key: exit %d: %s", code, errs)
	}
	if code, _, errs := admin.run(t, "admin", "root", "rotate", "--key", "root-v2-1", "--yes"); code != 2 || !strings.Contains(errs, "needs 2 of its 2 keys") {
		t.Fatalf("rotating with one of two root keys: exit %d: %s", code, errs)
	}
	// The two new keys renew root (version 3, same keys).
	out = admin.ok(t, "admin", "root", "rotate", "--key", "root-v2-1", "--key", "root-v2-2", "--expires", "400d", "--yes")
	if !strings.Contains(out, "renews it") || !strings.Contains(out, "Published root version 3 in snapshot") {
		t.Fatalf("root renewal: %s", out)
	}
	if md, st := servedRoot(t, r, "3"); st != http.StatusOK || !sameIDs(md.Signed.Roles[tufrepo.RoleRoot].KeyIDs, ids["root-v2-1"], ids["root-v2-2"]) {
		t.Fatalf("root 3: %d", st)
	}

	// targets resign: the retired targets key is refused; the new one re-signs with a
	// short expiry, which 'cairn admin status' then reports with exit 4.
	if code, _, errs := admin.run(t, "admin", "targets", "resign", "--key", "targets", "--yes"); code != 3 || !strings.Contains(errs, `key "targets"`) || !strings.Contains(errs, "not a current targets key") {
		t.Fatalf("targets resign with the retired key: exit %d: %s", code, errs)
	}
	out = admin.ok(t, "admin", "targets", "resign", "--key", "targets-v2-1", "--expires", "10d", "--yes")
	t.Logf("cairn admin targets resign:\n%s", out)
	if !strings.Contains(out, "Targets version 2 is verified") || !strings.Contains(out, "Published targets version 3") {
		t.Fatalf("targets resign: %s", out)
	}
	code, out, errs = admin.run(t, "admin", "status")
	t.Logf("cairn admin status: exit %d\n%s%s", code, out, errs)
	if code != 4 || !strings.Contains(out, "WARNING") || !strings.Contains(errs, "targets: expires in") || !strings.Contains(errs, "cairn admin targets resign") {
		t.Fatalf("status with targets expiring in 10 days: exit %d (want 4)\n%s\n%s", code, out, errs)
	}
	code, stj, _ = adminStatusJSON(t, admin)
	if code != 4 || statusRole(stj, tufrepo.RoleTargets).Version != 3 || statusRole(stj, tufrepo.RoleTargets).Warning == "" || statusRole(stj, tufrepo.RoleRoot).Version != 3 {
		t.Fatalf("status --output json: exit %d %+v", code, stj)
	}
	// Re-signing for a year clears the warning.
	admin.ok(t, "admin", "targets", "resign", "--key", "targets-v2-1", "--yes")
	if code, out, errs := admin.run(t, "admin", "status"); code != 0 {
		t.Fatalf("status after re-signing targets: exit %d\n%s\n%s", code, out, errs)
	}
	// --within widens the warning window.
	if code, _, errs := admin.run(t, "admin", "status", "--within", "800d"); code != 4 || !strings.Contains(errs, "root: expires in") {
		t.Fatalf("status --within 800d: exit %d: %s", code, errs)
	}
	dl.ok(t, "get", "hello@2.0.0", "-o", t.TempDir())
}

func sameIDs(got []string, want ...string) bool {
	return len(want) > 0 && !slices.Contains(want, "") && slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)))
}

// standbyURI is the file:// URI of a new Ed25519 key file in dir.
func standbyURI(t *testing.T, dir, name string) string {
	uri, _ := testrepo.OnlineKeyFile(t, dir, name, tufrepo.KeyEd25519)
	return uri
}

// cairndKeysPublic runs 'cairnd keys public --key URI' and returns what it prints and the
// key ID of that key.
func cairndKeysPublic(t *testing.T, uri string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := daemon.Main(context.Background(), []string{"keys", "public", "--key", uri}, &out, &errb, func(string) string { return "" }); code != 0 {
		t.Fatalf("cairnd keys public: exit %d: %s", code, errb.String())
	}
	var wire api.Key
	if err := json.Unmarshal(out.Bytes(), &wire); err != nil {
		t.Fatalf("cairnd keys public printed %q: %v", out.String(), err)
	}
	k, err := tufrepo.KeyFromAPI(wire)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), tufrepo.KeyID(k)
}

// servedOnlineSigner is the key ID that signs the served /metadata/ROLE.json.
func servedOnlineSigner(t *testing.T, r *testrepo.Repo, role string) string {
	t.Helper()
	resp := r.Do(t, http.MethodGet, "/metadata/"+role+".json", "", "", nil)
	if role == tufrepo.RoleSnapshot {
		ts, err := metadata.Timestamp().FromBytes(r.Do(t, http.MethodGet, "/metadata/timestamp.json", "", "", nil).Body)
		if err != nil {
			t.Fatal(err)
		}
		resp = r.Do(t, http.MethodGet, "/metadata/"+itoa(ts.Signed.Meta["snapshot.json"].Version)+".snapshot.json", "", "", nil)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("GET %s: %d", role, resp.Status)
	}
	var env struct {
		Signatures []struct {
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(resp.Body, &env); err != nil || len(env.Signatures) != 1 {
		t.Fatalf("served %s: %v %s", role, err, resp.Body)
	}
	return env.Signatures[0].KeyID
}

// TestRotateOnlineKeysWithTheCLI: the server runs with two standby keys; the admin prints
// the public half of one with 'cairnd keys public' and moves timestamp to it with 'cairn
// admin root rotate --timestamp-key FILE', then snapshot to the other with the JSON inline.
// Each time the served metadata is signed by the new key at once, and a downloader who
// pinned root 1 before any rotation gets a release published afterwards.
func TestRotateOnlineKeysWithTheCLI(t *testing.T) {
	dir := t.TempDir()
	tsURI, snapURI := standbyURI(t, dir, "timestamp-2"), standbyURI(t, dir, "snapshot-2")
	u, drop, err := testdb.Create("e2e_rotate_online_cli")
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, func(c *daemon.Config) { c.StandbyKeys = []string{tsURI, snapURI} })
	t.Cleanup(drop)
	rootFile := filepath.Join(r.Dir, "root.json")
	oldTS, oldSnap := servedOnlineSigner(t, r, tufrepo.RoleTimestamp), servedOnlineSigner(t, r, tufrepo.RoleSnapshot)

	maint := newCLI(t, r.AdminToken)
	maint.ok(t, "init", "--server", r.URL, "--root", rootFile)
	maint.ok(t, "key", "generate", "--name", "alice")
	maint.ok(t, "project", "create", "hello", "--key", "alice")
	upload := func(version, body string) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "hello-"+version+".tar.gz")
		os.WriteFile(p, []byte(body), 0o644)
		maint.ok(t, "upload", "hello", version, p, "--key", "alice")
	}
	get := func(c *cairnCLI, version, want string) {
		t.Helper()
		out := t.TempDir()
		c.ok(t, "get", "hello@"+version, "-o", out)
		if b, err := os.ReadFile(filepath.Join(out, "hello-"+version+".tar.gz")); err != nil || string(b) != want {
			t.Fatalf("get hello@%s: %q %v", version, b, err)
		}
	}
	upload("1.0.0", "hello before the rotation")
	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	get(dl, "1.0.0", "hello before the rotation")

	tsPub, tsID := cairndKeysPublic(t, tsURI)
	tsFile := filepath.Join(t.TempDir(), "timestamp-2.pub.json")
	if err := os.WriteFile(tsFile, []byte(tsPub), 0o644); err != nil {
		t.Fatal(err)
	}
	admin := rotationAdmin(t, r)

	// The plan names the old and new timestamp keys and says the server must hold the new.
	out := admin.ok(t, "admin", "root", "rotate", "--key", "root", "--timestamp-key", tsFile, "--dry-run")
	for _, want := range []string{"Timestamp key (online, held by the server) changes", "- removes  key " + oldTS, "+ adds     key " + tsID, "SHA256:", "--standby-key", "Snapshot keeps the server's online key " + oldSnap[:16]} {
		if !strings.Contains(out, want) {
			t.Fatalf("the dry run does not say %q:\n%s", want, out)
		}
	}
	// Refused before anything is sent: the root key as the timestamp key; refused by the
	// server: a key it does not hold.
	if code, _, errs := admin.run(t, "admin", "root", "rotate", "--key", "root", "--timestamp-key", filepath.Join(r.Dir, "keys", "root.json"), "--yes"); code != 10 || !strings.Contains(errs, "current root key") {
		t.Fatalf("the root key as timestamp key: exit %d: %s", code, errs)
	}
	admin.ok(t, "key", "generate", "--name", "unheld")
	if code, _, errs := admin.run(t, "admin", "root", "rotate", "--key", "root", "--timestamp-key", filepath.Join(admin.home, "keys", "unheld.json"), "--yes"); code != 10 || !strings.Contains(errs, "--standby-key") {
		t.Fatalf("a timestamp key the server does not hold: exit %d: %s", code, errs)
	}
	if _, st := servedRoot(t, r, "2"); st != http.StatusNotFound {
		t.Fatalf("a refused rotation is served: root 2 %d", st)
	}

	out = admin.ok(t, "admin", "root", "rotate", "--key", "root", "--timestamp-key", tsFile, "--yes")
	t.Logf("cairn admin root rotate --timestamp-key:\n%s", out)
	for _, want := range []string{"Published root version 2", "Verified through TUF", "The server now signs timestamp with the new key " + tsID[:16]} {
		if !strings.Contains(out, want) {
			t.Fatalf("rotate --timestamp-key does not say %q:\n%s", want, out)
		}
	}
	root2, st := servedRoot(t, r, "2")
	if st != http.StatusOK {
		t.Fatalf("root 2: %d", st)
	}
	if ids := root2.Signed.Roles[tufrepo.RoleTimestamp].KeyIDs; !sameIDs(ids, tsID) || root2.Signed.Roles[tufrepo.RoleTimestamp].Threshold != 1 {
		t.Fatalf("root 2 delegates timestamp to %v, want %s", ids, tsID)
	}
	if ids := root2.Signed.Roles[tufrepo.RoleSnapshot].KeyIDs; !sameIDs(ids, oldSnap) {
		t.Fatalf("root 2 delegates snapshot to %v, want the old %s", ids, oldSnap)
	}
	if _, ok := root2.Signed.Keys[oldTS]; ok {
		t.Fatal("root 2 still lists the old timestamp key")
	}
	if got := servedOnlineSigner(t, r, tufrepo.RoleTimestamp); got != tsID {
		t.Fatalf("timestamp.json is signed by %s, want the new key %s", got, tsID)
	}

	// A release published after the rotation reaches the downloader who pinned root 1.
	upload("2.0.0", "hello after the timestamp rotation")
	get(dl, "2.0.0", "hello after the timestamp rotation")
	cached, err := os.ReadFile(filepath.Join(cli.MetadataDir(dl.home, r.URL), "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if md, err := metadata.Root().FromBytes(cached); err != nil || md.Signed.Version != 2 {
		t.Fatalf("the downloader's trusted root: %v %+v", err, md)
	}

	// Snapshot next, with the JSON given inline.
	snapPub, snapID := cairndKeysPublic(t, snapURI)
	out = admin.ok(t, "admin", "root", "rotate", "--key", "root", "--snapshot-key", strings.TrimSpace(snapPub), "--yes")
	t.Logf("cairn admin root rotate --snapshot-key:\n%s", out)
	for _, want := range []string{"Snapshot key (online, held by the server) changes", "+ adds     key " + snapID, "Timestamp keeps the server's online key " + tsID[:16], "Published root version 3", "The server now signs snapshot with the new key " + snapID[:16]} {
		if !strings.Contains(out, want) {
			t.Fatalf("rotate --snapshot-key does not say %q:\n%s", want, out)
		}
	}
	if got := servedOnlineSigner(t, r, tufrepo.RoleSnapshot); got != snapID {
		t.Fatalf("snapshot is signed by %s, want the new key %s", got, snapID)
	}
	if got := servedOnlineSigner(t, r, tufrepo.RoleTimestamp); got != tsID {
		t.Fatalf("timestamp is signed by %s after the snapshot rotation, want %s", got, tsID)
	}
	upload("3.0.0", "hello after the snapshot rotation")
	get(dl, "3.0.0", "hello after the snapshot rotation")
	// A downloader new to the server, from root 1, walks the chain as well.
	fresh := newCLI(t, "")
	fresh.ok(t, "init", "--server", r.URL, "--root", rootFile)
	get(fresh, "3.0.0", "hello after the snapshot rotation")
	get(fresh, "1.0.0", "hello before the rotation")
}
