package client

import (
	"errors"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/api"
)

const testPolicy = `
global:
  trusted_identities:
    - san: alice@example.com
      issuer: https://accounts.example.com
  require_identities: 1
projects:
  hello:
    trusted_identities:
      - san_regexp: "https://github.com/hello/.*"
        issuer: https://token.actions.githubusercontent.com
    require_identities: 2
    require_predicate_types: [https://slsa.dev/provenance/v1]
    provenance:
      builder: https://github.com/hello/hello/.github/workflows/*
      source_repository: https://github.com/hello/hello
`

func att(san, issuer, typ, builder, source string) VerifiedAttestation {
	var v VerifiedAttestation
	v.Identity = api.SignerIdentity{SAN: san, Issuer: issuer}
	v.PredicateType, v.BuildSigner, v.SourceRepository = typ, builder, source
	return v
}

func TestPolicyEvaluate(t *testing.T) {
	p, err := ParsePolicy([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	const gh, acc = "https://token.actions.githubusercontent.com", "https://accounts.example.com"
	wf := "https://github.com/hello/hello/.github/workflows/release.yml@refs/tags/v1"
	alice := att("alice@example.com", acc, "https://cairn.dev/review/v1", "", "")
	ci := att(wf, gh, "https://slsa.dev/provenance/v1", wf, "https://github.com/hello/hello")
	mallory := att("mallory@example.com", acc, "https://slsa.dev/provenance/v1", "", "")
	forkCI := att("https://github.com/fork/hello/.github/workflows/release.yml@refs/tags/v1", gh, "https://slsa.dev/provenance/v1", "https://github.com/fork/hello/.github/workflows/release.yml", "https://github.com/fork/hello")
	otherSource := att(wf, gh, "https://slsa.dev/provenance/v1", wf, "https://github.com/evil/hello")
	for _, tc := range []struct {
		name    string
		project string
		as      []VerifiedAttestation
		unmet   string // "" if met
	}{
		{"global: one trusted identity", "other", []VerifiedAttestation{alice}, ""},
		{"global: untrusted identity does not count", "other", []VerifiedAttestation{mallory}, "require_identities: 0 distinct trusted"},
		{"global: nothing", "other", nil, "require_identities"},
		{"project: two trusted identities with provenance", "hello", []VerifiedAttestation{alice, ci}, ""},
		{"project: one identity is not two", "hello", []VerifiedAttestation{ci, ci}, "require_identities: 1 distinct"},
		{"project: a fork's CI is not trusted", "hello", []VerifiedAttestation{alice, forkCI}, "require_identities: 1"},
		{"project: provenance from another source", "hello", []VerifiedAttestation{alice, otherSource}, "provenance"},
		{"project: predicate type by an untrusted identity", "hello", []VerifiedAttestation{alice, mallory, ci}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.For(tc.project).Evaluate(tc.as)
			switch {
			case tc.unmet == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.unmet != "" && (err == nil || !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), tc.unmet)):
				t.Fatalf("got %v; want a refusal naming %q", err, tc.unmet)
			}
		})
	}
	if !(Rules{}).Empty() || p.For("hello").Empty() {
		t.Error("Empty")
	}
}

func TestParsePolicyRefusesBadFiles(t *testing.T) {
	for _, tc := range []struct{ name, yaml, says string }{
		{"unknown field", "global:\n  require_identites: 2\n", "not found"},
		{"duplicate key", "global:\n  require_identities: 1\n  require_identities: 2\n", "already defined"},
		{"no issuer", "global:\n  trusted_identities:\n    - san: a@b.c\n", "no issuer"},
		{"both san forms", "global:\n  trusted_identities:\n    - san: a@b.c\n      san_regexp: a\n      issuer: x\n", "exactly one"},
		{"bad regexp", "global:\n  trusted_identities:\n    - san_regexp: \"(\"\n      issuer: x\n", "san_regexp"},
		{"negative count", "global:\n  require_identities: -1\n", "0 or more"},
		{"empty provenance", "global:\n  provenance: {}\n", "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParsePolicy([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v; want an error saying %q", err, tc.says)
			}
		})
	}
	if p, err := ParsePolicy(nil); err != nil || !p.For("x").Empty() {
		t.Fatalf("an empty policy: %v", err)
	}
}

// TestPolicyTrustMaintainers: trust_maintainers counts maintainer-key identities (which
// the client makes only from the project's verified delegation) and nothing else; a
// certificate identity with a look-alike SAN does not count.
func TestPolicyTrustMaintainers(t *testing.T) {
	p, err := ParsePolicy([]byte("global:\n  require_identities: 1\nprojects:\n  hello:\n    trust_maintainers: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	maint := att("tuf-key:aa11", "cairn-maintainer:hello", "https://cairn.dev/endorsement/v1", "", "")
	alice := att("alice@example.com", "https://accounts.example.com", "https://cairn.dev/endorsement/v1", "", "")
	lookalike := att("tuf-key-aa11@example.com", "https://accounts.example.com", "https://cairn.dev/endorsement/v1", "", "")
	for _, tc := range []struct {
		name    string
		project string
		as      []VerifiedAttestation
		unmet   string
	}{
		{"maintainer key counts", "hello", []VerifiedAttestation{maint}, ""},
		{"a certificate identity is not a maintainer", "hello", []VerifiedAttestation{alice, lookalike}, "require_identities: 0 distinct trusted"},
		{"without trust_maintainers any verified identity counts", "other", []VerifiedAttestation{alice}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.For(tc.project).Evaluate(tc.as)
			switch {
			case tc.unmet == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.unmet != "" && (err == nil || !strings.Contains(err.Error(), tc.unmet)):
				t.Fatalf("got %v; want a refusal naming %q", err, tc.unmet)
			}
		})
	}
}
