package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	cairnclient "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// maintainerKey decrypts a CLI user's key, for requests the CLI would never make.
func maintainerKey(t *testing.T, c *cairnCLI, name string) signature.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.home, "keys", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	kf, err := tufrepo.ParseKeyFile(b)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := kf.Decrypt([]byte(c.env["CAIRN_KEY_PASSPHRASE"]))
	if err != nil {
		t.Fatal(err)
	}
	s, err := tufrepo.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyInfo reads a CLI user's key ID and fingerprint.
func keyInfo(t *testing.T, c *cairnCLI, name string) (id, fingerprint string) {
	t.Helper()
	var infos []struct {
		Name        string `json:"name"`
		KeyID       string `json:"keyid"`
		Fingerprint string `json:"fingerprint"`
	}
	if err := json.Unmarshal([]byte(c.ok(t, "key", "list", "--output", "json")), &infos); err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		if i.Name == name {
			return i.KeyID, i.Fingerprint
		}
	}
	t.Fatalf("no key %q", name)
	return "", ""
}

// gotufFetch downloads a target with go-tuf's own updater from a fresh cache, returning
// its bytes and its signed custom data.
func gotufFetch(t *testing.T, r *testrepo.Repo, path string) ([]byte, map[string]any) {
	t.Helper()
	cfg, err := config.New(r.URL+"/metadata", r.RootJSON)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RemoteTargetsURL = r.URL + "/targets"
	cfg.PrefixTargetsWithHash = true
	cfg.LocalMetadataDir = t.TempDir()
	cfg.LocalTargetsDir = t.TempDir()
	up, err := updater.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Refresh(); err != nil {
		t.Fatalf("go-tuf refresh: %v", err)
	}
	ti, err := up.GetTargetInfo(path)
	if err != nil {
		t.Fatalf("go-tuf: %s: %v", path, err)
	}
	_, data, err := up.DownloadTarget(ti, filepath.Join(t.TempDir(), "f"), "")
	if err != nil {
		t.Fatalf("go-tuf: downloading %s: %v", path, err)
	}
	custom := map[string]any{}
	if ti.Custom != nil {
		if err := json.Unmarshal(*ti.Custom, &custom); err != nil {
			t.Fatal(err)
		}
	}
	return data, custom
}

