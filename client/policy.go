package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/attest"
	"gopkg.in/yaml.v3"
)

// ErrPolicy: attestations verified, but a rule of the local policy is not met (exit 4).
var ErrPolicy = errors.New("attestation policy not met")

// MaxPolicyBytes bounds a policy file.
const MaxPolicyBytes = 1 << 20

// IdentityPattern is a trusted signer identity: the certificate SAN, exactly (san) or by
// a regular expression anchored at both ends (san_regexp), and the OIDC issuer, exactly.
type IdentityPattern struct {
	SAN       string `yaml:"san,omitempty" json:"san,omitempty"`
	SANRegexp string `yaml:"san_regexp,omitempty" json:"san_regexp,omitempty"`
	Issuer    string `yaml:"issuer" json:"issuer"`
	re        *regexp.Regexp
}

// Matches reports whether id is this identity.
func (p *IdentityPattern) Matches(id api.SignerIdentity) bool {
	if id.Issuer != p.Issuer {
		return false
	}
	if p.SAN != "" {
		return id.SAN == p.SAN
	}
	return p.re != nil && p.re.MatchString(id.SAN)
}

func (p *IdentityPattern) String() string {
	if p.SAN != "" {
		return p.SAN + " (" + p.Issuer + ")"
	}
	return "/" + p.SANRegexp + "/ (" + p.Issuer + ")"
}

// Provenance requires an SLSA provenance attestation made by a builder (the certificate's
// build signer URI or SAN; a trailing * matches a prefix) from a source repository (the
// certificate's source repository URI; a trailing * matches a prefix).
type Provenance struct {
	Builder          string `yaml:"builder,omitempty" json:"builder,omitempty"`
	SourceRepository string `yaml:"source_repository,omitempty" json:"source_repository,omitempty"`
}

// Rules is one set of attestation rules.
type Rules struct {
	TrustedIdentities []*IdentityPattern `yaml:"trusted_identities,omitempty" json:"trusted_identities,omitempty"`
	// TrustMaintainers trusts attestations signed with a maintainer key of the file's
	// project (cairn attest --key): identities tuf-key:<keyid> from
	// cairn-maintainer:<project>, which the client makes only for keys the project's
	// verified TUF delegation lists.
	TrustMaintainers bool `yaml:"trust_maintainers,omitempty" json:"trust_maintainers,omitempty"`
	// RequireIdentities is how many distinct trusted identities must have attested the
	// file (any verified identity counts when no identity is trusted).
	RequireIdentities int `yaml:"require_identities,omitempty" json:"require_identities,omitempty"`
	// RequirePredicateTypes must each be attested by a trusted identity.
	RequirePredicateTypes []string    `yaml:"require_predicate_types,omitempty" json:"require_predicate_types,omitempty"`
	Provenance            *Provenance `yaml:"provenance,omitempty" json:"provenance,omitempty"`
}

// Policy is the local attestation policy: global rules and rules per project. A project's
// rules replace the global value of every field they set, except trusted identities,
// which add to the global ones.
type Policy struct {
	Global   Rules            `yaml:"global" json:"global"`
	Projects map[string]Rules `yaml:"projects,omitempty" json:"projects,omitempty"`
}

// ParsePolicy reads a YAML policy strictly: unknown fields, duplicate keys, bad regular
// expressions, negative counts and identities without an issuer are refused.
func ParsePolicy(raw []byte) (*Policy, error) {
	if len(raw) > MaxPolicyBytes {
		return nil, api.Errorf(api.CodeTooLarge, "the policy is %d bytes; at most %d are allowed", len(raw), MaxPolicyBytes)
	}
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return nil, api.Wrap(api.CodeBadRequest, err, "the policy is not valid: %v", err)
	}
	if err := p.Global.check("global"); err != nil {
		return nil, err
	}
	for name, r := range p.Projects {
		if err := r.check("projects." + name); err != nil {
			return nil, err
		}
		p.Projects[name] = r
	}
	return &p, nil
}

