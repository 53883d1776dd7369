package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/api"
	cairnclient "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/rekortest"
	"github.com/cairn-dev/cairn/internal/sigstoretest"
	"github.com/cairn-dev/cairn/internal/testenv"
	"github.com/sigstore/sigstore-go/pkg/root"
)

// requireCosign is cosign from $CAIRN_COSIGN (make test installs it). Unlike the OCI
// client tests' cosignClient, a missing cosign is a missing tool: CI fails, never skips.
func requireCosign(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CAIRN_COSIGN")
	if p == "" {
		testenv.MissingTool(t, "CAIRN_COSIGN is not set: test/ociclients/install.sh cosign (15-20 min cold) builds it; make test sets it")
	}
	return executable(t, p, "CAIRN_COSIGN="+p+" is not an executable: test/ociclients/install.sh -d DIR cosign installs it")
}

// signingConfig is the Sigstore signing_config.json that points cosign at the services of
// the test: Fulcio, the OIDC issuer, the Rekor v2 log and the timestamp authority.
func signingConfig(t *testing.T, is *sigstoretest.Issuer, f *sigstoretest.Fulcio, r *rekortest.Rekor, tsa *sigstoretest.TSA) []byte {
	t.Helper()
	start := time.Now().Add(-time.Hour)
	svc := func(u string, v uint32) []root.Service {
		return []root.Service{{URL: u, MajorAPIVersion: v, ValidityPeriodStart: start, Operator: "cairn-test"}}
	}
	sc, err := root.NewSigningConfig(root.SigningConfigMediaType02, svc(f.URL, 1), svc(is.URL, 1), svc(r.URL, 2),
		root.ServiceConfiguration{Selector: 1 /* ANY */}, svc(tsa.URL, 1), root.ServiceConfiguration{Selector: 1})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sc.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type orasDiscovery struct {
	Referrers []struct {
		Digest       string            `json:"digest"`
		ArtifactType string            `json:"artifactType"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"referrers"`
}

// TestAttestOCIReferrersWithOrasAndCosign: a keyless attestation made by 'cairn attest'
// (real Fulcio, Rekor v2, TSA and OIDC issuer on loopback) is, once published, an OCI
// referrer of the release that `oras discover` lists and `oras pull` fetches byte for
// byte; cosign (the OCI clients' v2.6.5) verifies that bundle against the test trusted root
// with the signer's identity and issuer, and refuses it for another identity. cosign finds
// it as a referrer too (`cosign tree`; `cosign verify-attestation` gets as far as the
// subject check, which names the file, not the release manifest).
func TestAttestOCIReferrersWithOrasAndCosign(t *testing.T) {
	rekortest.Require(t)
	oras, cosign := ociClient(t, "oras"), requireCosign(t)
	is := sigstoretest.NewIssuer(t)
	fulcio := sigstoretest.StartFulcio(t, is)
	tsa := sigstoretest.StartTSA(t)
	rekor := rekortest.Start(t)
	trustedRoot := sigstoretest.TrustedRoot(t, fulcio, rekor, tsa)
	r, maint, rootFile := newAttestedHello(t, "e2e_attest_oci", trustedRoot)
	ctx := t.Context()
	content := []byte("hello, world: attested, found over OCI")
	releaseHello(t, maint, "1.0.0", content)
	fileSum := sha256.Sum256(content)
	fileHex := hex.EncodeToString(fileSum[:])

	attester := newCLI(t, r.AdminToken)
	attester.ok(t, "init", "--server", r.URL, "--root", rootFile)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(is.Token(t, "alice@hello.dev", 5*time.Minute)), 0o600); err != nil {
		t.Fatal(err)
	}
	attester.ok(t, "attest", "hello@1.0.0", "--identity-token", "@"+tok,
		"--fulcio-url", fulcio.URL, "--rekor-url", rekor.URL, "--rekor-version", "2", "--tsa-url", tsa.URL)
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}

	u := newOCIUser(t)
	host := strings.TrimPrefix(r.URL, "http://")
	u.ok(t, cmd{stdin: r.AdminToken}, oras, "login", "--plain-http", "-u", "cairn", "--password-stdin", host)
	relDigest := strings.TrimSpace(u.ok(t, cmd{}, oras, "resolve", "--plain-http", host+"/hello:1.0.0"))
	discover := func() orasDiscovery {
		t.Helper()
		out := u.ok(t, cmd{}, oras, "discover", "--plain-http", "--format", "json", "--artifact-type", api.ArtifactTypeSigstoreBundle, host+"/hello@"+relDigest)
		var d orasDiscovery
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("oras discover: %v: %s", err, out)
		}
		return d
	}
	d := discover()
	if len(d.Referrers) != 1 || d.Referrers[0].ArtifactType != api.ArtifactTypeSigstoreBundle ||
		d.Referrers[0].Annotations[api.AnnotationAttestedFileDigest] != "sha256:"+fileHex ||
		d.Referrers[0].Annotations[api.AnnotationBundlePredicateType] != cairnclient.PredicateEndorsement {
		t.Fatalf("oras discover after one attestation: %+v", d)
	}

	// oras pull fetches the bundle layer under its title; it is the stored bundle.
	pulled := t.TempDir()
	u.ok(t, cmd{}, oras, "pull", "--plain-http", "-o", pulled, host+"/hello@"+d.Referrers[0].Digest)
	ents, err := os.ReadDir(pulled)
	if err != nil || len(ents) != 1 || !strings.HasSuffix(ents[0].Name(), ".sigstore.json") {
		t.Fatalf("oras pull of the referrer: %v %v", ents, err)
	}
	bundlePath := filepath.Join(pulled, ents[0].Name())
	bundle, err := os.ReadFile(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	bsum := sha256.Sum256(bundle)
	if stored := r.Do(t, http.MethodGet, "/api/v1/attestations/"+fileHex+"/"+hex.EncodeToString(bsum[:]), "", "", nil); stored.Status != http.StatusOK || string(stored.Body) != string(bundle) {
		t.Fatalf("the pulled bundle is not the stored one: %d", stored.Status)
	}

	// cosign verifies what Cairn stores: the bundle, the file, the identity and issuer.
	dir := t.TempDir()
	trPath := writeFile(t, dir, "trusted_root.json", trustedRoot)
	filePath := writeFile(t, dir, "hello-1.0.0.tar.gz", content)
	verify := func(identity string) (string, string, int) {
		return u.run(t, cmd{}, cosign, "verify-blob-attestation", "--new-bundle-format", "--bundle", bundlePath,
			"--trusted-root", trPath, "--certificate-identity", identity, "--certificate-oidc-issuer", is.URL,
			// The test Fulcio has no CT log, and Rekor v2 gives no time: the TSA's does.
			"--insecure-ignore-sct", "--use-signed-timestamps", "--type", cairnclient.PredicateEndorsement, filePath)
	}
	if out, errs, code := verify("alice@hello.dev"); code != 0 || !strings.Contains(out+errs, "Verified OK") {
		t.Fatalf("cosign verify-blob-attestation of the stored bundle: exit %d\n%s\n%s", code, out, errs)
	}
	if _, errs, code := verify("mallory@hello.dev"); code == 0 {
		t.Fatalf("cosign verified the bundle for another identity: %s", errs)
	}
	// cosign finds the bundle through the referrers API: `cosign tree` lists it, and
	// `cosign verify-attestation --new-bundle-format` fetches and verifies it up to the
	// subject check, which fails because the statement is about the release's file, not
	// the release manifest cosign was given (Cairn's attestations are per file).
	out, errs, code := u.run(t, cmd{}, cosign, "tree", "--allow-http-registry", "--experimental-oci11", host+"/hello@"+relDigest)
	if code != 0 || !strings.Contains(out, api.ArtifactTypeSigstoreBundle+" artifacts via OCI referrer: "+host+"/hello@"+d.Referrers[0].Digest) {
		t.Fatalf("cosign tree of the release: exit %d\n%s\n%s", code, out, errs)
	}
	out, errs, code = u.run(t, cmd{}, cosign, "verify-attestation", "--new-bundle-format", "--allow-http-registry",
		"--trusted-root", trPath, "--certificate-identity", "alice@hello.dev", "--certificate-oidc-issuer", is.URL,
		"--insecure-ignore-sct", "--use-signed-timestamps", "--type", cairnclient.PredicateEndorsement, host+"/hello@"+relDigest)
	if code == 0 || !strings.Contains(errs, "provided artifact digest does not match any digest in statement") {
		t.Fatalf("cosign verify-attestation of the release (want: found, verified, refused at the subject check): exit %d\n%s\n%s", code, out, errs)
	}
}

