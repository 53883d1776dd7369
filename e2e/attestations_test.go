package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	trFile := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(trFile, sig.TrustedRoot(t), 0o600); err != nil {
		t.Fatal(err)
	}
	u, drop, err := testdb.Create("e2e_attest")
	if err != nil {
		t.Fatal(err)
	}
	r := testrepo.Boot(t, u, func(c *daemon.Config) { c.SigstoreTrustedRoot = trFile })
	t.Cleanup(drop)
	ctx := context.Background()

	maint := newCLI(t, r.AdminToken)
	rootFile := filepath.Join(r.Dir, "root.json")
	maint.ok(t, "init", "--server", r.URL, "--root", rootFile)
	maint.ok(t, "key", "generate", "--name", "alice")
	maint.ok(t, "project", "create", "hello", "--key", "alice")
	content := []byte("hello, world: attested")
	f := filepath.Join(t.TempDir(), "hello-1.0.0.tar.gz")
	if err := os.WriteFile(f, content, 0o644); err != nil {
		t.Fatal(err)
	}
	maint.ok(t, "upload", "hello", "1.0.0", f, "--key", "alice")

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
	text := dl.ok(t, "attestations", "hello@1.0.0")
	for _, want := range []string{"3 distinct verified identities", "reviewer@audits.example", "https://spdx.dev/Document by carol@sub.hello.dev"} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}

	// The attacker drops the reviewer's endorsement from what the server lists and serves.
	if _, err := r.DB.Pool.Exec(ctx, `DELETE FROM attestations WHERE san = 'reviewer@audits.example'`); err != nil {
		t.Fatal(err)
	}
	code, _, errs := dl.run(t, "attestations", "hello@1.0.0")
	if code != int(cairnclient.ExitPolicy) || !strings.Contains(errs, "leaves out") {
		t.Fatalf("withheld attestation: exit %d, stderr %s; want exit 4 naming it", code, errs)
	}
	// Until a new snapshot commits the smaller index (a signature by the online key, in the
	// audit log and the transparency log), every client catches it.
}
