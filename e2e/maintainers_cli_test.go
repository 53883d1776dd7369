package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	sdk "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// cliWorld is a dev server with one project, "demo", created and released by alice with
// the CLI; alice's key store also holds bob's and carol's keys (so one CLI can sign for
// several maintainers where a flow needs signatures together).
type cliWorld struct {
	r        *testrepo.Repo
	rootFile string
	alice    *cairnCLI
	keyIDs   map[string]string // key name → key ID
	file     []byte
}

func newCLIWorld(t *testing.T) *cliWorld {
	t.Helper()
	u, drop, err := testdb.Create("e2e_" + strings.ToLower(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, nil)
	t.Cleanup(drop)
	w := &cliWorld{r: r, rootFile: filepath.Join(r.Dir, "root.json"), alice: newCLI(t, r.AdminToken), keyIDs: map[string]string{}, file: []byte("demo release one, the bytes")}
	w.alice.ok(t, "init", "--server", r.URL, "--root", w.rootFile)
	for _, n := range []string{"alice", "bob", "carol"} {
		w.alice.ok(t, "key", "generate", "--name", n)
	}
	var keys []struct {
		Name  string `json:"name"`
		KeyID string `json:"keyid"`
	}
	if err := json.Unmarshal([]byte(w.alice.ok(t, "key", "list", "--output", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		w.keyIDs[k.Name] = k.KeyID
	}
	w.alice.ok(t, "project", "create", "demo", "--key", "alice")
	f := filepath.Join(t.TempDir(), "demo-1.0.0.tar.gz")
	if err := os.WriteFile(f, w.file, 0o644); err != nil {
		t.Fatal(err)
	}
	w.alice.ok(t, "upload", "demo", "1.0.0", f, "--key", "alice")
	return w
}

// downloader is a new user who pinned the root: a fresh TUF cache.
func (w *cliWorld) downloader(t *testing.T) *cairnCLI {
	t.Helper()
	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", w.r.URL, "--root", w.rootFile)
	return dl
}

// admin is a repository admin whose key store holds the dev repository's claimed key.
func (w *cliWorld) admin(t *testing.T) *cairnCLI {
	t.Helper()
	a := newCLI(t, w.r.AdminToken)
	pass, err := os.ReadFile(filepath.Join(w.r.Dir, "keys", "passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	a.env["CAIRN_KEY_PASSPHRASE"] = strings.TrimRight(string(pass), "\r\n")
	for _, role := range []string{tufrepo.RoleClaimed, tufrepo.RoleTargets} {
		b, err := os.ReadFile(filepath.Join(w.r.Dir, "keys", role+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(a.home, "keys"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a.home, "keys", role+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a.ok(t, "init", "--server", w.r.URL, "--root", w.rootFile)
	return a
}

func explainJSON(t *testing.T, c *cairnCLI, what string) sdk.Explanation {
	t.Helper()
	var e sdk.Explanation
	if err := json.Unmarshal([]byte(c.ok(t, "explain", what, "--output", "json")), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// projectLink is the project role's link of an explanation.
func projectLink(t *testing.T, e sdk.Explanation) sdk.ChainLink {
	t.Helper()
	l := e.Chain[len(e.Chain)-1]
	if l.Role != e.Project {
		t.Fatalf("the chain does not end with the project role: %+v", e.Chain)
	}
	return l
}

func signedKeys(l sdk.ChainLink) []string {
	var out []string
	for _, k := range l.Keys {
		if k.Signed {
			out = append(out, k.KeyID)
		}
	}
	return out
}

// refused runs a command that must fail with exit code want and a message containing
// every one of msgs.
func refused(t *testing.T, c *cairnCLI, want int, msgs []string, args ...string) {
	t.Helper()
	code, out, errs := c.run(t, args...)
	if code != want {
		t.Fatalf("cairn %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
	}
	for _, m := range msgs {
		if !strings.Contains(errs, m) {
			t.Fatalf("cairn %s: the refusal does not say %q:\n%s", strings.Join(args, " "), m, errs)
		}
	}
}

func serverProject(t *testing.T, r *testrepo.Repo, name string) api.Project {
	t.Helper()
	var p api.Project
	if err := json.Unmarshal(r.Do(t, "GET", "/api/v1/projects/"+name, "", "", nil).Body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMaintainerChangesAndClaimingWithTheCLI walks a project from one maintainer to a
// claimed 2-of-3 project and back to 2-of-2, with the real CLI against the real server:
// every guard rail refuses before anything is written, applied changes are seen by fresh
// downloaders, a threshold raise waits for a role the new keys signed, co-signing
// completes a pending change, 'cairn admin claim' moves the project into claimed, and a
// later change of the claimed project waits for (and is applied by) the next claim.
func TestMaintainerChangesAndClaimingWithTheCLI(t *testing.T) {
	w := newCLIWorld(t)
	alice, ids := w.alice, w.keyIDs

	// Guard rails: each refused, nothing written.
	before := serverProject(t, w.r, "demo")
	refused(t, alice, 10, []string{"already a maintainer key"}, "maintainer", "add", "demo", "alice", "--key", "alice")
	refused(t, alice, 20, []string{"not a maintainer key of demo", "nothing to remove"}, "maintainer", "remove", "demo", ids["carol"], "--key", "alice")
	refused(t, alice, 20, []string{"not a maintainer key of demo"}, "maintainer", "remove", "demo", "carol", "--key", "alice")
	refused(t, alice, 10, []string{"at least one"}, "maintainer", "remove", "demo", ids["alice"], "--key", "alice")
	refused(t, alice, 10, []string{"threshold 2 is not possible with 1 maintainer key"}, "project", "threshold", "demo", "2", "--key", "alice")
	refused(t, alice, 10, []string{"threshold 0 is not possible"}, "project", "threshold", "demo", "0", "--key", "alice")
	refused(t, alice, 10, []string{"already 1"}, "project", "threshold", "demo", "1", "--key", "alice")
	refused(t, alice, 10, []string{"threshold 3 is not possible with 2"}, "maintainer", "add", "demo", "bob", "--key", "alice", "--threshold", "3")
	refused(t, alice, 3, []string{"is not a maintainer key of demo"}, "maintainer", "add", "demo", "carol", "--key", "bob")
	if after := serverProject(t, w.r, "demo"); after.DelegationVersion != before.DelegationVersion || len(after.Maintainers) != 1 {
		t.Fatalf("a refused change changed the project: %+v", after)
	}
	if out := alice.ok(t, "maintainer", "add", "demo", "bob", "--key", "alice", "--dry-run"); !strings.Contains(out, "ADDS maintainer key "+ids["bob"]) || !strings.Contains(out, "Dry run") {
		t.Fatalf("dry run: %s", out)
	}
	if after := serverProject(t, w.r, "demo"); after.DelegationVersion != before.DelegationVersion {
		t.Fatalf("a dry run changed the project: %+v", after)
	}

	// Add bob: applied and published; a new downloader verifies two keys.
	out := alice.ok(t, "maintainer", "add", "demo", "bob", "--key", "alice")
	for _, want := range []string{"ADDS maintainer key " + ids["bob"], "keeps the threshold at 1", "Applied", "(verified)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("maintainer add does not say %q:\n%s", want, out)
		}
	}
	e := explainJSON(t, w.downloader(t), "demo@1.0.0")
	if l := projectLink(t, e); len(l.Keys) != 2 || l.Threshold != 1 || !l.ThresholdMet || len(signedKeys(l)) != 1 || signedKeys(l)[0] != ids["alice"] {
		t.Fatalf("after adding bob, explain shows %+v", l)
	}

	// Threshold 2 while the published role carries only alice's signature: refused, and
	// the message says how to fix it.
	refused(t, alice, 2, []string{"signed by " + ids["alice"][:16] + " of the new maintainer keys", "cairn project resign demo --key alice --key KEY", "in one submission"},
		"project", "threshold", "demo", "2", "--key", "alice")
	refused(t, alice, 2, []string{"cairn project resign demo --key alice --key bob"}, "project", "threshold", "demo", "2", "--key", "alice", "--key", "bob")
	// Removing alice while only alice signed the role: refused the same way.
	refused(t, alice, 2, []string{"first publish a role version signed by 1 of the keys that stay"}, "maintainer", "remove", "demo", "alice", "--key", "alice")
	// The fix: both sign the current releases again; then the threshold can be raised.
	alice.ok(t, "project", "resign", "demo", "--key", "alice", "--key", "bob")
	out = alice.ok(t, "project", "threshold", "demo", "2", "--key", "alice")
	if !strings.Contains(out, "CHANGES the threshold from 1 to 2") || !strings.Contains(out, "Applied") {
		t.Fatalf("threshold 2: %s", out)
	}

	// Adding carol now needs alice and bob: pending after alice, applied when bob co-signs.
	out = alice.ok(t, "maintainer", "add", "demo", "carol", "--key", "alice")
	if !strings.Contains(out, "Pending") || !strings.Contains(out, "1 of the 2") || !strings.Contains(out, "cairn sign demo") {
		t.Fatalf("adding carol with one signature: %s", out)
	}
	coSignAsBob(t, w)
	e = explainJSON(t, w.downloader(t), "demo")
	if l := projectLink(t, e); len(l.Keys) != 3 || l.Threshold != 2 || !l.ThresholdMet || e.Claimed {
		t.Fatalf("after adding carol, explain shows claimed=%v %+v", e.Claimed, l)
	}

	// The admins claim demo.
	admin := w.admin(t)
	out = admin.ok(t, "admin", "claim", "--key", "claimed", "--dry-run")
	if !strings.Contains(out, "Stays in recently-claimed") || !strings.Contains(out, "demo: 2 of 3 maintainer keys must sign") || !strings.Contains(out, "Nothing to sign") {
		t.Fatalf("claim dry run without a selection: %s", out)
	}
	refused(t, admin, 3, []string{"not one of the claimed keys"}, "admin", "claim", "--key", "targets", "--all", "--yes")
	refused(t, admin, 20, []string{"not waiting to be claimed"}, "admin", "claim", "--key", "claimed", "--project", "nosuch", "--yes")
	refused(t, admin, 10, []string{"--yes"}, "admin", "claim", "--key", "claimed", "--project", "demo")
	refused(t, newCLIFor(t, w, ""), 10, []string{"needs an API token"}, "admin", "claim", "--key", "claimed", "--all", "--yes")
	out = admin.ok(t, "admin", "claim", "--key", "claimed", "--project", "demo", "--yes")
	for _, want := range []string{"Moves 1 project into claimed", "demo: 2 of 3 maintainer keys must sign", "moved into claimed: demo", "Published claimed version 2 in snapshot", "Verified through TUF"} {
		if !strings.Contains(out, want) {
			t.Fatalf("admin claim does not say %q:\n%s", want, out)
		}
	}
	e = explainJSON(t, w.downloader(t), "demo@1.0.0")
	if !e.Claimed || e.Delegator != tufrepo.RoleClaimed || !strings.HasPrefix(e.Meaning, "claimed") {
		t.Fatalf("after claiming, explain says claimed=%v delegator=%q", e.Claimed, e.Delegator)
	}

	// A change of the claimed project is queued; the current keys stay in force.
	out = alice.ok(t, "maintainer", "remove", "demo", "carol", "--key", "alice", "--key", "bob")
	if !strings.Contains(out, "REMOVES maintainer key "+ids["carol"]) || !strings.Contains(out, "Queued for the admins") {
		t.Fatalf("removing carol from a claimed project: %s", out)
	}
	if l := projectLink(t, explainJSON(t, w.downloader(t), "demo")); len(l.Keys) != 3 {
		t.Fatalf("a queued change is already in force: %+v", l)
	}
	// The next claim shows and applies it.
	out = admin.ok(t, "admin", "claim", "--key", "claimed", "--dry-run")
	if !strings.Contains(out, "demo (maintainer change") || !strings.Contains(out, "REMOVES maintainer key "+ids["carol"]) {
		t.Fatalf("claim dry run with a queued change: %s", out)
	}
	out = admin.ok(t, "admin", "claim", "--key", "claimed", "--yes", "--output", "json")
	var rep struct {
		Plan   sdk.ClaimPlan   `json:"plan"`
		Result api.ClaimResult `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Result.Status != api.StatusPublished || len(rep.Plan.Changes) != 1 || len(rep.Result.Moved) != 0 || rep.Result.Version != 3 {
		t.Fatalf("claim applying the change: %v %s", err, out)
	}
	e = explainJSON(t, w.downloader(t), "demo")
	if l := projectLink(t, e); !e.Claimed || len(l.Keys) != 2 || l.Threshold != 2 || !l.ThresholdMet {
		t.Fatalf("after the admins applied the change, explain shows %+v", l)
	}
	// Nothing waits now.
	if out := admin.ok(t, "admin", "claim", "--key", "claimed", "--yes"); !strings.Contains(out, "Nothing to sign") {
		t.Fatalf("claim with nothing waiting: %s", out)
	}
	// The project is still usable: a 2-of-2 upload through resign with both keys.
	alice.ok(t, "project", "resign", "demo", "--key", "alice", "--key", "bob")
	dir := t.TempDir()
	w.downloader(t).ok(t, "get", "demo@1.0.0", "-o", dir)
}

// newCLIFor is a CLI user of w's server with the given token.
func newCLIFor(t *testing.T, w *cliWorld, token string) *cairnCLI {
	t.Helper()
	c := newCLI(t, token)
	c.ok(t, "init", "--server", w.r.URL, "--root", w.rootFile)
	return c
}

// coSignAsBob co-signs demo's open maintainer change with bob's key through the SDK (what
// 'cairn sign' does for kind "maintainers"), checking it against the verified delegation.
func coSignAsBob(t *testing.T, w *cliWorld) {
	t.Helper()
	ctx := context.Background()
	ac, err := sdk.NewAPI(w.r.URL, sdk.WithToken(w.r.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	pl, err := ac.Pending(ctx, "demo")
	if err != nil || len(pl.Proposals) != 1 || pl.Proposals[0].Kind != api.KindMaintainers {
		t.Fatalf("pending: %v %+v", err, pl)
	}
	c, err := sdk.ParseMaintainerProposal(pl.Proposals[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(w.alice.home, "keys", "bob.json"))
	if err != nil {
		t.Fatal(err)
	}
	kf, err := tufrepo.ParseKeyFile(b)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := kf.Decrypt([]byte(w.alice.env["CAIRN_KEY_PASSPHRASE"]))
	if err != nil {
		t.Fatal(err)
	}
	s, err := tufrepo.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyID, sig, err := sdk.SignMaintainerProposal(ctx, c, s)
	if err != nil || keyID != w.keyIDs["bob"] {
		t.Fatalf("signing: %v %s", err, keyID)
	}
	res, status, err := ac.CoSignMaintainerChange(ctx, "demo", c.Doc.Version, keyID, sig, 30*time.Second)
	if err != nil || res.Status != "applied" || status != 201 {
		t.Fatalf("co-signing: %v %d %+v", err, status, res)
	}
}

// TestSecondMaintainerChangeWhileOneIsQueued: a claimed project's maintainers propose a
// second change while the first waits for the admins. Changes chain on the queued one, so
// a change built on the published keys is refused with a specific error and changes
// nothing.
func TestSecondMaintainerChangeWhileOneIsQueued(t *testing.T) {
	w := newCLIWorld(t)
	w.alice.ok(t, "maintainer", "add", "demo", "bob", "--key", "alice")
	w.admin(t).ok(t, "admin", "claim", "--key", "claimed", "--all", "--yes")
	if out := w.alice.ok(t, "maintainer", "add", "demo", "carol", "--key", "alice"); !strings.Contains(out, "Queued") {
		t.Fatalf("first change: %s", out)
	}
	before := serverProject(t, w.r, "demo")
	code, _, errs := w.alice.run(t, "maintainer", "remove", "demo", "bob", "--key", "alice")
	if code == 0 || strings.Contains(errs, "internal") || !strings.Contains(errs, "queued") {
		t.Fatalf("a second change built on the published keys while one is queued: exit %d: %s", code, errs)
	}
	if after := serverProject(t, w.r, "demo"); after.DelegationVersion != before.DelegationVersion || len(after.Maintainers) != len(before.Maintainers) {
		t.Fatalf("a refused change changed the project: %+v", after)
	}
}

// TestChainedQueuedMaintainerChangesAppliedByClaim: two maintainer changes of a claimed
// project wait for the admins, the second built on (and signed by a key only) the first
// adds. 'cairn maintainer' cannot build on a queued change and says so plainly; 'cairn
// admin claim' verifies both signed documents offline, shows who signed each, and applies
// them.
func TestChainedQueuedMaintainerChangesAppliedByClaim(t *testing.T) {
	w := newCLIWorld(t)
	alice, ids := w.alice, w.keyIDs
	alice.ok(t, "maintainer", "add", "demo", "bob", "--key", "alice")
	admin := w.admin(t)
	admin.ok(t, "admin", "claim", "--key", "claimed", "--all", "--yes")

	// First change: add carol, queued.
	out := alice.ok(t, "maintainer", "add", "demo", "carol", "--key", "alice")
	if !strings.Contains(out, "Queued for the admins") {
		t.Fatalf("first change: %s", out)
	}
	first := serverProject(t, w.r, "demo").DelegationVersion + 1

	// The CLI builds on the verified keys, so a second change is refused, plainly.
	refused(t, alice, 4, []string{"a maintainer change of demo is already queued for the admins", "must build on the queued one", "cairn admin claim"},
		"maintainer", "remove", "demo", "bob", "--key", "alice")

	// Second change through the SDK, built on the first: remove bob, signed by carol alone,
	// whose key only the queued change delegates.
	ctx := context.Background()
	ac, err := sdk.NewAPI(w.r.URL, sdk.WithToken(w.r.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	carol := maintainerKey(t, alice, "carol")
	pubOf := func(name string) *metadata.Key {
		t.Helper()
		pub, err := maintainerKey(t, alice, name).PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		k, err := tufrepo.PublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	set := sdk.MaintainerSet{Keys: map[string]*metadata.Key{ids["alice"]: pubOf("alice"), ids["carol"]: pubOf("carol")}, Threshold: 1}
	raw, err := sdk.SignMaintainerChange(ctx, sdk.NewMaintainerChange("demo", first+1, set, time.Now().Add(sdk.MaintainerChangeExpiry)), carol)
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := ac.ChangeMaintainers(ctx, "demo", raw, 0)
	if err != nil || res.Status != "queued" || res.Version != first+1 {
		t.Fatalf("second change: %v %+v", err, res)
	}
	if l := projectLink(t, explainJSON(t, w.downloader(t), "demo")); len(l.Keys) != 2 {
		t.Fatalf("queued changes are already in force: %+v", l)
	}

	// The admins see both documents, who signed each, and the result.
	_, aliceFP := keyInfo(t, alice, "alice")
	_, carolFP := keyInfo(t, alice, "carol")
	out = admin.ok(t, "admin", "claim", "--key", "claimed", "--dry-run")
	for _, want := range []string{
		"each signed change document verified here",
		fmt.Sprintf("demo (maintainer change %d), in all:", first+1),
		fmt.Sprintf("signed change %d of demo, signed by 1 of the 2 maintainer keys before it (1 needed):", first),
		"signed by key " + ids["alice"][:16] + "  ed25519  " + aliceFP,
		fmt.Sprintf("signed change %d of demo, signed by 1 of the 3 maintainer keys before it (1 needed):", first+1),
		"signed by key " + ids["carol"][:16] + "  ed25519  " + carolFP,
		"ADDS maintainer key " + ids["carol"], "REMOVES maintainer key " + ids["bob"],
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("claim dry run does not say %q:\n%s", want, out)
		}
	}
	out = admin.ok(t, "admin", "claim", "--key", "claimed", "--yes", "--output", "json")
	var rep struct {
		Plan   sdk.ClaimPlan   `json:"plan"`
		Result api.ClaimResult `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Result.Status != api.StatusPublished || len(rep.Plan.Changes) != 1 || len(rep.Plan.Changes[0].Documents) != 2 {
		t.Fatalf("claim applying two chained changes: %v %s", err, out)
	}
	if d := rep.Plan.Changes[0].Documents; d[0].SignedBy[0].KeyID != ids["alice"] || d[1].SignedBy[0].KeyID != ids["carol"] || d[1].Change.Version != first+1 {
		t.Fatalf("documents: %+v", d)
	}
	e := explainJSON(t, w.downloader(t), "demo")
	if l := projectLink(t, e); !e.Claimed || len(l.Keys) != 2 || l.Threshold != 1 || !l.ThresholdMet {
		t.Fatalf("after the admins applied both changes, explain shows %+v", l)
	}
	if p := serverProject(t, w.r, "demo"); p.DelegationVersion != first+1 {
		t.Fatalf("the server's delegation version is %d, want %d", p.DelegationVersion, first+1)
	}
	// Carol, now a verified maintainer, can change the maintainers again.
	if out := alice.ok(t, "maintainer", "add", "demo", "bob", "--key", "carol"); !strings.Contains(out, "Queued for the admins") {
		t.Fatalf("a change after the claim: %s", out)
	}
}