// TestCoSigningAndYanking drives the threshold workflows end to end with the real CLI:
// three maintainers, 2 of 3 must sign. Project creation, an upload, a yank and an unyank
// are each proposed by one maintainer and completed by another with 'cairn sign'; every
// refusal of issue 3 is checked for its code or exit status and for publishing nothing.
func TestCoSigningAndYanking(t *testing.T) {
	u, drop, err := testdb.Create("e2e_cosign")
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, nil)
	t.Cleanup(drop)
	ctx := context.Background()
	rootFile := filepath.Join(r.Dir, "root.json")

	users := map[string]*cairnCLI{}
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		c := newCLI(t, r.AdminToken)
		c.ok(t, "init", "--server", r.URL, "--root", rootFile)
		c.ok(t, "key", "generate", "--name", name)
		users[name] = c
	}
	alice, bob, carol, dave := users["alice"], users["bob"], users["carol"], users["dave"]
	pubs := t.TempDir()
	for _, name := range []string{"bob", "carol"} {
		os.WriteFile(filepath.Join(pubs, name+".pub"), []byte(users[name].ok(t, "key", "export", "--public", name)), 0o644)
	}
	aliceID, aliceFP := keyInfo(t, alice, "alice")
	bobID, _ := keyInfo(t, bob, "bob")
	daveID, _ := keyInfo(t, dave, "dave")
	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	sdk, err := cairnclient.NewAPI(r.URL, cairnclient.WithToken(r.AdminToken))
	if err != nil {
		t.Fatal(err)
	}

	// state is what must not move when a write is refused.
	type state struct {
		role, published int64
		pending         string // version:signatures of each open proposal
	}
	current := func() state {
		t.Helper()
		p, err := sdk.Project(ctx, "proj")
		if err != nil {
			t.Fatal(err)
		}
		pl, err := sdk.Pending(ctx, "proj")
		if err != nil {
			t.Fatal(err)
		}
		s := state{role: p.RoleVersion, published: p.PublishedVersion}
		for _, pr := range pl.Proposals {
			s.pending += itoa(pr.Version) + ":" + itoa(int64(len(pr.SignedBy))) + " "
		}
		return s
	}
	unchanged := func(before state, what string) {
		t.Helper()
		if after := current(); after != before {
			t.Fatalf("%s changed the stored state: %+v → %+v", what, before, after)
		}
	}
	wantCode := func(err error, code api.Code, what string) {
		t.Helper()
		if api.CodeOf(err) != code {
			t.Fatalf("%s: got %v, want %s", what, err, code)
		}
	}
	pendingProposal := func(version int64) api.Proposal {
		t.Helper()
		pl, err := sdk.Pending(ctx, "proj")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pl.Proposals {
			if p.Version == version {
				return p
			}
		}
		t.Fatalf("no open proposal for version %d: %+v", version, pl)
		return api.Proposal{}
	}

	// 1. Creating the project is itself a proposal: version 1 needs a second maintainer.
	out := alice.ok(t, "project", "create", "proj", "--key", "alice", "--maintainer", filepath.Join(pubs, "bob.pub"), "--maintainer", filepath.Join(pubs, "carol.pub"), "--threshold", "2")
	if !strings.Contains(out, "Role version 1 of proj is pending: 1 of 2 maintainer signatures; ask a co-maintainer to run `cairn sign proj`") {
		t.Fatalf("project create with threshold 2 = %s", out)
	}
	if code, _, errs := dl.run(t, "releases", "proj"); code != 20 || !strings.Contains(errs, "not in the verified metadata") {
		t.Fatalf("an unsigned project is visible to clients: exit %d: %s", code, errs)
	}
	code, out, errs := bob.run(t, "sign", "proj", "--key", "bob", "--yes")
	if code != 0 || !strings.Contains(out, "first version of a new project") || !strings.Contains(out, "creates the project with no releases") ||
		!strings.Contains(errs, "NOT verified") || !strings.Contains(out, "published in snapshot") {
		t.Fatalf("bob signing the project: exit %d\n%s\n%s", code, out, errs)
	}
	var rl struct {
		RoleVersion int64 `json:"role_version"`
	}
	if err := json.Unmarshal([]byte(dl.ok(t, "releases", "proj", "--output", "json")), &rl); err != nil || rl.RoleVersion != 1 {
		t.Fatalf("after co-signing, clients see role version %d (%v)", rl.RoleVersion, err)
	}
	if out := bob.ok(t, "sign", "proj", "--key", "bob"); !strings.Contains(out, "No proposals of proj") {
		t.Fatalf("sign with nothing pending: %s", out)
	}

	// 2. An upload by alice waits for a co-signer.
	dist := t.TempDir()
	f100 := filepath.Join(dist, "proj-1.0.0.tar.gz")
	os.WriteFile(f100, []byte("proj one point oh"), 0o644)
	out = alice.ok(t, "upload", "proj", "1.0.0", f100, "--key", "alice")
	if !strings.Contains(out, "Role version 2 of proj is pending: 1 of 2 maintainer signatures; ask a co-maintainer to run `cairn sign proj`") {
		t.Fatalf("upload with threshold 2 = %s", out)
	}
	before := current()
	if before.role != 1 || before.published != 1 || before.pending != "2:1 " {
		t.Fatalf("after the upload: %+v", before)
	}
	p2 := pendingProposal(2)
	md2, err := cairnclient.ParseProposal(p2)
	if err != nil {
		t.Fatal(err)
	}

	// Refusals, each leaving everything as it was.
	// A repeated signature by the proposer: the CLI refuses (exit 4), and so does the server.
	if code, _, errs := alice.run(t, "sign", "proj", "--key", "alice", "--yes"); code != 4 || !strings.Contains(errs, "already signed") {
		t.Fatalf("alice signing her own proposal again: exit %d: %s", code, errs)
	}
	id, sig, err := cairnclient.SignProposal(md2, maintainerKey(t, alice, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sdk.CoSign(ctx, "proj", 2, id, sig, 0)
	wantCode(err, api.CodeSignatureRepeated, "a repeated signature")
	unchanged(before, "a repeated signature")

	// A key outside the delegation: the CLI refuses with exit 3; the server with
	// key_not_delegated.
	if code, _, errs := dave.run(t, "sign", "proj", "--key", "dave", "--yes"); code != 3 || !strings.Contains(errs, "not a maintainer key") {
		t.Fatalf("dave signing: exit %d: %s", code, errs)
	}
	id, sig, err = cairnclient.SignProposal(md2, maintainerKey(t, dave, "dave"))
	if err != nil || id != daveID {
		t.Fatal(err, id)
	}
	_, err = sdk.CoSign(ctx, "proj", 2, id, sig, 0)
	wantCode(err, api.CodeKeyNotDelegated, "a signature by a key outside the delegation")
	unchanged(before, "a signature by a key outside the delegation")

	// A valid signature by bob, but over different bytes.
	other, err := cairnclient.ParseProposal(p2)
	if err != nil {
		t.Fatal(err)
	}
	other.Signed.Expires = other.Signed.Expires.Add(-time.Hour)
	id, sig, err = cairnclient.SignProposal(other, maintainerKey(t, bob, "bob"))
	if err != nil || id != bobID {
		t.Fatal(err, id)
	}
	_, err = sdk.CoSign(ctx, "proj", 2, id, sig, 0)
	wantCode(err, api.CodeSignatureInvalid, "a signature over different bytes")
	unchanged(before, "a signature over different bytes")

	// A second proposal for the same version while one is open.
	f101 := filepath.Join(dist, "proj-1.0.1.tar.gz")
	os.WriteFile(f101, []byte("proj one point oh point one"), 0o644)
	if code, _, errs := carol.run(t, "upload", "proj", "1.0.1", f101, "--key", "carol"); code != 4 || !strings.Contains(errs, string(api.CodeProposalExists)) {
		t.Fatalf("a second proposal for version 2: exit %d: %s", code, errs)
	}
	unchanged(before, "a second proposal for the same version")

	// Without --yes and without a terminal, bob sees the review and nothing is signed.
	code, out, errs = bob.run(t, "sign", "proj", "--key", "bob")
	for _, want := range []string{
		"Proposal: role version 2 of proj (the verified role is at version 1)",
		"adds release 1.0.0 (1 file):", "proj-1.0.0.tar.gz  17 bytes  sha256 " + sha([]byte("proj one point oh")),
		"Signatures:  1 of 2 required", "key " + aliceID[:16] + "  " + aliceFP + "  <- proposer",
		`your key "bob"`, "Expires:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the review lacks %q:\n%s", want, out)
		}
	}
	if code != 10 || !strings.Contains(errs, "--yes") || strings.Contains(out, "{") {
		t.Fatalf("sign without confirmation: exit %d\n%s\n%s", code, out, errs)
	}
	unchanged(before, "an unconfirmed sign")

	// bob signs: published; a fresh downloader and go-tuf's updater get the release.
	out = bob.ok(t, "sign", "proj", "--key", "bob", "--yes")
	if !strings.Contains(out, "Signed. Role version 2 of proj has 2 of 2 signatures and is published in snapshot") {
		t.Fatalf("bob's co-signature: %s", out)
	}
	fresh := newCLI(t, "")
	fresh.ok(t, "init", "--server", r.URL, "--root", rootFile)
	got := t.TempDir()
	fresh.ok(t, "get", "proj", "-o", got)
	if b, err := os.ReadFile(filepath.Join(got, "proj-1.0.0.tar.gz")); err != nil || string(b) != "proj one point oh" {
		t.Fatalf("cairn get after co-signing: %q %v", b, err)
	}
	if b, _ := gotufFetch(t, r, "proj/1.0.0/proj-1.0.0.tar.gz"); string(b) != "proj one point oh" {
		t.Fatalf("go-tuf got %q", b)
	}

	// 3. Expiry: a proposal past its expiry cannot be co-signed and is no longer listed;
	// the version can be proposed again.
	f200 := filepath.Join(dist, "proj-2.0.0.tar.gz")
	os.WriteFile(f200, []byte("proj two"), 0o644)
	alice.ok(t, "upload", "proj", "2.0.0", f200, "--key", "alice")
	p3 := pendingProposal(3)
	md3, err := cairnclient.ParseProposal(p3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.DB.Pool.Exec(ctx, `UPDATE proposals SET expires_at = now() - interval '1 minute' WHERE project = 'proj' AND version = 3`); err != nil {
		t.Fatal(err)
	}
	before = current()
	if before.pending != "" {
		t.Fatalf("an expired proposal is still listed: %+v", before)
	}
	id, sig, err = cairnclient.SignProposal(md3, maintainerKey(t, bob, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sdk.CoSign(ctx, "proj", 3, id, sig, 0)
	wantCode(err, api.CodeProposalExpired, "co-signing an expired proposal")
	unchanged(before, "co-signing an expired proposal")
	if out := bob.ok(t, "sign", "proj", "--key", "bob", "--yes"); !strings.Contains(out, "No proposals") {
		t.Fatalf("sign offered an expired proposal: %s", out)
	}
	alice.ok(t, "upload", "proj", "2.0.0", f200, "--key", "alice")
	p3 = pendingProposal(3)
	if md3, err = cairnclient.ParseProposal(p3); err != nil {
		t.Fatal(err)
	}

	// 4. A proposal that no longer applies: while alice's proposal for version 3 is open,
	// bob and carol publish a different, complete version 3 (1.1.0) on their own.
	verified, err := repoOf(t, r).ProjectRole(ctx, "proj")
	if err != nil {
		t.Fatal(err)
	}
	f110 := filepath.Join(dist, "proj-1.1.0.tar.gz")
	os.WriteFile(f110, []byte("proj one point one"), 0o644)
	file110, err := cairnclient.HashFile(f110)
	if err != nil {
		t.Fatal(err)
	}
	r.PutBlob(t, r.AdminToken, []byte("proj one point one"))
	competing, err := cairnclient.NextProjectRole(verified.Metadata, "proj", "1.1.0", []api.File{file110}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cairnclient.SignRole(competing, maintainerKey(t, bob, "bob"), maintainerKey(t, carol, "carol"))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := sdk.SubmitRole(ctx, "proj", raw, 30*time.Second); err != nil || res.Status != api.StatusPublished {
		t.Fatalf("the competing version 3: %+v %v", res, err)
	}
	before = current()
	if before.published != 3 || before.pending != "" {
		t.Fatalf("after the competing version: %+v", before)
	}
	// The server drops superseded proposals when it stages a version, so co-signing the
	// old one finds nothing to sign (the proposal_stale check below it cannot be reached
	// through the API alone).
	id, sig, err = cairnclient.SignProposal(md3, maintainerKey(t, bob, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sdk.CoSign(ctx, "proj", 3, id, sig, 0)
	if c := api.CodeOf(err); c != api.CodeNotFound && c != api.CodeProposalStale {
		t.Fatalf("co-signing a superseded proposal: %v", err)
	}
	unchanged(before, "co-signing a superseded proposal")
	// Were it still stored (a server that kept it, or one that lies), both the server and
	// the CLI refuse it as stale.
	var env struct {
		Signed     json.RawMessage      `json:"signed"`
		Signatures []metadata.Signature `json:"signatures"`
	}
	if err := json.Unmarshal(p3.Metadata, &env); err != nil {
		t.Fatal(err)
	}
	sigs, _ := json.Marshal(env.Signatures)
	if _, err := r.DB.Pool.Exec(ctx, `INSERT INTO proposals (project, version, signed, signatures, proposed_by, expires_at) VALUES ('proj', 3, $1, $2, $3, now() + interval '1 day')`, []byte(env.Signed), sigs, aliceID); err != nil {
		t.Fatal(err)
	}
	before = current()
	_, err = sdk.CoSign(ctx, "proj", 3, id, sig, 0)
	wantCode(err, api.CodeProposalStale, "co-signing a stale proposal")
	code, out, errs = bob.run(t, "sign", "proj", "--key", "bob", "--yes")
	if code != 4 || !strings.Contains(errs, "no longer applies") || !strings.Contains(out, "CANNOT BE SIGNED") {
		t.Fatalf("cairn sign of a stale proposal: exit %d\n%s\n%s", code, out, errs)
	}
	unchanged(before, "signing a stale proposal")
	if _, err := r.DB.Pool.Exec(ctx, `DELETE FROM proposals WHERE project = 'proj'`); err != nil {
		t.Fatal(err)
	}

	// 5. Yank 1.1.0, co-signed by carol.
	out = alice.ok(t, "yank", "proj", "1.1.0", "--key", "alice", "--reason", "broken build")
	if !strings.Contains(out, "Role version 4 of proj is pending: 1 of 2") {
		t.Fatalf("yank with threshold 2 = %s", out)
	}
	code, out, _ = carol.run(t, "sign", "proj", "--key", "carol", "--output", "json")
	var review struct {
		CurrentVersion int64 `json:"current_version"`
		Proposals      []struct {
			Version int64                   `json:"version"`
			Changes cairnclient.RoleChanges `json:"changes"`
		} `json:"proposals"`
	}
	if err := json.Unmarshal([]byte(out), &review); err != nil || code != 10 {
		t.Fatalf("sign --output json without --yes: exit %d, %v: %s", code, err, out)
	}
	if len(review.Proposals) != 1 || review.CurrentVersion != 3 || len(review.Proposals[0].Changes.Yanked) != 1 ||
		review.Proposals[0].Changes.Yanked[0].Version != "1.1.0" || review.Proposals[0].Changes.Yanked[0].Reason != "broken build" || len(review.Proposals[0].Changes.Added) != 0 {
		t.Fatalf("the yank review = %+v", review)
	}
	out = carol.ok(t, "sign", "proj", "--key", "carol", "--yes")
	if !strings.Contains(out, `YANKS release 1.1.0 (1 file: proj-1.1.0.tar.gz), reason: "broken build"`) || !strings.Contains(out, "published in snapshot") {
		t.Fatalf("carol's co-signature of the yank: %s", out)
	}
	out = dl.ok(t, "releases", "proj")
	if !strings.Contains(out, "proj 1.1.0 is yanked: broken build") || !strings.Contains(out, "yanked") {
		t.Fatalf("releases after the yank: %s", out)
	}
	got = t.TempDir()
	code, out, errs = dl.run(t, "get", "proj", "-o", got)
	if code != 0 || !strings.Contains(errs, "skipping proj 1.1.0, which is yanked") {
		t.Fatalf("get latest after the yank: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(got, "proj-1.0.0.tar.gz")); err != nil {
		t.Fatalf("get latest did not pick 1.0.0 over the yanked 1.1.0: %v", err)
	}
	got = t.TempDir()
	code, _, errs = dl.run(t, "get", "proj@1.1.0", "-o", got)
	if b, err := os.ReadFile(filepath.Join(got, "proj-1.1.0.tar.gz")); code != 0 || err != nil || string(b) != "proj one point one" ||
		!strings.Contains(errs, "warning: proj 1.1.0 is yanked (reason: broken build)") {
		t.Fatalf("get of the yanked version: exit %d %v: %s", code, err, errs)
	}
	restYanked := func() map[string]bool {
		t.Helper()
		resp := r.Do(t, http.MethodGet, "/api/v1/projects/proj/releases", "", "", nil)
		var list api.ReleaseList
		if resp.Status != http.StatusOK || json.Unmarshal(resp.Body, &list) != nil {
			t.Fatalf("REST releases: %d %s", resp.Status, resp.Body)
		}
		m := map[string]bool{}
		for _, rel := range list.Releases {
			m[rel.Version] = rel.Yanked
		}
		return m
	}
	if y := restYanked(); !y["1.1.0"] || y["1.0.0"] || len(y) != 2 {
		t.Fatalf("REST releases after the yank: %v", y)
	}
	if _, custom := gotufFetch(t, r, "proj/1.1.0/proj-1.1.0.tar.gz"); custom["yanked"] != true || custom["yank_reason"] != "broken build" || custom["version"] != "1.1.0" {
		t.Fatalf("go-tuf sees custom %v", custom)
	}
	before = current()
	if code, _, errs := alice.run(t, "yank", "proj", "1.1.0", "--key", "alice"); code != 10 || !strings.Contains(errs, "already yanked (reason: broken build)") {
		t.Fatalf("yanking twice: exit %d: %s", code, errs)
	}
	if code, _, errs := alice.run(t, "yank", "proj", "9.9.9", "--key", "alice"); code != 20 || !strings.Contains(errs, "no release") {
		t.Fatalf("yanking an unknown version: exit %d: %s", code, errs)
	}
	if code, _, errs := alice.run(t, "unyank", "proj", "1.0.0", "--key", "alice"); code != 10 || !strings.Contains(errs, "not yanked") {
		t.Fatalf("unyanking a release that is not yanked: exit %d: %s", code, errs)
	}
	if code, _, errs := dave.run(t, "yank", "proj", "1.0.0", "--key", "dave"); code != 3 || !strings.Contains(errs, "not a maintainer key") {
		t.Fatalf("yanking with a key outside the delegation: exit %d: %s", code, errs)
	}
	unchanged(before, "refused yanks")

	// 6. Unyank, co-signed by bob.
	if out := alice.ok(t, "unyank", "proj", "1.1.0", "--key", "alice"); !strings.Contains(out, "Role version 5 of proj is pending: 1 of 2") {
		t.Fatalf("unyank with threshold 2 = %s", out)
	}
	out = bob.ok(t, "sign", "proj", "--key", "bob", "--yes")
	if !strings.Contains(out, `unyanks release 1.1.0 (1 file: proj-1.1.0.tar.gz); it was yanked because: "broken build"`) || !strings.Contains(out, "published in snapshot") {
		t.Fatalf("bob's co-signature of the unyank: %s", out)
	}
	var rels struct {
		Releases []cairnclient.Release `json:"releases"`
	}
	if err := json.Unmarshal([]byte(dl.ok(t, "releases", "proj", "--output", "json")), &rels); err != nil {
		t.Fatal(err)
	}
	for _, rel := range rels.Releases {
		if rel.Yanked || rel.YankReason != "" {
			t.Fatalf("after the unyank: %+v", rels)
		}
	}
	got = t.TempDir()
	dl.ok(t, "get", "proj", "-o", got)
	if _, err := os.Stat(filepath.Join(got, "proj-1.1.0.tar.gz")); err != nil {
		t.Fatalf("get latest after the unyank did not pick 1.1.0: %v", err)
	}
	if y := restYanked(); y["1.1.0"] {
		t.Fatalf("REST releases after the unyank: %v", y)
	}
	if _, custom := gotufFetch(t, r, "proj/1.1.0/proj-1.1.0.tar.gz"); custom["yanked"] != nil || custom["yank_reason"] != nil || custom["version"] != "1.1.0" {
		t.Fatalf("go-tuf sees custom %v after the unyank", custom)
	}
}

// repoOf opens a verifying client of the repository with a fresh cache.
func repoOf(t *testing.T, r *testrepo.Repo) *cairnclient.Repo {
	t.Helper()
	repo, err := cairnclient.OpenRepo(cairnclient.RepoConfig{Server: r.URL, TrustedRoot: r.RootJSON, MetadataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// TestCoSigningAMaintainerChangeWithTheCLI: a 2-of-2 recently-claimed project; alice
// proposes adding carol with 'cairn maintainer add' (pending: one signature of two), bob,
// on his own machine with only his key, reviews it and co-signs it with 'cairn sign
// --kind maintainers', and the change is applied and published.
func TestCoSigningAMaintainerChangeWithTheCLI(t *testing.T) {
	w := newCLIWorld(t)
	alice, ids := w.alice, w.keyIDs
	alice.ok(t, "maintainer", "add", "demo", "bob", "--key", "alice")
	alice.ok(t, "project", "resign", "demo", "--key", "alice", "--key", "bob")
	if out := alice.ok(t, "project", "threshold", "demo", "2", "--key", "alice"); !strings.Contains(out, "Applied") {
		t.Fatalf("threshold 2: %s", out)
	}

	out := alice.ok(t, "maintainer", "add", "demo", "carol", "--key", "alice")
	if !strings.Contains(out, "Pending") || !strings.Contains(out, "1 of the 2") {
		t.Fatalf("adding carol with alice's signature: %s", out)
	}
	before := serverProject(t, w.r, "demo")
	refused(t, alice, 4, []string{"already signed maintainer change"}, "sign", "demo", "--key", "alice", "--yes")

	// Bob's machine: his own home, his key only.
	bob := newCLIFor(t, w, w.r.AdminToken)
	b, err := os.ReadFile(filepath.Join(alice.home, "keys", "bob.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(bob.home, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bob.home, "keys", "bob.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, carolFP := keyInfo(t, alice, "carol")
	code, review, errs := bob.run(t, "sign", "demo", "--key", "bob")
	if code != 10 || !strings.Contains(errs, "--yes") {
		t.Fatalf("sign without --yes off a terminal: exit %d %s", code, errs)
	}
	for _, want := range []string{"Maintainer change", "1 of 2 required", "ADDS maintainer key " + ids["carol"], carolFP, "keeps the threshold at 2", `<- your key "bob"`} {
		if !strings.Contains(review, want) {
			t.Fatalf("bob's review does not say %q:\n%s", want, review)
		}
	}
	if after := serverProject(t, w.r, "demo"); after.DelegationVersion != before.DelegationVersion {
		t.Fatalf("an unconfirmed review changed the project: %+v", after)
	}

	out = bob.ok(t, "sign", "demo", "--key", "bob", "--kind", "maintainers", "--yes")
	if !strings.Contains(out, "Signed. Applied: maintainer change") || !strings.Contains(out, "(verified)") {
		t.Fatalf("bob co-signing: %s", out)
	}
	if after := serverProject(t, w.r, "demo"); after.DelegationVersion != before.DelegationVersion+1 || len(after.Maintainers) != 3 || after.Threshold != 2 {
		t.Fatalf("after bob co-signed, the server says %+v", after)
	}
	e := explainJSON(t, w.downloader(t), "demo")
	if l := projectLink(t, e); len(l.Keys) != 3 || l.Threshold != 2 || !l.ThresholdMet || e.Claimed {
		t.Fatalf("after the co-signed change, a fresh downloader verifies %+v", l)
	}
	// Nothing is left to sign.
	if out := bob.ok(t, "sign", "demo", "--key", "bob", "--kind", "maintainers"); !strings.Contains(out, "No maintainer changes of demo are waiting") {
		t.Fatalf("sign with nothing open: %s", out)
	}
	if pl := serverPending(t, w); len(pl.Proposals) != 0 {
		t.Fatalf("proposals left: %+v", pl)
	}
}

func serverPending(t *testing.T, w *cliWorld) api.ProposalList {
	t.Helper()
	var pl api.ProposalList
	if err := json.Unmarshal(w.r.Do(t, "GET", "/api/v1/projects/demo/pending", "", "", nil).Body, &pl); err != nil {
		t.Fatal(err)
	}
	return pl
}