func (r *Rules) check(where string) error {
	for i, id := range r.TrustedIdentities {
		switch {
		case id == nil:
			return api.Errorf(api.CodeBadRequest, "policy %s.trusted_identities[%d] is empty", where, i)
		case id.Issuer == "":
			return api.Errorf(api.CodeBadRequest, "policy %s.trusted_identities[%d] has no issuer: an identity is a SAN and the OIDC issuer that vouched for it", where, i)
		case (id.SAN == "") == (id.SANRegexp == ""):
			return api.Errorf(api.CodeBadRequest, "policy %s.trusted_identities[%d] needs exactly one of san and san_regexp", where, i)
		case id.SANRegexp != "":
			re, err := regexp.Compile("^(?:" + id.SANRegexp + ")$")
			if err != nil {
				return api.Wrap(api.CodeBadRequest, err, "policy %s.trusted_identities[%d].san_regexp: %v", where, i, err)
			}
			id.re = re
		}
	}
	if r.RequireIdentities < 0 {
		return api.Errorf(api.CodeBadRequest, "policy %s.require_identities is %d; use 0 or more", where, r.RequireIdentities)
	}
	if r.Provenance != nil && r.Provenance.Builder == "" && r.Provenance.SourceRepository == "" {
		return api.Errorf(api.CodeBadRequest, "policy %s.provenance names neither builder nor source_repository", where)
	}
	return nil
}

// For returns the rules that apply to project.
func (p *Policy) For(project string) Rules {
	r := p.Global
	r.TrustedIdentities = slices.Clone(r.TrustedIdentities)
	pr, ok := p.Projects[project]
	if !ok {
		return r
	}
	r.TrustedIdentities = append(r.TrustedIdentities, pr.TrustedIdentities...)
	r.TrustMaintainers = r.TrustMaintainers || pr.TrustMaintainers
	if pr.RequireIdentities != 0 {
		r.RequireIdentities = pr.RequireIdentities
	}
	if pr.RequirePredicateTypes != nil {
		r.RequirePredicateTypes = pr.RequirePredicateTypes
	}
	if pr.Provenance != nil {
		r.Provenance = pr.Provenance
	}
	return r
}

// Empty reports whether the rules require nothing (then attestations need not be fetched).
func (r Rules) Empty() bool {
	return r.RequireIdentities == 0 && len(r.RequirePredicateTypes) == 0 && r.Provenance == nil
}

// trusted reports whether id counts: it matches a trusted identity, or none is configured.
func (r Rules) trusted(id api.SignerIdentity) bool {
	if len(r.TrustedIdentities) == 0 && !r.TrustMaintainers {
		return true
	}
	if r.TrustMaintainers && attest.IsMaintainerIdentity(id) {
		return true
	}
	for _, p := range r.TrustedIdentities {
		if p.Matches(id) {
			return true
		}
	}
	return false
}

// slsaTypes are the SLSA provenance predicate types.
var slsaTypes = []string{"https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2"}

func matchURI(pattern, got string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(got, p)
	}
	return got == pattern
}

// Evaluate checks verified attestations against the rules and names the first rule not
// met (an error wrapping ErrPolicy), or returns nil.
func (r Rules) Evaluate(as []VerifiedAttestation) error {
	trusted := map[api.SignerIdentity]bool{}
	types := map[string]bool{}
	for _, a := range as {
		if r.trusted(a.Identity) {
			trusted[a.Identity] = true
			types[a.PredicateType] = true
		}
	}
	if len(trusted) < r.RequireIdentities {
		who := "verified identities"
		if len(r.TrustedIdentities) > 0 || r.TrustMaintainers {
			who = "trusted identities"
		}
		return fmt.Errorf("%w: require_identities: %d distinct %s attested it; the policy requires %d", ErrPolicy, len(trusted), who, r.RequireIdentities)
	}
	for _, t := range r.RequirePredicateTypes {
		if !types[t] {
			return fmt.Errorf("%w: require_predicate_types: no trusted identity attested %s", ErrPolicy, t)
		}
	}
	if pv := r.Provenance; pv != nil {
		ok := false
		for _, a := range as {
			if !slices.Contains(slsaTypes, a.PredicateType) || !r.trusted(a.Identity) {
				continue
			}
			if pv.Builder != "" && !matchURI(pv.Builder, a.BuildSigner) && !matchURI(pv.Builder, a.Identity.SAN) {
				continue
			}
			if pv.SourceRepository != "" && !matchURI(pv.SourceRepository, a.SourceRepository) {
				continue
			}
			ok = true
			break
		}
		if !ok {
			return fmt.Errorf("%w: provenance: no SLSA provenance by a trusted identity from builder %q and source repository %q", ErrPolicy, pv.Builder, pv.SourceRepository)
		}
	}
	return nil
}
