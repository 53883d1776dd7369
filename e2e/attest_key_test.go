package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"github.com/cairn-dev/cairn/attest/attesttest"
	cairnclient "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/rekortest"
	"github.com/cairn-dev/cairn/internal/sigstoretest"
)

// TestAttestWithMaintainerKeyAndRealRekor: 'cairn attest --key' signs with the
// maintainer's ed25519 key from the CLI key store (as Ed25519ph), logs it in the real
// Rekor v2 with a timestamp from the real TSA, and the server accepts it as
// tuf-key:<keyid> from cairn-maintainer:hello. 'cairn attestations' verifies it against
// the delegation in verified TUF metadata, and a policy trusts it only through
// trust_maintainers. A key the delegation does not list is refused by the CLI before it
// signs, and, logged in Rekor all the same, by the server (attestation_key_unknown) with
// nothing stored.
func TestAttestWithMaintainerKeyAndRealRekor(t *testing.T) {
	rekortest.Require(t)
	is := sigstoretest.NewIssuer(t)
	fulcio := sigstoretest.StartFulcio(t, is) // the trusted root needs a CA; --key uses none
	tsa := sigstoretest.StartTSA(t)
	rekor := rekortest.Start(t)
	r, maint, rootFile := newAttestedHello(t, "e2e_attest_key", sigstoretest.TrustedRoot(t, fulcio, rekor, tsa))
	ctx := context.Background()
	content := []byte("hello, world: signed by a maintainer key")
	releaseHello(t, maint, "1.0.0", content)
	file := attesttest.File("hello-1.0.0.tar.gz", content)
	stored := func() int {
		t.Helper()
		var n int
		if err := r.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM attestations`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	var keys []struct {
		Name  string `json:"name"`
		KeyID string `json:"keyid"`
	}
	if err := json.Unmarshal([]byte(maint.ok(t, "key", "list", "--output", "json")), &keys); err != nil || len(keys) != 1 {
		t.Fatalf("key list: %v %+v", err, keys)
	}
	aliceID := keys[0].KeyID
	wantID := attest.MaintainerIdentity("hello", aliceID)
	runAttest := func(c *cairnCLI, key string, extra ...string) (int, string, string) {
		t.Helper()
		args := append([]string{"attest", "hello@1.0.0", "--key", key, "--rekor-url", rekor.URL, "--rekor-version", "2", "--tsa-url", tsa.URL}, extra...)
		return c.run(t, args...)
	}

	// Refused before anything is signed: an ed25519 key with Rekor v1, keyless flags with
	// --key, a key the delegation does not list.
	maint.ok(t, "key", "generate", "--name", "mallory")
	for _, c := range []struct {
		name  string
		key   string
		extra []string
		want  string
	}{
		{"ed25519 with Rekor v1", "alice", []string{"--rekor-version", "1"}, "Rekor v1"},
		{"an identity token with --key", "alice", []string{"--identity-token", "x"}, "--identity-token is for keyless signing"},
		{"a key the delegation does not list", "mallory", nil, "not a maintainer key of hello"},
	} {
		if code, _, errs := runAttest(maint, c.key, c.extra...); code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, %s (want a refusal naming %q)", c.name, code, errs, c.want)
		}
	}
	if n := stored(); n != 0 {
		t.Fatalf("%d attestations stored after refusals", n)
	}

	code, out, errs := runAttest(maint, "alice")
	if code != 0 || !strings.Contains(out, "hello-1.0.0.tar.gz: attached attestation") || !strings.Contains(out, wantID.SAN) {
		t.Fatalf("cairn attest --key alice: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
		t.Fatal(err)
	}

	// The server refuses a key it does not know even when the log has the entry: signed
	// with a stranger's key, logged in the real Rekor v2, timestamped by the real TSA.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := cairnclient.NewKeySigner(cairnclient.SigningServices{RekorURL: rekor.URL, RekorVersion: 2, TSAURL: tsa.URL})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := attest.NewKeypair(priv, hex.EncodeToString(priv.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := signer.SignStatement(ctx, kp, attesttest.Statement(t, cairnclient.PredicateEndorsement, map[string]string{"project": "hello"}, file))
	if err != nil {
		t.Fatal(err)
	}
	ac, err := cairnclient.NewAPI(r.URL, cairnclient.WithToken(r.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.PostAttestation(ctx, file.SHA256, stranger); api.CodeOf(err) != api.CodeAttestationKeyUnknown {
		t.Fatalf("a stranger's logged key bundle: %v, want %s", err, api.CodeAttestationKeyUnknown)
	}
	if n := stored(); n != 1 {
		t.Fatalf("%d attestations stored, want the maintainer's 1", n)
	}

	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	var proof proofJSON
	out = dl.ok(t, "attestations", "hello@1.0.0", "--output", "json")
	if err := json.Unmarshal([]byte(out), &proof); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if p := proof.Files[0]; p.Committed != 1 || len(p.Identities) != 1 || p.Identities[0].SAN != wantID.SAN || p.Identities[0].Issuer != wantID.Issuer {
		t.Fatalf("attestations after attest --key: %s", out)
	}

	// A mirror carries it, and its offline verification checks it against the delegation
	// in the bundle's verified metadata.
	mbundle := filepath.Join(t.TempDir(), "bundle.tar")
	maint.ok(t, "mirror", "export", "--project", "hello", "-o", mbundle)
	var ver cairnclient.BundleVerification
	if err := json.Unmarshal([]byte(newCLI(t, "").ok(t, "mirror", "verify", mbundle, "--root", rootFile, "-o", "json")), &ver); err != nil {
		t.Fatal(err)
	}
	if ver.Attestations != 1 {
		t.Fatalf("mirror verify = %+v; want the maintainer's 1 attestation", ver)
	}

	// A policy trusting only keyless identities does not count the maintainer key;
	// --trust-maintainers does.
	policy := writePolicy(t, "global:\n  trusted_identities:\n    - san_regexp: \".*@hello[.]dev\"\n      issuer: "+is.URL+"\n  require_identities: 1\n")
	dir := t.TempDir()
	if code, _, errs := dl.run(t, "get", "hello@1.0.0", "--output-dir", dir, "--policy", policy); code != int(cairnclient.ExitPolicy) || !strings.Contains(errs, "require_identities") {
		t.Fatalf("get with only keyless identities trusted: exit %d, %s", code, errs)
	}
	dl.ok(t, "get", "hello@1.0.0", "--output-dir", dir, "--policy", policy, "--trust-maintainers")
	if b, err := os.ReadFile(dir + "/hello-1.0.0.tar.gz"); err != nil || string(b) != string(content) {
		t.Fatalf("get with --trust-maintainers: %q %v", b, err)
	}
}