// TestAttestCosignMadeBundleAccepted: the other way round, a bundle that `cosign
// attest-blob --new-bundle-format` (cosign v3.1.3: see sigstoretest.CosignVersion for why
// not v2.6.5) signs keylessly against the test's Fulcio, Rekor v2 and TSA, with a token of
// the test's OIDC issuer, is accepted by the server as it is, committed by the next
// publish, listed as a referrer of the release, and counted by 'cairn attestations' (which
// verifies it again offline against the trusted root it got through TUF). A bundle that
// `cosign attest --new-bundle-format` attaches to the release artifact over OCI is
// verified and counted by 'cairn get oci://'.
func TestAttestCosignMadeBundleAccepted(t *testing.T) {
	rekortest.Require(t)
	oras, cosign := ociClient(t, "oras"), sigstoretest.Cosign(t)
	is := sigstoretest.NewIssuer(t)
	fulcio := sigstoretest.StartFulcio(t, is)
	tsa := sigstoretest.StartTSA(t)
	rekor := rekortest.Start(t)
	trustedRoot := sigstoretest.TrustedRoot(t, fulcio, rekor, tsa)
	r, maint, rootFile := newAttestedHello(t, "e2e_attest_cosign", trustedRoot)
	ctx := t.Context()
	content := []byte("hello, world: attested by cosign")
	releaseHello(t, maint, "1.0.0", content)
	fileSum := sha256.Sum256(content)
	fileHex := hex.EncodeToString(fileSum[:])

	u := newOCIUser(t)
	dir := t.TempDir()
	trPath := writeFile(t, dir, "trusted_root.json", trustedRoot)
	filePath := writeFile(t, dir, "hello-1.0.0.tar.gz", content)
	scPath := writeFile(t, dir, "signing_config.json", signingConfig(t, is, fulcio, rekor, tsa))
	predPath := writeFile(t, dir, "predicate.json", []byte(`{"review":"looks good"}`))
	// cosign reads --identity-token as a file when it can stat it (a token is too long a
	// name): a file also keeps the token out of the logged command line.
	attestAs := func(email, out string) []byte {
		t.Helper()
		tok := writeFile(t, dir, email+".jwt", []byte(is.Token(t, email, 5*time.Minute)))
		u.ok(t, cmd{}, cosign, "attest-blob", "--new-bundle-format", "--yes", "--bundle", out,
			"--signing-config", scPath, "--trusted-root", trPath, "--identity-token", tok,
			"--predicate", predPath, "--type", "https://cairn.dev/review/v1", filePath)
		made, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return made
	}
	made := attestAs("bob@hello.dev", filepath.Join(dir, "bob.sigstore.json"))
	res := r.Do(t, http.MethodPost, "/api/v1/attestations/"+fileHex, r.AdminToken, api.MediaSigstoreBundle, made)
	if res.Status != http.StatusCreated {
		t.Fatalf("the server refused cosign's bundle: %d %s", res.Status, res.Body)
	}
	var a api.Attestation
	if err := json.Unmarshal(res.Body, &a); err != nil || a.Identity.SAN != "bob@hello.dev" || a.Identity.Issuer != is.URL || a.PredicateType != "https://cairn.dev/review/v1" {
		t.Fatalf("stored %+v (%v)", a, err)
	}
	// The same bundle twice is a duplicate; a bundle about other bytes is refused.
	if res := r.Do(t, http.MethodPost, "/api/v1/attestations/"+fileHex, r.AdminToken, api.MediaSigstoreBundle, made); res.Status != http.StatusConflict {
		t.Fatalf("cosign's bundle posted twice: %d %s", res.Status, res.Body)
	}
	other := writeFile(t, dir, "other.tar.gz", []byte("not the release"))
	tok := writeFile(t, dir, "carol.jwt", []byte(is.Token(t, "carol@hello.dev", 5*time.Minute)))
	otherOut := filepath.Join(dir, "other.sigstore.json")
	u.ok(t, cmd{}, cosign, "attest-blob", "--new-bundle-format", "--yes", "--bundle", otherOut,
		"--signing-config", scPath, "--trusted-root", trPath, "--identity-token", tok,
		"--predicate", predPath, "--type", "https://cairn.dev/review/v1", other)
	wrong, err := os.ReadFile(otherOut)
	if err != nil {
		t.Fatal(err)
	}
	if res := r.Do(t, http.MethodPost, "/api/v1/attestations/"+fileHex, r.AdminToken, api.MediaSigstoreBundle, wrong); res.Status == http.StatusCreated || !strings.Contains(string(res.Body), string(api.CodeAttestationSubject)) {
		t.Fatalf("a cosign bundle about other bytes: %d %s", res.Status, res.Body)
	}
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}

	host := strings.TrimPrefix(r.URL, "http://")
	u.ok(t, cmd{stdin: r.AdminToken}, oras, "login", "--plain-http", "-u", "cairn", "--password-stdin", host)
	out := u.ok(t, cmd{}, oras, "discover", "--plain-http", "--format", "json", "--artifact-type", api.ArtifactTypeSigstoreBundle, host+"/hello:1.0.0")
	var d orasDiscovery
	if err := json.Unmarshal([]byte(out), &d); err != nil || len(d.Referrers) != 1 || d.Referrers[0].Annotations[api.AnnotationBundlePredicateType] != "https://cairn.dev/review/v1" {
		t.Fatalf("oras discover after cosign's attestation: %v: %s", err, out)
	}
	var proof proofJSON
	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	if err := json.Unmarshal([]byte(dl.ok(t, "attestations", "hello@1.0.0", "--output", "json")), &proof); err != nil {
		t.Fatal(err)
	}
	if p := proof.Files[0]; p.Committed != 1 || len(p.Identities) != 1 || p.Identities[0].SAN != "bob@hello.dev" {
		t.Fatalf("cairn attestations after cosign's attestation: %+v", p)
	}

	// And what cosign attaches over OCI: `cosign attest --new-bundle-format` on the release
	// artifact pushes a bundle about the release manifest as a referrer, which
	// 'cairn get oci://' verifies (with bob's committed one, two identities) and counts.
	relDigest := strings.TrimSpace(u.ok(t, cmd{}, oras, "resolve", "--plain-http", host+"/hello:1.0.0"))
	u.ok(t, cmd{stdin: r.AdminToken}, cosign, "login", host, "-u", "cairn", "--password-stdin")
	dave := writeFile(t, dir, "dave.jwt", []byte(is.Token(t, "dave@hello.dev", 5*time.Minute)))
	u.ok(t, cmd{}, cosign, "attest", "--new-bundle-format", "--yes", "--allow-insecure-registry", "--allow-http-registry",
		"--signing-config", scPath, "--trusted-root", trPath, "--identity-token", dave,
		"--predicate", predPath, "--type", "https://cairn.dev/review/v1", host+"/hello@"+relDigest)
	get := newCLI(t, r.AdminToken)
	get.ok(t, "init", "--server", r.URL, "--root", rootFile)
	policy := writePolicy(t, "global:\n  trusted_identities:\n    - san_regexp: \".*@hello[.]dev\"\n      issuer: "+is.URL+"\n  require_identities: 2\n")
	got := t.TempDir()
	code, stdout, stderr := get.run(t, "get", "oci://"+host+"/hello@"+relDigest, "--output-dir", got, "--policy", policy)
	if code != 0 || !strings.Contains(stderr, "2 verified attestations from 2 distinct identities") {
		t.Fatalf("cairn get oci:// after cosign attest: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(got, "hello-1.0.0.tar.gz")); err != nil || string(b) != string(content) {
		t.Fatalf("the fetched file: %q %v", b, err)
	}

	// `cosign attest --key`: a bundle signed with a key pair of cosign's own (no
	// certificate; logged in Rekor v2 with a TSA timestamp), verified by 'cairn get oci://
	// --key cosign.pub' as cosign verify --key would. Another key finds none and exits 4,
	// and without --key the bundle is not counted.
	pw := []string{"COSIGN_PASSWORD=correct horse"}
	u.ok(t, cmd{dir: dir, env: pw}, cosign, "generate-key-pair")
	otherDir := t.TempDir()
	u.ok(t, cmd{dir: otherDir, env: pw}, cosign, "generate-key-pair")
	u.ok(t, cmd{env: pw}, cosign, "attest", "--new-bundle-format", "--yes", "--allow-insecure-registry", "--allow-http-registry",
		"--key", filepath.Join(dir, "cosign.key"), "--signing-config", scPath, "--trusted-root", trPath,
		"--predicate", predPath, "--type", "https://cairn.dev/review/v1", host+"/hello@"+relDigest)
	code, stdout, stderr = get.run(t, "get", "oci://"+host+"/hello@"+relDigest, "--output-dir", t.TempDir(), "--key", filepath.Join(dir, "cosign.pub"))
	if code != 0 || !strings.Contains(stderr, "3 verified attestations from 3 distinct identities") {
		t.Fatalf("cairn get oci:// --key after cosign attest --key: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = get.run(t, "get", "oci://"+host+"/hello@"+relDigest, "--output-dir", t.TempDir(), "--key", filepath.Join(otherDir, "cosign.pub"))
	if code != int(cairnclient.ExitPolicy) || !strings.Contains(stderr, "no attestation of hello-1.0.0.tar.gz verifies with the --key given") {
		t.Fatalf("cairn get oci:// with another key: exit %d, %s", code, stderr)
	}
	code, _, stderr = get.run(t, "get", "oci://"+host+"/hello@"+relDigest, "--output-dir", t.TempDir())
	if code != 0 || !strings.Contains(stderr, "2 verified attestations from 2 distinct identities (1 attached bundles did not verify") {
		t.Fatalf("cairn get oci:// without --key: exit %d, %s", code, stderr)
	}
}
