package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// policyFlags are the attestation policy flags of 'cairn get' and 'cairn policy': a policy
// file (default <home>/policy.yaml) and rules that add to it for this command.
type policyFlags struct {
	file              string
	trust             []string
	requireIdentities int
	requireTypes      []string
	builder, source   string
	trustMaintainers  bool
}

func (f *policyFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.file, "policy", "", "attestation policy `FILE` (YAML; default: policy.yaml in the cairn config directory, if it exists)")
	cmd.Flags().StringArrayVar(&f.trust, "trust-identity", nil, "trust the signer identity `SAN=ISSUER` (certificate SAN and OIDC issuer; repeatable)")
	cmd.Flags().BoolVar(&f.trustMaintainers, "trust-maintainers", false, "trust attestations signed with a maintainer key of the project, as its verified TUF delegation lists it (cairn attest --key)")
	cmd.Flags().IntVar(&f.requireIdentities, "require-identities", 0, "require attestations by at least N distinct trusted identities")
	cmd.Flags().StringArrayVar(&f.requireTypes, "require-predicate-type", nil, "require an attestation of this predicate type by a trusted identity (repeatable)")
	cmd.Flags().StringVar(&f.builder, "require-builder", "", "require SLSA provenance from this builder (build signer URI or SAN; a trailing * matches a prefix)")
	cmd.Flags().StringVar(&f.source, "require-source", "", "require SLSA provenance from this source repository URI (a trailing * matches a prefix)")
}

func policyPath(home string) string { return filepath.Join(home, "policy.yaml") }

// loadPolicy reads the policy file named by --policy, or the default one if it exists.
func (a *app) loadPolicy(f *policyFlags) (*client.Policy, string, error) {
	path := f.file
	if path == "" {
		home, err := a.home()
		if err != nil {
			return nil, "", err
		}
		path = policyPath(home)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return &client.Policy{}, "", nil
		}
	}
	raw, err := readBounded(path, client.MaxPolicyBytes)
	if err != nil {
		return nil, "", fmt.Errorf("reading the policy: %w", err)
	}
	p, err := client.ParsePolicy(raw)
	if err != nil {
		return nil, "", fmt.Errorf("policy %s: %w", path, err)
	}
	return p, path, nil
}

func readBounded(path string, max int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, api.Errorf(api.CodeTooLarge, "%s is %d bytes; at most %d are allowed", path, st.Size(), max)
	}
	buf := make([]byte, st.Size())
	_, err = fh.ReadAt(buf, 0)
	if err != nil && st.Size() > 0 {
		return nil, err
	}
	return buf, nil
}

// rules returns the rules for project: the policy file's, then the flags'.
func (a *app) policyRules(f *policyFlags, project string) (client.Rules, error) {
	p, _, err := a.loadPolicy(f)
	if err != nil {
		return client.Rules{}, err
	}
	extra := client.Rules{RequireIdentities: f.requireIdentities, RequirePredicateTypes: f.requireTypes, TrustMaintainers: f.trustMaintainers}
	for _, t := range f.trust {
		san, issuer, ok := strings.Cut(t, "=")
		if !ok || san == "" || issuer == "" {
			return client.Rules{}, api.Errorf(api.CodeBadRequest, "--trust-identity %q: use SAN=ISSUER, e.g. alice@example.com=https://accounts.google.com", t)
		}
		extra.TrustedIdentities = append(extra.TrustedIdentities, &client.IdentityPattern{SAN: san, Issuer: issuer})
	}
	if f.builder != "" || f.source != "" {
		extra.Provenance = &client.Provenance{Builder: f.builder, SourceRepository: f.source}
	}
	if f.requireIdentities < 0 {
		return client.Rules{}, api.Errorf(api.CodeBadRequest, "--require-identities must be 0 or more")
	}
	// The flags act as one more project section over the file's rules.
	merged := client.Policy{Global: p.For(project), Projects: map[string]client.Rules{project: extra}}
	return merged.For(project), nil
}

// checkAttestationPolicy verifies the attestations of each file and applies rules; the
// first unmet rule is an exit-4 error naming the file and the rule.
func (a *app) checkAttestationPolicy(repo *client.Repo, rules client.Rules, files []api.File) error {
	if rules.Empty() {
		return nil
	}
	rest, err := a.apiClient()
	if err != nil {
		return err
	}
	for _, f := range files {
		set, err := client.VerifyFileAttestations(a.ctx, repo, rest, f)
		if err != nil {
			return fmt.Errorf("attestations of %s: %w", f.Path, err)
		}
		if err := rules.Evaluate(set.Attestations); err != nil {
			return &client.VerifyError{Code: client.ExitPolicy, Target: f.Path, Detail: err.Error() + " (nothing was written)", Err: err}
		}
		a.notef("Policy met for %s: %d distinct verified identities.\n", f.Path, len(set.Identities()))
	}
	return nil
}

func (a *app) policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Show and check the local attestation policy that 'cairn get' applies",
		Long: `The attestation policy is a YAML file, policy.yaml in the cairn config directory (or
--policy FILE), plus the flags of 'cairn get'. It says which signer identities you trust
(certificate SAN, exactly or by regular expression, and OIDC issuer), globally or per
project, how many distinct trusted identities must have attested a file, which predicate
types are required, and which builder and source repository SLSA provenance must come
from. 'cairn get' verifies every attestation offline and exits 4 naming the first unmet
rule, writing nothing.

  global:
    trusted_identities:
      - san: alice@example.com
        issuer: https://accounts.google.com
    require_identities: 1
  projects:
    hello:
      trusted_identities:
        - san_regexp: https://github.com/hello/hello/.github/workflows/.*
          issuer: https://token.actions.githubusercontent.com
      require_identities: 2
      require_predicate_types: [https://slsa.dev/provenance/v1]
      provenance:
        builder: https://github.com/hello/hello/.github/workflows/*
        source_repository: https://github.com/hello/hello`,
	}
	var pf policyFlags
	var project, output string
	show := &cobra.Command{
		Use:   "show [--project NAME]",
		Short: "Print the policy, or the rules that apply to one project",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			p, path, err := a.loadPolicy(&pf)
			if err != nil {
				return err
			}
			var v any = p
			if project != "" {
				r, err := a.policyRules(&pf, project)
				if err != nil {
					return err
				}
				v = r
			}
			if output == "json" {
				return a.printJSON(v)
			}
			if path == "" {
				a.notef("No policy file (%s); 'cairn get' checks no attestations unless its flags ask.\n", "policy.yaml in the cairn config directory")
			} else {
				a.notef("Policy %s:\n", path)
			}
			b, err := yaml.Marshal(v)
			if err != nil {
				return err
			}
			a.printf("%s", b)
			return nil
		}),
	}
	addOutputFlag(show, &output)
	show.Flags().StringVar(&project, "project", "", "show the rules that apply to this project (the file's and the flags')")
	pf.add(show)
	var cpf policyFlags
	check := &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a policy file (default: the one 'cairn get' reads)",
		Args:  cobra.MaximumNArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				cpf.file = args[0]
			}
			p, path, err := a.loadPolicy(&cpf)
			if err != nil {
				return err
			}
			if path == "" {
				a.printf("No policy file: nothing to check.\n")
				return nil
			}
			names := make([]string, 0, len(p.Projects))
			for n := range p.Projects {
				names = append(names, n)
			}
			slices.Sort(names)
			a.printf("%s is valid: %d global trusted identities, rules for %d projects %v.\n", path, len(p.Global.TrustedIdentities), len(names), names)
			return nil
		}),
	}
	cmd.AddCommand(show, check)
	return cmd
}
