package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/attest/attesttest"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/internal/daemon"
	"github.com/cairn-dev/cairn/internal/testdb"
	"github.com/cairn-dev/cairn/internal/testrepo"
	"github.com/sigstore/sigstore-go/pkg/sign"
)

const testIssuer = "https://accounts.example.com"

// runSigning runs cairn with 'cairn attest' signing through k (sigstore-go's pkg/sign
// against the in-process VirtualSigstore) instead of Fulcio and Rekor on the network.
func (c *cli) runSigning(k *attesttest.Keyless, args ...string) result {
	c.t.Helper()
	var out, errb bytes.Buffer
	a := &app{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb, env: func(key string) string { return c.vars[key] },
		newKeylessSigner: func(s client.SigningServices) (*client.KeylessSigner, error) {
			// The real constructor checks the flags; its signer is replaced by the fakes.
			if _, err := client.NewKeylessSigner(s); err != nil {
				return nil, err
			}
			return &client.KeylessSigner{CA: k, Logs: []sign.Transparency{k}, NewKeypair: k.NewKeypair}, nil
		}}
	code := mainApp(a, args)
	return result{code, out.String(), errb.String()}
}

// attestRepo boots a real cairnd whose Sigstore trusted root is sig's, with release
// widget 1.0 (two files) uploaded by alice; it returns the server and an attester's CLI
// (its own home, an API token).
func attestRepo(t *testing.T, db string, sig *attesttest.Sigstore) (*testrepo.Repo, *cli, map[string][]byte) {
	t.Helper()
	trFile := writeFile(t, t.TempDir(), "trusted_root.json", string(sig.TrustedRoot(t)))
	u, drop, err := testdb.Create(db)
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, func(c *daemon.Config) { c.SigstoreTrustedRoot = trFile })
	t.Cleanup(drop)
	rootFile := writeFile(t, t.TempDir(), "root.json", string(r.RootJSON))
	m := newCLI(t)
	m.vars["CAIRN_TOKEN"] = r.AdminToken
	m.ok("init", "--server", r.URL, "--root", rootFile)
	m.ok("key", "generate", "--name", "alice")
	m.ok("project", "create", "widget", "--key", "alice")
	files := map[string][]byte{"widget-1.0.tar.gz": []byte("source code"), "widget-1.0.whl": []byte("wheel")}
	dist := t.TempDir()
	var paths []string
	for name, body := range files {
		paths = append(paths, writeFile(t, dist, name, string(body)))
	}
	m.ok(append([]string{"upload", "widget", "1.0", "--key", "alice"}, paths...)...)

	c := newCLI(t)
	c.vars["CAIRN_TOKEN"] = r.AdminToken
	c.ok("init", "--server", r.URL, "--root", rootFile)
	return r, c, files
}

