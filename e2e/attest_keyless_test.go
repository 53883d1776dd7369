package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cairnclient "github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/rekortest"
	"github.com/cairn-dev/cairn/internal/sigstoretest"
)

// TestAttestKeylessWithRealSigstore: 'cairn attest' against real Sigstore services on
// loopback — an OIDC issuer of our own, Fulcio v1.8.8 with an ephemeral CA, the Rekor v2
// log and a timestamp authority (Rekor v2 records no time) — makes a keyless attestation
// that the server accepts, 'cairn attestations' lists and counts, and that meets a policy
// in 'cairn get'. A policy needing two identities fails with one and passes with two.
func TestAttestKeylessWithRealSigstore(t *testing.T) {
	rekortest.Require(t)
	is := sigstoretest.NewIssuer(t)
	fulcio := sigstoretest.StartFulcio(t, is)
	tsa := sigstoretest.StartTSA(t)
	rekor := rekortest.Start(t)
	r, maint, rootFile := newAttestedHello(t, "e2e_attest_keyless", sigstoretest.TrustedRoot(t, fulcio, rekor, tsa))
	ctx := context.Background()
	content := []byte("hello, world: signed by Fulcio")
	releaseHello(t, maint, "1.0.0", content)

	attester := newCLI(t, r.AdminToken)
	attester.ok(t, "init", "--server", r.URL, "--root", rootFile)
	attest := func(from *sigstoretest.Issuer, email string) (int, string, string) {
		t.Helper()
		tok := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tok, []byte(from.Token(t, email, 5*time.Minute)), 0o600); err != nil {
			t.Fatal(err)
		}
		return attester.run(t, "attest", "hello@1.0.0", "--identity-token", "@"+tok,
			"--fulcio-url", fulcio.URL, "--rekor-url", rekor.URL, "--rekor-version", "2", "--tsa-url", tsa.URL)
	}
	attestAs := func(email string) string {
		t.Helper()
		code, out, errs := attest(is, email)
		if code != 0 {
			t.Fatalf("cairn attest as %s: exit %d\n%s\n%s", email, code, out, errs)
		}
		if _, err := r.Server.Publisher().PublishOnce(ctx); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Fulcio refuses a token from an issuer it does not trust: nothing reaches the server.
	if code, _, errs := attest(sigstoretest.NewIssuer(t), "mallory@hello.dev"); code == 0 || !strings.Contains(errs, "nothing was uploaded") || strings.Contains(errs, "eyJ") {
		t.Fatalf("attest with a token Fulcio does not trust: exit %d, %s (want a refusal that does not show the token)", code, errs)
	}
	var stored int
	if err := r.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM attestations`).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("%d attestations stored after Fulcio refused the token (%v)", stored, err)
	}
	if out := attestAs("alice@hello.dev"); !strings.Contains(out, "hello-1.0.0.tar.gz: attached attestation") || !strings.Contains(out, "alice@hello.dev") {
		t.Fatalf("attest output: %s", out)
	}

	dl := newCLI(t, "")
	dl.ok(t, "init", "--server", r.URL, "--root", rootFile)
	var proof proofJSON
	out := dl.ok(t, "attestations", "hello@1.0.0", "--output", "json")
	if err := json.Unmarshal([]byte(out), &proof); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if p := proof.Files[0]; p.Committed != 1 || len(p.Identities) != 1 || p.Identities[0].SAN != "alice@hello.dev" || p.Identities[0].Issuer != is.URL || len(p.Predicates[cairnclient.PredicateEndorsement]) != 1 {
		t.Fatalf("attestations after one keyless attest: %s", out)
	}

	policy := writePolicy(t, "global:\n  trusted_identities:\n    - san_regexp: \".*@hello[.]dev\"\n      issuer: "+is.URL+"\n  require_identities: 2\n")
	dir := t.TempDir()
	code, _, errs := dl.run(t, "get", "hello@1.0.0", "--output-dir", dir, "--policy", policy)
	if code != int(cairnclient.ExitPolicy) || !strings.Contains(errs, "require_identities") {
		t.Fatalf("get with one identity of two: exit %d, %s", code, errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("get wrote %d files after a policy refusal", len(ents))
	}
	attestAs("bob@hello.dev")
	dl.ok(t, "get", "hello@1.0.0", "--output-dir", dir, "--policy", policy)
	if b, err := os.ReadFile(filepath.Join(dir, "hello-1.0.0.tar.gz")); err != nil || string(b) != string(content) {
		t.Fatalf("get with the policy met: %q %v", b, err)
	}
}

// fakeBrowserOnPath puts an xdg-open first on PATH that opens its URL with this test
// binary (fakeBrowser) in the background and returns at once, as a desktop's does: the
// CLI's login flow opens the browser through the system's opener, untouched.
func fakeBrowserOnPath(t *testing.T) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := "#!/bin/sh\n( " + browserURLEnv + "=\"$1\" '" + self + "' >/dev/null 2>&1 & )\n"
	if err := os.WriteFile(filepath.Join(dir, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// TestAttestWithBrowserLogin: with no token anywhere, 'cairn attest --oidc-issuer' logs in
// through the browser (authorization code + PKCE, the code back on loopback) and the
// attestation carries the identity the issuer logged in.
func TestAttestWithBrowserLogin(t *testing.T) {
	rekortest.Require(t)
	is := sigstoretest.NewIssuer(t)
	fulcio := sigstoretest.StartFulcio(t, is)
	tsa := sigstoretest.StartTSA(t)
	rekor := rekortest.Start(t)
	r, maint, rootFile := newAttestedHello(t, "e2e_attest_browser", sigstoretest.TrustedRoot(t, fulcio, rekor, tsa))
	releaseHello(t, maint, "1.0.0", []byte("hello, world: signed after a browser login"))
	fakeBrowserOnPath(t)
	is.SetLogin("carol@hello.dev")

	attester := newCLI(t, r.AdminToken)
	attester.ok(t, "init", "--server", r.URL, "--root", rootFile)
	code, out, errs := attester.run(t, "attest", "hello@1.0.0", "--oidc-issuer", is.URL,
		"--fulcio-url", fulcio.URL, "--rekor-url", rekor.URL, "--rekor-version", "2", "--tsa-url", tsa.URL)
	if code != 0 {
		t.Fatalf("cairn attest with a browser login: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "carol@hello.dev") || !strings.Contains(errs, "a browser login at "+is.URL) {
		t.Fatalf("attest output does not name the identity and the login:\n%s\n%s", out, errs)
	}
	var san, issuer string
	if err := r.DB.Pool.QueryRow(context.Background(), `SELECT san, issuer FROM attestations`).Scan(&san, &issuer); err != nil || san != "carol@hello.dev" || issuer != is.URL {
		t.Fatalf("stored attestation by %q (%q): %v", san, issuer, err)
	}
}
