package cli

import (
	"fmt"
	"math/rand/v2"
	"net/mail"
	"net/url"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/spf13/cobra"
)

// fileProof is the social proof of one release file, as 'cairn attestations --output json'
// prints it.
type fileProof struct {
	Path           string                       `json:"path"`
	SHA256         string                       `json:"sha256"`
	Committed      int                          `json:"committed"`
	Identities     []api.SignerIdentity         `json:"identities"`
	Sample         []api.SignerIdentity         `json:"sample,omitempty"`
	DomainMatches  []api.SignerIdentity         `json:"domain_matches,omitempty"`
	PredicateTypes map[string][]string          `json:"predicate_types"` // type → identities (SAN)
	Attestations   []client.VerifiedAttestation `json:"attestations"`
	Refused        []client.RefusedAttestation  `json:"refused,omitempty"`
}

type attestationsOutput struct {
	Project           string      `json:"project"`
	Version           string      `json:"version"`
	Server            string      `json:"server"`
	SnapshotVersion   int64       `json:"snapshot_version"`
	TrustedRootSHA256 string      `json:"trusted_root_sha256"`
	Files             []fileProof `json:"files"`
}

func (a *app) attestationsCommand() *cobra.Command {
	var (
		output  string
		sample  int
		domains []string
		names   []string
	)
	cmd := &cobra.Command{
		Use:   "attestations NAME@VERSION [--sample N] [--domain D]",
		Short: "Show who vouched for a release: Sigstore attestations, verified here",
		Long: `attestations shows the social proof of each file of release VERSION of project NAME:
how many distinct identities (certificate SAN and OIDC issuer) signed an attestation about
it, a random sample of them (--sample N), the ones whose email or URI domain is one of
--domain (default: the homepage the maintainers declared, 'cairn project links', with URIs
under the declared repository), and which predicate types (provenance, SBOM, review, ...)
each made.

Every bundle is verified on this machine with sigstore-go against the Sigstore trusted
root that the repository publishes through TUF (_cairn/sigstore/trusted_root.json), and
the list is checked against the attestation index that the verified snapshot commits: a
server that leaves a committed attestation out is caught (exit 4). Bundles that do not
verify are shown as refused and never counted.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if sample < 0 {
				return api.Errorf(api.CodeBadRequest, "--sample must be 0 or more")
			}
			project, version, pinned, err := releaseArg(args[0])
			if err != nil {
				return err
			}
			if !pinned {
				return api.Errorf(api.CodeBadRequest, "name the release: %s@VERSION", project)
			}
			repo, pr, err := a.projectRole(project)
			if err != nil {
				return err
			}
			rel, ok := client.FindRelease(pr.Releases(), version)
			if !ok {
				return api.Errorf(api.CodeNotFound, "project %s has no release %q in its verified metadata; see 'cairn releases %s'", project, version, project)
			}
			// The project's own identities: --domain, else the links its maintainers signed
			// into the verified role (never the server's say-so).
			match := identityMatcher{domains: domains}
			if len(domains) == 0 {
				links := client.ProjectLinksOf(pr.Metadata)
				if h := links.Host(); h != "" {
					match.domains = []string{h}
				}
				match.repository = links.Repository
			}
			files := rel.Files
			if len(names) > 0 {
				files = slices.DeleteFunc(slices.Clone(files), func(f api.File) bool { return !slices.Contains(names, f.Name) })
				if len(files) != len(names) {
					return api.Errorf(api.CodeNotFound, "release %s %s has no file among %v", project, version, names)
				}
			}
			rest, err := a.apiClient()
			if err != nil {
				return err
			}
			out := attestationsOutput{Project: project, Version: version, Server: repo.Server()}
			for _, f := range files {
				set, err := client.VerifyFileAttestations(a.ctx, repo, rest, f)
				if err != nil {
					return fmt.Errorf("attestations of %s: %w", f.Path, err)
				}
				out.SnapshotVersion, out.TrustedRootSHA256 = set.SnapshotVersion, set.TrustedRootSHA256
				out.Files = append(out.Files, proofOf(f, set, sample, match))
			}
			if output == "json" {
				return a.printJSON(out)
			}
			a.notef("Verified %s %s through snapshot %d of %s; Sigstore trusted root sha256 %s (through TUF).\n", project, version, out.SnapshotVersion, out.Server, out.TrustedRootSHA256)
			for _, p := range out.Files {
				a.printf("\n%s (sha256 %s)\n", p.Path, p.SHA256)
				a.printf("  %d distinct verified identities, %d attestations (%d committed in the snapshot)\n", len(p.Identities), len(p.Attestations), p.Committed)
				list := p.Identities
				if sample > 0 {
					a.printf("  random sample of %d:\n", len(p.Sample))
					list = p.Sample
				}
				for _, id := range list {
					a.printf("    %s\n", id)
				}
				if d := match.String(); d != "" {
					a.printf("  matching %s: %d\n", d, len(p.DomainMatches))
					for _, id := range p.DomainMatches {
						a.printf("    %s\n", id)
					}
				}
				for _, t := range slices.Sorted(func(yield func(string) bool) {
					for k := range p.PredicateTypes {
						if !yield(k) {
							return
						}
					}
				}) {
					a.printf("  %s by %s\n", t, strings.Join(p.PredicateTypes[t], ", "))
				}
				for _, r := range p.Refused {
					a.printf("  refused %s: %s\n", r.BundleSHA256, r.Reason)
				}
			}
			return nil
		}),
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().IntVar(&sample, "sample", 0, "show a random sample of N identities instead of all")
	cmd.Flags().StringSliceVar(&domains, "domain", nil, "show the identities whose email or URI domain is D or under it (repeatable)")
	cmd.Flags().StringSliceVar(&names, "file", nil, "only this file of the release (repeatable)")
	return cmd
}

// identityMatcher tells the identities that belong to the project: an email or URI under
// one of domains, or a URI under the repository.
type identityMatcher struct {
	domains    []string
	repository string
}

func (m identityMatcher) matches(san string) bool {
	if domainMatches(san, m.domains) {
		return true
	}
	return m.repository != "" && strings.HasPrefix(san, strings.TrimSuffix(m.repository, "/")+"/")
}

// String names what is matched, for the text output ("" when nothing is).
func (m identityMatcher) String() string {
	parts := slices.Clone(m.domains)
	if m.repository != "" {
		parts = append(parts, m.repository+"/…")
	}
	return strings.Join(parts, ", ")
}

func proofOf(f api.File, set *client.AttestationSet, sample int, match identityMatcher) fileProof {
	p := fileProof{Path: f.Path, SHA256: f.SHA256, Committed: set.Committed, Identities: set.Identities(), PredicateTypes: map[string][]string{}, Attestations: set.Attestations, Refused: set.Refused}
	if p.Identities == nil {
		p.Identities = []api.SignerIdentity{}
	}
	if sample > 0 {
		p.Sample = slices.Clone(p.Identities)
		rand.Shuffle(len(p.Sample), func(i, j int) { p.Sample[i], p.Sample[j] = p.Sample[j], p.Sample[i] })
		p.Sample = p.Sample[:min(sample, len(p.Sample))]
	}
	for _, id := range p.Identities {
		if match.matches(id.SAN) {
			p.DomainMatches = append(p.DomainMatches, id)
		}
	}
	for _, at := range set.Attestations {
		if !slices.Contains(p.PredicateTypes[at.PredicateType], at.Identity.SAN) {
			p.PredicateTypes[at.PredicateType] = append(p.PredicateTypes[at.PredicateType], at.Identity.SAN)
		}
	}
	return p
}

// domainMatches reports whether an identity's email domain or URI host is one of domains
// or a subdomain of one.
func domainMatches(san string, domains []string) bool {
	host := ""
	if addr, err := mail.ParseAddress(san); err == nil && strings.Contains(addr.Address, "@") {
		host = addr.Address[strings.LastIndexByte(addr.Address, '@')+1:]
	} else if u, err := url.Parse(san); err == nil {
		host = u.Hostname()
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return false
	}
	for _, d := range domains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(d, "."), "."))
		if d != "" && (host == d || strings.HasSuffix(host, "."+d)) {
			return true
		}
	}
	return false
}
