package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// devAdmin boots a real dev server and returns it with an admin's CLI: the dev offline
// keys (and, for refusal tests, the dev online timestamp key) copied into the key store
// under their role names, the dev passphrase as the admin's, root 1 pinned.
func devAdmin(t *testing.T) (*testrepo.Repo, *cli) {
	t.Helper()
	u, drop, err := testdb.Create("cli_" + strings.ToLower(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, nil)
	t.Cleanup(drop)
	c := newCLI(t)
	pass, err := os.ReadFile(filepath.Join(r.Dir, "keys", "passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	c.vars["CAIRN_KEY_PASSPHRASE"] = strings.TrimSpace(string(pass))
	c.vars["CAIRN_TOKEN"] = r.AdminToken
	store := filepath.Join(c.home, "keys")
	if err := os.MkdirAll(store, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{tufrepo.RoleRoot, tufrepo.RoleTargets, tufrepo.RoleClaimed, tufrepo.RoleTimestamp} {
		b, err := os.ReadFile(filepath.Join(r.Dir, "keys", role+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(store, role+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.ok("init", "--server", r.URL, "--root", filepath.Join(r.Dir, "root.json"))
	return r, c
}

func keyIDs(t *testing.T, c *cli) map[string]string {
	t.Helper()
	var keys []keyInfo
	if err := json.Unmarshal([]byte(c.ok("key", "list", "--output", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		out[k.Name] = k.KeyID
	}
	return out
}

func servedRootVersion(t *testing.T, r *testrepo.Repo, v string) *metadata.Metadata[metadata.RootType] {
	t.Helper()
	resp := r.Do(t, http.MethodGet, "/metadata/"+v+".root.json", "", "", nil)
	if resp.Status != http.StatusOK {
		return nil
	}
	md, err := metadata.Root().FromBytes(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// TestRootRotateNamedKeys: the admin adds named keys from the key store (keeping the
// current root key), sees the plan as JSON in a dry run, publishes a root that leaves
// targets alone, and is refused where a key or threshold does not fit.
func TestRootRotateNamedKeys(t *testing.T) {
	r, c := devAdmin(t)
	c.ok("key", "generate", "--name", "k2")
	c.ok("key", "generate", "--name", "k3")
	ids := keyIDs(t, c)

	add := []string{"admin", "root", "rotate", "--key", "root", "--new-root-key", "root", "--new-root-key", "k2", "--new-root-key", "k3", "--threshold", "2"}
	var rep rotateReport
	out := c.ok(append(add, "--dry-run", "--output", "json")...)
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	switch {
	case !rep.DryRun || rep.Root == nil || rep.Root.NextVersion != 2 || rep.Targets != nil || rep.Result != nil:
		t.Fatalf("dry run report: %s", out)
	case rep.Root.Root.After.Threshold != 2 || len(rep.Root.Root.Kept) != 1 || rep.Root.Root.Kept[0].KeyID != ids["root"] || len(rep.Root.Root.Added) != 2 || len(rep.Root.Root.Removed) != 0:
		t.Fatalf("root change: %+v", rep.Root.Root)
	case rep.Root.TargetsKeysChanged() || len(rep.RootSignedBy) != 3 || rep.KeyNames[ids["k2"]] != "k2":
		t.Fatalf("report: %s", out)
	}
	if servedRootVersion(t, r, "2") != nil {
		t.Fatal("a dry run published root 2")
	}

	// Refusals before anything is sent.
	c.fails(3, `key "claimed"`, "admin", "root", "rotate", "--key", "claimed", "--yes")
	c.fails(20, `there is no key named "nobody"`, "admin", "root", "rotate", "--key", "root", "--new-root-key", "nobody", "--yes")
	c.fails(10, "online timestamp key", "admin", "root", "rotate", "--key", "root", "--new-targets-key", "timestamp", "--yes")
	c.fails(10, "online timestamp key", "admin", "root", "rotate", "--key", "root", "--new-root-key", "timestamp", "--yes")
	c.fails(10, "--targets-expires applies only when the targets keys change", "admin", "root", "rotate", "--key", "root", "--targets-expires", "30d", "--yes")
	c.fails(10, "--expires", "admin", "root", "rotate", "--key", "root", "--expires", "soon", "--yes")
	c.fails(10, "--key-type", "admin", "root", "rotate", "--key", "root", "--generate-root-keys", "1", "--key-type", "rsa", "--yes")
	c.fails(10, "--output", "admin", "root", "rotate", "--key", "root", "--output", "yaml")
	c.fails(10, "required flag", "admin", "root", "rotate", "--yes")
	if servedRootVersion(t, r, "2") != nil {
		t.Fatal("a refused rotation published root 2")
	}

	out = c.ok(append(add, "--yes", "--output", "json")...)
	rep = rotateReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Result == nil || rep.Result.Status != api.StatusPublished || rep.Result.RootVersion != 2 || rep.Result.TargetsVersion != 0 || rep.Verified == nil || rep.Verified.RootVersion != 2 || rep.Verified.TargetsVersion != 1 {
		t.Fatalf("rotation: %s", out)
	}
	root2 := servedRootVersion(t, r, "2")
	if root2 == nil || root2.Signed.Roles[tufrepo.RoleRoot].Threshold != 2 || len(root2.Signed.Roles[tufrepo.RoleRoot].KeyIDs) != 3 || len(root2.Signatures) != 3 {
		t.Fatalf("root 2: %+v", root2)
	}

	// 2 of 3 now: one key is too few; raising the threshold to 3 needs k3 at hand.
	c.fails(2, "root needs 2 of its 3 keys", "admin", "root", "rotate", "--key", "k2", "--yes")
	c.fails(2, "only 2 of them are at hand", "admin", "root", "rotate", "--key", "root", "--key", "k2", "--threshold", "3", "--yes")
	out = c.ok("admin", "root", "rotate", "--key", "root", "--key", "k2", "--key", "k3", "--threshold", "3", "--yes")
	if !strings.Contains(out, "Published root version 3") || !strings.Contains(out, "2 of 3 keys → 3 of 3 keys") {
		t.Fatalf("threshold 3: %s", out)
	}
	// An explicit --new-root-key list replaces the keys, but k3 cannot remove the others
	// without them signing (3 of 3 needed).
	c.fails(2, "root needs 3 of its 3 keys", "admin", "root", "rotate", "--key", "k3", "--new-root-key", "k3", "--threshold", "1", "--yes")
}

// TestRootRotateGeneratedKeyNames: generated keys are named ROLE-vVERSION-N (with
// --key-prefix), never overwrite a key, and are saved before the upload.
func TestRootRotateGeneratedKeyNames(t *testing.T) {
	r, c := devAdmin(t)
	c.ok("key", "generate", "--name", "targets-v2-1")
	c.fails(10, `a key named "targets-v2-1" already exists`, "admin", "root", "rotate", "--key", "root", "--generate-targets-key", "--yes")
	c.fails(10, "not allowed", "admin", "root", "rotate", "--key", "root", "--generate-root-keys", "1", "--key-prefix", "../x", "--yes")
	out := c.ok("admin", "root", "rotate", "--key", "root", "--generate-root-keys", "3", "--threshold", "2", "--generate-targets-keys", "2", "--targets-threshold", "2", "--key-prefix", "ops", "--key-type", "ecdsa-p256", "--expires", "100d", "--targets-expires", "2y", "--yes")
	if !strings.Contains(out, "Published root version 2 and targets version 2") {
		t.Fatalf("%s", out)
	}
	ids := keyIDs(t, c)
	for _, n := range []string{"ops-root-v2-1", "ops-root-v2-2", "ops-root-v2-3", "ops-targets-v2-1", "ops-targets-v2-2"} {
		if ids[n] == "" {
			t.Fatalf("no key %s: %v", n, ids)
		}
	}
	root2 := servedRootVersion(t, r, "2")
	if root2 == nil || root2.Signed.Roles[tufrepo.RoleRoot].Threshold != 2 || root2.Signed.Roles[tufrepo.RoleTargets].Threshold != 2 || root2.Signed.Keys[ids["ops-root-v2-1"]].Type != "ecdsa" {
		t.Fatalf("root 2: %+v", root2)
	}
	if d := time.Until(root2.Signed.Expires); d < 99*24*time.Hour || d > 101*24*time.Hour {
		t.Fatalf("root 2 expires in %s, want 100 days", d)
	}
	// targets resign needs 2 of the 2 new targets keys.
	c.fails(2, "targets needs 2 of its 2 keys", "admin", "targets", "resign", "--key", "ops-targets-v2-1", "--yes")
	c.fails(3, "not a current targets key", "admin", "targets", "resign", "--key", "targets", "--key", "ops-targets-v2-1", "--yes")
	var rep rotateReport
	out = c.ok("admin", "targets", "resign", "--key", "ops-targets-v2-1", "--key", "ops-targets-v2-2", "--expires", "2027-01-01", "--dry-run", "--output", "json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Targets == nil || rep.Targets.NextVersion != 3 || len(rep.Targets.Delegations) != 2 || !rep.DryRun {
		t.Fatalf("resign dry run: %v %s", err, out)
	}
	c.ok("admin", "targets", "resign", "--key", "ops-targets-v2-1", "--key", "ops-targets-v2-2", "--yes")
	resp := r.Do(t, http.MethodGet, "/metadata/3.targets.json", "", "", nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("targets 3: %d", resp.Status)
	}
}

// TestAdminStatus: a table of every role, JSON, the cross-check through TUF, and exit 4
// when a role needs attention.
func TestAdminStatus(t *testing.T) {
	r, c := devAdmin(t)
	out := c.ok("admin", "status")
	for _, want := range []string{"ROLE", "VERSION", "EXPIRES", "SIGNED BY", "root", "timestamp", "Verified through TUF from the pinned root"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status does not show %q:\n%s", want, out)
		}
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(c.ok("admin", "status", "--output", "json")), &rep); err != nil || len(rep.Roles) != 6 || rep.Verified == nil || rep.Verified.RootVersion != 1 || len(rep.Warnings) != 0 {
		t.Fatalf("status json: %v %+v", err, rep)
	}
	// Someone without a pinned root still gets the server's word (and a note).
	other := newCLI(t)
	res := other.run("admin", "status", "--server", r.URL)
	if res.code != 0 || !strings.Contains(res.stderr, "not cross-checked") || !strings.Contains(res.stdout, "claimed") {
		t.Fatalf("status without a pinned root: %+v", res)
	}
	if res := other.run("admin", "status", "--server", r.URL, "--no-verify"); res.code != 0 || strings.Contains(res.stderr, "not cross-checked") {
		t.Fatalf("status --no-verify: %+v", res)
	}
	// Offline roles expire in a year: a 400-day window warns about them, exit 4.
	res = c.fails(4, "warning: root: expires in", "admin", "status", "--within", "400d")
	if !strings.Contains(res.stderr, "cairn admin root rotate") || !strings.Contains(res.stderr, "cairn admin claim --renew") || !strings.Contains(res.stdout, "WARNING") {
		t.Fatalf("status --within: %+v", res)
	}
	res = c.run("admin", "status", "--within", "400d", "--output", "json")
	if err := json.Unmarshal([]byte(res.stdout), &rep); res.code != 4 || err != nil || len(rep.Warnings) != 3 {
		t.Fatalf("status --within --output json: %d %v %+v", res.code, err, rep)
	}
	c.fails(10, "--within", "admin", "status", "--within", "soon")
	// A server that does not answer is a failure, not a warning.
	c.fails(20, "status", "admin", "status", "--server", "http://127.0.0.1:1")
}

// TestExpiryWarningsAtTheInstantTheCommandRuns: the CLI's own expiry warnings (status
// --within, the plan of a root whose new expiry is near) are measured from app.now, so the
// same repository and flags warn or not depending on when the command runs.
func TestExpiryWarningsAtTheInstantTheCommandRuns(t *testing.T) {
	_, c := devAdmin(t)
	var rep statusReport
	if err := json.Unmarshal([]byte(c.ok("admin", "status", "--output", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	var rootExpires time.Time
	for _, e := range rep.Roles {
		if e.Role == tufrepo.RoleRoot {
			rootExpires = e.Expires
		}
	}
	if rootExpires.Before(time.Now().Add(60 * 24 * time.Hour)) {
		t.Fatalf("the dev root expires %s: the test needs it more than 60 days ahead", rootExpires)
	}
	// A new root expiring five days after the current one: a year away today.
	newExpiry := rootExpires.Add(5 * 24 * time.Hour).UTC().Format("2006-01-02")
	const rotateWarning = "warning: root version 2 expires in"

	// Today: nothing is near.
	c.ok("admin", "status", "--within", "30d")
	if res := c.run("admin", "root", "rotate", "--key", "root", "--expires", newExpiry, "--dry-run"); res.code != 0 || strings.Contains(res.stderr, rotateWarning) {
		t.Fatalf("rotate --dry-run today: %+v", res)
	}

	// Twenty days before root expires: the same commands warn, from the same clock.
	c.now = rootExpires.Add(-20 * 24 * time.Hour)
	res := c.fails(4, "warning: root: expires in 20 days, within --within 30 days", "admin", "status", "--within", "30d")
	if !strings.Contains(res.stdout, "(in 20 days)") {
		t.Fatalf("status 20 days before expiry does not say so in its table:\n%s", res.stdout)
	}
	if res := c.run("admin", "root", "rotate", "--key", "root", "--expires", newExpiry, "--dry-run"); res.code != 0 || !strings.Contains(res.stderr, rotateWarning) {
		t.Fatalf("rotate --dry-run 20 days before expiry does not warn: %+v", res)
	}

	// Forty days before: outside the window again.
	c.now = rootExpires.Add(-40 * 24 * time.Hour)
	c.ok("admin", "status", "--within", "30d")
}

func TestRotateParseExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"365d":                 now.Add(365 * 24 * time.Hour),
		"2w":                   now.Add(14 * 24 * time.Hour),
		"1y":                   now.Add(365 * 24 * time.Hour),
		"36h":                  now.Add(36 * time.Hour),
		"2027-06-30":           time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC),
		"2027-06-30T10:00:00Z": time.Date(2027, 6, 30, 10, 0, 0, 0, time.UTC),
	} {
		got, err := parseExpiry("--expires", in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseExpiry(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-5d", "-1h", "99999999d", "2027-13-01"} {
		if _, err := parseExpiry("--expires", in, now); err == nil || client.Classify(err) != client.ExitMalformed {
			t.Errorf("parseExpiry(%q): %v", in, err)
		}
	}
}

// TestRootRotateOnlineKeyFlags: --timestamp-key and --snapshot-key take the JSON 'cairnd
// keys public' prints (file or inline); the plan shows old → new with key IDs and
// fingerprints and the note about --standby-key; keys the server would refuse are refused
// first; and a server that does not hold the new key refuses the root, changing nothing.
func TestRootRotateOnlineKeyFlags(t *testing.T) {
	r, c := devAdmin(t)
	c.ok("key", "generate", "--name", "ts2")
	c.ok("key", "generate", "--name", "snap2")
	ids := keyIDs(t, c)
	pubKey := func(name string) *metadata.Key {
		b, err := os.ReadFile(filepath.Join(c.home, "keys", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var kf tufrepo.KeyFile
		if err := json.Unmarshal(b, &kf); err != nil {
			t.Fatal(err)
		}
		k, err := tufrepo.KeyFromAPI(kf.Public)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	pubOf := func(name string) string {
		b, _ := json.Marshal(tufrepo.KeyToAPI(pubKey(name)))
		return string(b)
	}
	ts2File := writeFile(t, t.TempDir(), "ts2.pub.json", pubOf("ts2")+"\n")
	root1 := servedRootVersion(t, r, "1")
	oldTS, oldSnap := root1.Signed.Roles[tufrepo.RoleTimestamp].KeyIDs[0], root1.Signed.Roles[tufrepo.RoleSnapshot].KeyIDs[0]

	out := c.ok("admin", "root", "rotate", "--key", "root", "--timestamp-key", ts2File, "--dry-run")
	t.Logf("dry run:\n%s", out)
	for _, want := range []string{
		"Root version 2 expires", "Timestamp key (online, held by the server) changes: 1 of 1 key → 1 of 1 key",
		"- removes  key " + oldTS, "+ adds     key " + ids["ts2"], fingerprintText(root1.Signed.Keys[oldTS]), fingerprintText(pubKey("ts2")),
		"Snapshot keeps the server's online key " + oldSnap[:16],
		"must already hold the new timestamp key", "--standby-key", "refuses root version 2", "Dry run",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("dry run does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "renews it") {
		t.Fatalf("a new timestamp key is shown as a renewal:\n%s", out)
	}
	var rep rotateReport
	out = c.ok("admin", "root", "rotate", "--key", "root", "--timestamp-key", ts2File, "--snapshot-key", pubOf("snap2"), "--dry-run", "--output", "json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if p := rep.Root; p == nil || !p.OnlineKeysChanged() || p.Timestamp.After.KeyIDs()[0] != ids["ts2"] || p.Snapshot.After.KeyIDs()[0] != ids["snap2"] || p.Timestamp.After.Threshold != 1 || p.Root.Changed() {
		t.Fatalf("dry run report: %s", out)
	}
	// The current key changes nothing: a renewal, with a note.
	if res := c.run("admin", "root", "rotate", "--key", "root", "--timestamp-key", filepath.Join(r.Dir, "keys", "timestamp.json"), "--dry-run"); res.code != 0 || !strings.Contains(res.stdout, "renews it") || !strings.Contains(res.stderr, "only renews root") {
		t.Fatalf("the current timestamp key: %+v", res)
	}

	// Refusals, before anything is sent.
	c.fails(10, "--timestamp-key", "admin", "root", "rotate", "--key", "root", "--timestamp-key", "{not json", "--yes")
	c.fails(10, "neither inline JSON nor a readable file", "admin", "root", "rotate", "--key", "root", "--snapshot-key", filepath.Join(t.TempDir(), "missing.json"), "--yes")
	c.fails(10, "not supported", "admin", "root", "rotate", "--key", "root", "--timestamp-key", `{"keytype":"rsa","scheme":"rsassa-pss-sha256","keyval":{"public":"x"}}`, "--yes")
	c.fails(10, "ed25519 key must be", "admin", "root", "rotate", "--key", "root", "--timestamp-key", `{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"abcd"}}`, "--yes")
	c.fails(10, "is required", "admin", "root", "rotate", "--key", "root", "--timestamp-key", "", "--yes")
	c.fails(10, "current root key", "admin", "root", "rotate", "--key", "root", "--timestamp-key", pubOf("root"), "--yes")
	c.fails(10, "current targets key", "admin", "root", "rotate", "--key", "root", "--snapshot-key", pubOf("targets"), "--yes")
	c.fails(10, "current claimed key", "admin", "root", "rotate", "--key", "root", "--snapshot-key", pubOf("claimed"), "--yes")
	c.fails(10, "current snapshot key", "admin", "root", "rotate", "--key", "root", "--timestamp-key", filepath.Join(r.Dir, "keys", "snapshot.json"), "--yes")
	c.fails(10, "online timestamp key", "admin", "root", "rotate", "--key", "root", "--timestamp-key", ts2File, "--new-root-key", "ts2", "--yes")
	c.fails(10, "online snapshot key", "admin", "root", "rotate", "--key", "root", "--snapshot-key", pubOf("snap2"), "--new-targets-key", "snap2", "--yes")
	if servedRootVersion(t, r, "2") != nil {
		t.Fatal("a refused rotation published root 2")
	}
	// This server does not hold ts2: it refuses the root, and says how to fix it.
	res := c.fails(10, "--standby-key", "admin", "root", "rotate", "--key", "root", "--timestamp-key", ts2File, "--yes")
	t.Logf("refused by the server: %s", res.stderr)
	if !strings.Contains(res.stderr, ids["ts2"]) {
		t.Fatalf("the refusal does not name the key: %s", res.stderr)
	}
	if servedRootVersion(t, r, "2") != nil {
		t.Fatal("a root naming a key the server does not hold was published")
	}
	// And the same flags without an online key change still renew.
	if out := c.ok("admin", "root", "rotate", "--key", "root", "--yes"); !strings.Contains(out, "Published root version 2") {
		t.Fatalf("renewal after the refusal: %s", out)
	}
}