func countAttestations(t *testing.T, r *testrepo.Repo) int {
	t.Helper()
	var n int
	if err := r.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM attestations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAttestKeyless: 'cairn attest' signs one statement about both files of a release
// with sigstore-go's pkg/sign (certificate for the token's identity, log entry), verifies
// it against the trusted root it got through TUF, and attaches it to each file; the
// server stores it, and 'cairn attestations' verifies and counts it once committed.
func TestAttestKeyless(t *testing.T) {
	sig := attesttest.New(t)
	r, c, _ := attestRepo(t, "cli_attest", sig)
	k := sig.Keyless("carol@hello.dev", testIssuer)
	tokFile := writeFile(t, t.TempDir(), "token", attesttest.IDToken("carol@hello.dev", testIssuer, time.Now().Add(5*time.Minute))+"\n")

	res := c.runSigning(k, "attest", "widget@1.0", "--identity-token", "@"+tokFile, "--output", "json")
	if res.code != 0 {
		t.Fatalf("attest: exit %d\n%s", res.code, res.stderr)
	}
	var out attestOutput
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, res.stdout)
	}
	if len(out.Files) != 2 || out.Identity.SAN != "carol@hello.dev" || out.Identity.Issuer != testIssuer || k.Requests != 1 || k.Entries != 1 {
		t.Fatalf("attest output %s; %d certificates, %d log entries (want one of each)", res.stdout, k.Requests, k.Entries)
	}
	for _, f := range out.Files {
		if f.Attestation == nil || f.Attestation.PredicateType != client.PredicateEndorsement || f.Attestation.FileSHA256 != f.File.SHA256 {
			t.Fatalf("file result %+v", f)
		}
	}
	if !strings.Contains(res.stderr, "as carol@hello.dev (issuer "+testIssuer+", token from --identity-token @") {
		t.Errorf("stderr does not name the identity and the token's source: %s", res.stderr)
	}

	// A predicate of the signer's own, about one file, with the token from the environment.
	pred := writeFile(t, t.TempDir(), "review.json", `{"verdict": "looks good", "reviewed": ["src/"]}`)
	c.vars["SIGSTORE_ID_TOKEN"] = attesttest.IDToken("carol@hello.dev", testIssuer, time.Now().Add(5*time.Minute))
	res = c.runSigning(k, "attest", "widget@1.0", "--file", "widget-1.0.whl", "--predicate", pred, "--type", "https://cairn.dev/review/v1")
	if res.code != 0 || !strings.Contains(res.stdout, "widget-1.0.whl: attached attestation") || strings.Contains(res.stdout, "tar.gz") {
		t.Fatalf("attest --predicate: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if n := countAttestations(t, r); n != 3 {
		t.Fatalf("the server has %d attestations; want 3 (two files, then one)", n)
	}

	if _, err := r.Server.Publisher().PublishOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	var proof attestationsOutput
	if err := json.Unmarshal([]byte(c.ok("attestations", "widget@1.0", "--output", "json")), &proof); err != nil {
		t.Fatal(err)
	}
	for _, p := range proof.Files {
		want := map[string]int{"widget-1.0.tar.gz": 1, "widget-1.0.whl": 2}[filepath.Base(p.Path)]
		if p.Committed != want || len(p.Identities) != 1 || p.Identities[0].SAN != "carol@hello.dev" {
			t.Errorf("%s: %d committed, identities %v; want %d by carol", p.Path, p.Committed, p.Identities, want)
		}
	}
}

