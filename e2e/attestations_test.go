package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/attest/attesttest"
	cairnclient "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
)

type proofJSON struct {
	SnapshotVersion int64 `json:"snapshot_version"`
	Files           []struct {
		Path       string `json:"path"`
		Committed  int    `json:"committed"`
		Identities []struct {
			SAN    string `json:"san"`
			Issuer string `json:"issuer"`
		} `json:"identities"`
		Sample        []json.RawMessage   `json:"sample"`
		DomainMatches []json.RawMessage   `json:"domain_matches"`
		Predicates    map[string][]string `json:"predicate_types"`
		Attestations  []struct {
			Committed bool `json:"committed"`
		} `json:"attestations"`
	} `json:"files"`
}

// TestAttestationsSocialProofAndWithheldAttestation: three identities attest a release
// file; 'cairn attestations' verifies every bundle offline against the trusted root it got
// through TUF and counts them. Then the server drops one attestation from its list (an
// attacker with the database): the signed index still commits it, and the CLI exits 4.
func TestAttestationsSocialProofAndWithheldAttestation(t *testing.T) {
	sig := attesttest.New(t)
	r, maint, rootFile := newAttestedHello(t, "e2e_attest", sig.TrustedRoot(t))
	ctx := context.Background()
	content := []byte("hello, world: attested")
	releaseHello(t, maint, "1.0.0", content)

	api, err := cairnclient.NewAPI(r.URL, cairnclient.WithToken(r.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	subj := attesttest.File("hello-1.0.0.tar.gz", content)
	for _, a := range []struct{ who, typ string }{
		{"alice@hello.dev", attesttest.SLSAProvenance},
		{"reviewer@audits.example", "https://cairn.dev/review/v1"},
		{"carol@sub.hello.dev", "https://spdx.dev/Document"},
	} {
		if _, err := api.PostAttestation(ctx, subj.SHA256, sig.Bundle(t, a.who, "https://accounts.example.com", attesttest.Options{PredicateType: a.typ}, subj)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}

	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	var proof proofJSON
	out := dl.ok(t, "attestations", "hello@1.0.0", "--output", "json", "--sample", "2", "--domain", "hello.dev")
	if err := json.Unmarshal([]byte(out), &proof); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	p := proof.Files[0]
	if len(p.Identities) != 3 || p.Committed != 3 || len(p.Sample) != 2 || len(p.DomainMatches) != 2 || len(p.Predicates) != 3 {
		t.Fatalf("social proof: %s", out)
	}
	// The maintainers declare the project's homepage in their signed role: without
	// --domain, the identities under it are the project's own. A link that is not https
	// is refused before anything is signed.
	if code, _, errs := maint.run(t, "project", "links", "hello", "--key", "alice", "--homepage", "http://hello.dev"); code == 0 || !strings.Contains(errs, "not an https:// URL") {
		t.Fatalf("links with an http homepage: exit %d, %s", code, errs)
	}
	maint.ok(t, "project", "links", "hello", "--key", "alice", "--homepage", "https://hello.dev", "--repository", "https://github.com/hello/hello")
	out = dl.ok(t, "attestations", "hello@1.0.0", "--output", "json")
	proof = proofJSON{}
	if err := json.Unmarshal([]byte(out), &proof); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(proof.Files[0].DomainMatches) != 2 {
		t.Fatalf("identities matching the declared homepage: %s", out)
	}
	text := dl.ok(t, "attestations", "hello@1.0.0")
	for _, want := range []string{"3 distinct verified identities", "reviewer@audits.example", "https://spdx.dev/Document by carol@sub.hello.dev", "matching hello.dev, https://github.com/hello/hello/…: 2"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}

	// A diff of two releases summarises each side's attestations, verified the same way.
	f2 := filepath.Join(t.TempDir(), "hello-2.0.0.tar.gz")
	if err := os.WriteFile(f2, []byte("hello, world: not attested"), 0o644); err != nil {
		t.Fatal(err)
	}
	maint.ok(t, "upload", "hello", "2.0.0", f2, "--key", "alice")
	diff := dl.ok(t, "diff", "hello", "1.0.0", "2.0.0")
	for _, want := range []string{"from 3 verified attestations by 3 identities on its 1 files", "to none on its 1 files"} {
		if !strings.Contains(strings.Join(strings.Fields(diff), " "), want) {
			t.Errorf("diff lacks %q:\n%s", want, diff)
		}
	}

	// The attacker drops the reviewer's endorsement from what the server lists and serves.
	if _, err := r.DB.Pool.Exec(ctx, `DELETE FROM attestations WHERE san = 'reviewer@audits.example'`); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"attestations", "hello@1.0.0"}, {"diff", "hello", "1.0.0", "2.0.0"}} {
		code, _, errs := dl.run(t, args...)
		if code != int(cairnclient.ExitPolicy) || !strings.Contains(errs, "leaves out") {
			t.Fatalf("cairn %v with a withheld attestation: exit %d, stderr %s; want exit 4 naming it", args, code, errs)
		}
	}
	// Until a new snapshot commits the smaller index (a signature by the online key, in the
	// audit log and the transparency log), every client catches it.
}

// TestGetAppliesAttestationPolicy: 'cairn get' with a policy needing two distinct trusted
// identities fails (exit 4, the rule named, nothing written) with one and passes with two;
// an untrusted SAN, a wrong issuer and a missing predicate type are each refused; a server
// that drops a committed attestation is caught by get too.
func TestGetAppliesAttestationPolicy(t *testing.T) {
	sig := attesttest.New(t)
	r, maint, rootFile := newAttestedHello(t, "e2e_attest_policy", sig.TrustedRoot(t))
	ctx := context.Background()
	content := []byte("hello, world: policy")
	releaseHello(t, maint, "1.0.0", content)
	rest, err := cairnclient.NewAPI(r.URL, cairnclient.WithToken(r.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	subj := attesttest.File("hello-1.0.0.tar.gz", content)
	const iss = "https://accounts.example.com"
	attestBy := func(who string) {
		t.Helper()
		if _, err := rest.PostAttestation(ctx, subj.SHA256, sig.Bundle(t, who, iss, attesttest.Options{}, subj)); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	attestBy("alice@hello.dev")

	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	policy := filepath.Join(dl.home, "policy.yaml")
	if err := os.WriteFile(policy, []byte(`
global:
  trusted_identities:
    - san_regexp: ".*@hello[.]dev"
      issuer: https://accounts.example.com
projects:
  hello:
    require_identities: 2
`), 0o600); err != nil {
		t.Fatal(err)
	}
	dl.ok(t, "policy", "check")
	if out := dl.ok(t, "policy", "show", "--project", "hello", "--output", "json"); !strings.Contains(out, `"require_identities": 2`) {
		t.Errorf("policy show: %s", out)
	}
	refused := func(want string, args ...string) {
		t.Helper()
		dir := t.TempDir()
		code, _, errs := dl.run(t, append([]string{"get", "hello@1.0.0", "--output-dir", dir}, args...)...)
		if code != int(cairnclient.ExitPolicy) || !strings.Contains(errs, want) {
			t.Fatalf("get %v: exit %d, stderr %s; want exit 4 naming %q", args, code, errs, want)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("get %v wrote %d files after a policy refusal", args, len(ents))
		}
	}
	refused("require_identities: 1 distinct trusted identities")
	attestBy("mallory@evil.example") // verifies, but is not trusted
	refused("require_identities: 1 distinct trusted identities")
	attestBy("bob@hello.dev")
	dir := t.TempDir()
	dl.ok(t, "get", "hello@1.0.0", "--output-dir", dir)
	if b, err := os.ReadFile(filepath.Join(dir, "hello-1.0.0.tar.gz")); err != nil || string(b) != string(content) {
		t.Fatalf("get with the policy met: %q %v", b, err)
	}
	// Flags add rules: a wrong issuer and a predicate type nobody attested.
	refused("require_identities", "--policy", writePolicy(t, "global:\n  trusted_identities:\n    - san: bob@hello.dev\n      issuer: https://wrong.example\n  require_identities: 1\n"))
	refused("require_predicate_types", "--require-predicate-type", "https://spdx.dev/Document")
	refused("provenance", "--require-source", "https://github.com/hello/hello")
	// A bad policy file is malformed input (exit 10), not a pass.
	if code, _, errs := dl.run(t, "policy", "check", writePolicy(t, "global:\n  require_identites: 2\n")); code != int(cairnclient.ExitMalformed) || !strings.Contains(errs, "require_identites") {
		t.Fatalf("policy check of a bad file: exit %d %s", code, errs)
	}
	// The server drops bob's attestation: get refuses (exit 4) and writes nothing.
	if _, err := r.DB.Pool.Exec(ctx, `DELETE FROM attestations WHERE san = 'bob@hello.dev'`); err != nil {
		t.Fatal(err)
	}
	refused("leaves out")
}

func writePolicy(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUploadBindsProvenance: 'cairn upload --attest' verifies the bundle, binds its
// digest in the signed target's custom data and attaches it. Even a server that drops it
// and publishes an index without it (the online key) is caught: the maintainers'
// signature names it.
func TestUploadBindsProvenance(t *testing.T) {
	sig := attesttest.New(t)
	r, maint, rootFile := newAttestedHello(t, "e2e_attest_upload", sig.TrustedRoot(t))
	ctx := context.Background()
	dir := t.TempDir()
	content := []byte("hello, world: built in CI")
	f := filepath.Join(dir, "hello-1.0.0.tar.gz")
	if err := os.WriteFile(f, content, 0o644); err != nil {
		t.Fatal(err)
	}
	subj := attesttest.File("hello-1.0.0.tar.gz", content)
	prov := filepath.Join(dir, "hello-1.0.0.tar.gz.sigstore.json")
	if err := os.WriteFile(prov, sig.Bundle(t, "ci@hello.dev", "https://accounts.example.com", attesttest.Options{}, subj), 0o644); err != nil {
		t.Fatal(err)
	}
	// A bundle about another file stops the upload before anything is sent.
	other := filepath.Join(dir, "other.sigstore.json")
	if err := os.WriteFile(other, sig.Bundle(t, "ci@hello.dev", "https://accounts.example.com", attesttest.Options{}, attesttest.File("x", []byte("other"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := maint.run(t, "upload", "hello", "1.0.0", f, "--key", "alice", "--attest", other); code == 0 || !strings.Contains(errs, "attests none of the files") {
		t.Fatalf("upload with a bundle about another file: exit %d %s", code, errs)
	}
	maint.ok(t, "upload", "hello", "1.0.0", f, "--key", "alice", "--attest", prov)

	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	out := dl.ok(t, "attestations", "hello@1.0.0", "--output", "json")
	if !strings.Contains(out, `"maintainer_bound": true`) || !strings.Contains(out, "ci@hello.dev") {
		t.Fatalf("the bound provenance is not shown: %s", out)
	}
	// The attacker removes it and publishes an index without it.
	if _, err := r.DB.Pool.Exec(ctx, `DELETE FROM attestations`); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DB.Pool.Exec(ctx, `UPDATE attestation_shards SET wanted = wanted + 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}
	code, _, errs := dl.run(t, "attestations", "hello@1.0.0")
	if code != int(cairnclient.ExitPolicy) || !strings.Contains(errs, "bound attestation") {
		t.Fatalf("dropped bound provenance: exit %d, stderr %s; want exit 4", code, errs)
	}
}

// TestFetchByDigest: 'cairn fetch URL --digest' writes the file only if the digest
// matches (exit 1 and nothing at FILE otherwise), shows the attestations the configured
// server has for it, and applies the policy before writing.
func TestFetchByDigest(t *testing.T) {
	sig := attesttest.New(t)
	r, maint, rootFile := newAttestedHello(t, "e2e_attest_fetch", sig.TrustedRoot(t))
	ctx := context.Background()
	content := []byte("hello, world: mirrored elsewhere")
	releaseHello(t, maint, "1.0.0", content)
	rest, err := cairnclient.NewAPI(r.URL, cairnclient.WithToken(r.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	subj := attesttest.File("hello-1.0.0.tar.gz", content)
	if _, err := rest.PostAttestation(ctx, subj.SHA256, sig.Bundle(t, "alice@127.0.0.1", "https://accounts.example.com", attesttest.Options{}, subj)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { w.Write(content) }))
	defer mirror.Close()

	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	dir := t.TempDir()
	out := filepath.Join(dir, "hello.tgz")
	code, _, errs := dl.run(t, "fetch", mirror.URL+"/hello.tgz", "--digest", "sha256:"+sha([]byte("other")), "-o", out)
	if code != int(cairnclient.ExitHashMismatch) || !strings.Contains(errs, "nothing was written") {
		t.Fatalf("wrong digest: exit %d %s", code, errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("a digest mismatch left %d files", len(ents))
	}
	code, _, errs = dl.run(t, "fetch", mirror.URL+"/hello.tgz", "--digest", "sha256:"+subj.SHA256, "-o", out, "--require-identities", "2")
	if code != int(cairnclient.ExitPolicy) || !strings.Contains(errs, "require_identities") {
		t.Fatalf("policy: exit %d %s", code, errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("a policy refusal left %d files", len(ents))
	}
	code, _, errs = dl.run(t, "fetch", mirror.URL+"/hello.tgz", "--digest", "sha256:"+subj.SHA256, "-o", out, "--require-identities", "1")
	if code != 0 || !strings.Contains(errs, "alice@127.0.0.1") || !strings.Contains(errs, "(matches 127.0.0.1)") {
		t.Fatalf("fetch: exit %d %s", code, errs)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != string(content) {
		t.Fatalf("fetched %q %v", b, err)
	}
	if code, _, errs := dl.run(t, "fetch", "http://example.com/x", "--digest", "sha256:"+subj.SHA256); code != int(cairnclient.ExitMalformed) || !strings.Contains(errs, "loopback") {
		t.Fatalf("plain HTTP to a remote host: exit %d %s", code, errs)
	}
}

// TestClientRefusesBundlesTheServerShouldNotHave: an attacker with the database inserts
// bundles the server would have refused (another digest, no inclusion proof, a certificate
// expired when logged, another Sigstore's). 'cairn attestations' verifies each itself:
// none is counted, each is shown refused, and a policy needing one identity fails (exit 4).
func TestClientRefusesBundlesTheServerShouldNotHave(t *testing.T) {
	sig := attesttest.New(t)
	r, maint, rootFile := newAttestedHello(t, "e2e_attest_forged", sig.TrustedRoot(t))
	ctx := context.Background()
	content := []byte("hello, world: forged endorsements")
	releaseHello(t, maint, "1.0.0", content)
	subj := attesttest.File("hello-1.0.0.tar.gz", content)
	const iss = "https://accounts.example.com"
	bad := [][]byte{
		sig.Bundle(t, "a@x.example", iss, attesttest.Options{}, attesttest.File("other", []byte("another file"))),
		sig.Bundle(t, "b@x.example", iss, attesttest.Options{NoInclusionProof: true}, subj),
		sig.Bundle(t, "c@x.example", iss, attesttest.Options{LogTime: time.Now().Add(time.Hour)}, subj),
		attesttest.New(t).Bundle(t, "d@x.example", iss, attesttest.Options{}, subj),
	}
	for i, b := range bad {
		sum := shaBytes(b)
		if _, err := r.DB.Pool.Exec(ctx, `INSERT INTO attestations (file_sha256, bundle_sha256, signature_sha256, bundle, san, issuer, predicate_type, log_time, log_index, trusted_root_sha256)
			VALUES ($1, $2, $2, $3, $4, $5, 'https://slsa.dev/provenance/v1', now(), 0, $2)`, shaBytes(content), sum, b, "forged"+itoa(int64(i))+"@x.example", iss); err != nil {
			t.Fatal(err)
		}
	}
	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	out := dl.ok(t, "attestations", "hello@1.0.0", "--output", "json")
	var proof struct {
		Files []struct {
			Identities []json.RawMessage `json:"identities"`
			Refused    []struct {
				Reason string `json:"reason"`
			} `json:"refused"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &proof); err != nil {
		t.Fatal(err)
	}
	if p := proof.Files[0]; len(p.Identities) != 0 || len(p.Refused) != 4 {
		t.Fatalf("forged bundles counted: %s", out)
	}
	for i, want := range []string{"attestation_subject_mismatch", "attestation_not_included", "was not valid when the log recorded", "attestation_not_included"} {
		if !strings.Contains(proof.Files[0].Refused[i].Reason, want) {
			t.Errorf("refused[%d]: %q, want %q", i, proof.Files[0].Refused[i].Reason, want)
		}
	}
	code, _, errs := dl.run(t, "get", "hello@1.0.0", "--output-dir", t.TempDir(), "--require-identities", "1")
	if code != int(cairnclient.ExitPolicy) || !strings.Contains(errs, "require_identities: 0") {
		t.Fatalf("get with forged bundles only: exit %d %s", code, errs)
	}
}

// newAttestedHello boots a server that takes attestations verified against trustedRoot,
// with a project hello whose maintainer key alice is in maint's key store; rootFile is the
// root to pin.
func newAttestedHello(t *testing.T, db string, trustedRoot []byte) (r *testrepo.Repo, maint *cairnCLI, rootFile string) {
	t.Helper()
	trFile := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(trFile, trustedRoot, 0o600); err != nil {
		t.Fatal(err)
	}
	u, drop, err := testdb.Create(db)
	if err != nil {
		t.Fatal(err)
	}
	r = testrepo.Boot(t, u, func(c *daemon.Config) { c.SigstoreTrustedRoot = trFile })
	t.Cleanup(drop)
	maint = newCLI(t, r.AdminToken)
	rootFile = filepath.Join(r.Dir, "root.json")
	maint.ok(t, "init", "--server", r.URL, "--root", rootFile)
	maint.ok(t, "key", "generate", "--name", "alice")
	maint.ok(t, "project", "create", "hello", "--key", "alice")
	return r, maint, rootFile
}

// releaseHello uploads hello-VERSION.tar.gz with content as release VERSION, signed by alice.
func releaseHello(t *testing.T, maint *cairnCLI, version string, content []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "hello-"+version+".tar.gz")
	if err := os.WriteFile(f, content, 0o644); err != nil {
		t.Fatal(err)
	}
	maint.ok(t, "upload", "hello", version, f, "--key", "alice")
}