// TestAttestRefusesBadInput: every bad input is refused with its own error, before
// anything is signed or logged (the fake CA and log were never called) and with nothing
// stored on the server.
func TestAttestRefusesBadInput(t *testing.T) {
	sig := attesttest.New(t)
	r, c, _ := attestRepo(t, "cli_attest_bad", sig)
	k := sig.Keyless("carol@hello.dev", testIssuer)
	dir := t.TempDir()
	good := "@" + writeFile(t, dir, "token", attesttest.IDToken("carol@hello.dev", testIssuer, time.Now().Add(5*time.Minute)))
	expired := "@" + writeFile(t, dir, "expired", attesttest.IDToken("carol@hello.dev", testIssuer, time.Now().Add(-time.Minute)))
	other := "@" + writeFile(t, dir, "other", attesttest.IDToken("mallory@evil.example", testIssuer, time.Now().Add(5*time.Minute)))
	big := writeFile(t, dir, "big.json", `{"x":"`+strings.Repeat("a", client.MaxPredicateBytes)+`"}`)
	notJSON := writeFile(t, dir, "notjson.json", `{"verdict": `)
	array := writeFile(t, dir, "array.json", `["a"]`)
	float := writeFile(t, dir, "float.json", `{"score": 0.5}`)
	dup := writeFile(t, dir, "dup.json", `{"a": 1, "a": 2}`)
	const typ = "https://cairn.dev/review/v1"

	for _, tc := range []struct {
		name  string
		args  []string
		noAPI bool // no API token
		code  int
		want  string
		// signed: the fake CA issued a certificate (the failure comes after).
		signed bool
	}{
		{"unknown release", []string{"widget@9.9", "--identity-token", good}, false, 20, "has no release \"9.9\"", false},
		{"unknown project", []string{"nosuch@1.0", "--identity-token", good}, false, 20, "nosuch", false},
		{"no version", []string{"widget", "--identity-token", good}, false, 10, "name the release: widget@VERSION", false},
		{"unknown file", []string{"widget@1.0", "--file", "nosuch.zip", "--identity-token", good}, false, 20, "has no file among [nosuch.zip]", false},
		{"predicate missing", []string{"widget@1.0", "--predicate", filepath.Join(dir, "nope.json"), "--type", typ, "--identity-token", good}, false, 20, "no such file", false},
		{"predicate not JSON", []string{"widget@1.0", "--predicate", notJSON, "--type", typ, "--identity-token", good}, false, 10, "is not valid JSON", false},
		{"predicate not an object", []string{"widget@1.0", "--predicate", array, "--type", typ, "--identity-token", good}, false, 10, "must hold a JSON object", false},
		{"predicate oversized", []string{"widget@1.0", "--predicate", big, "--type", typ, "--identity-token", good}, false, 4, "at most 524288 are allowed", false},
		{"predicate with a fraction", []string{"widget@1.0", "--predicate", float, "--type", typ, "--identity-token", good}, false, 10, "would be refused by the server; nothing was signed", false},
		{"predicate with a duplicate key", []string{"widget@1.0", "--predicate", dup, "--type", typ, "--identity-token", good}, false, 10, "would be refused by the server", false},
		{"predicate without type", []string{"widget@1.0", "--predicate", float, "--identity-token", good}, false, 10, "needs --type URI", false},
		{"type not a URI", []string{"widget@1.0", "--type", "review", "--identity-token", good}, false, 10, "not an absolute URI", false},
		{"no identity token", []string{"widget@1.0"}, false, 10, "none was found: pass --identity-token", false},
		{"token file missing", []string{"widget@1.0", "--identity-token", "@" + filepath.Join(dir, "nope")}, false, 10, "--identity-token @", false},
		{"token not a JWT", []string{"widget@1.0", "--identity-token", "not-a-token"}, false, 10, "is not a JWT", false},
		{"token expired", []string{"widget@1.0", "--identity-token", expired}, false, 4, "expired at", false},
		{"no API token", []string{"widget@1.0", "--identity-token", good}, true, 10, "needs an API token", false},
		{"rekor v2 without a TSA", []string{"widget@1.0", "--identity-token", good, "--rekor-version", "2"}, false, 10, "name a timestamp authority (--tsa-url)", false},
		{"plain HTTP Fulcio", []string{"widget@1.0", "--identity-token", good, "--fulcio-url", "http://fulcio.example"}, false, 10, "plain HTTP is allowed only to a loopback address", false},
		{"CA refuses the token", []string{"widget@1.0", "--identity-token", other}, false, 20, "the token is for \"mallory@evil.example\"", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.noAPI {
				c.vars["CAIRN_TOKEN"] = ""
				defer func() { c.vars["CAIRN_TOKEN"] = r.AdminToken }()
			}
			k.Requests, k.Entries = 0, 0
			res := c.runSigning(k, append([]string{"attest"}, tc.args...)...)
			if res.code != tc.code || !strings.Contains(res.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", res.code, res.stderr, tc.code, tc.want)
			}
			if k.Entries != 0 || (k.Requests != 0) != tc.signed {
				t.Errorf("%d certificates issued, %d log entries made", k.Requests, k.Entries)
			}
			if strings.Contains(res.stderr, "eyJ") {
				t.Errorf("stderr shows the token: %s", res.stderr)
			}
			if n := countAttestations(t, r); n != 0 {
				t.Fatalf("the server stores %d attestations after a refusal", n)
			}
		})
	}

	// A Sigstore the repository does not trust: sigstore-go's own check after signing
	// refuses the bundle, and nothing reaches the server.
	stranger := attesttest.New(t).Keyless("carol@hello.dev", testIssuer)
	res := c.runSigning(stranger, "attest", "widget@1.0", "--identity-token", good)
	if res.code == 0 || !strings.Contains(res.stderr, "verification against the repository's trusted root") || !strings.Contains(res.stderr, "nothing was uploaded") {
		t.Fatalf("untrusted Sigstore: exit %d, stderr %s", res.code, res.stderr)
	}
	if n := countAttestations(t, r); n != 0 {
		t.Fatalf("the server stores %d attestations from an untrusted Sigstore", n)
	}
}
