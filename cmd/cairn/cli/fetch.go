package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/spf13/cobra"
)

func (a *app) fetchCommand() *cobra.Command {
	var (
		digest, out string
		maxSize     int64
		pf          policyFlags
	)
	cmd := &cobra.Command{
		Use:   "fetch URL --digest sha256:HEX [-o FILE]",
		Short: "Download anything by URL, only if it has the digest you name",
		Long: `fetch downloads URL (https://, or http:// to a loopback address) into a temporary
file and checks its digest. Only then is the file moved to FILE (-o) or written to
standard output. A digest mismatch exits 1 and leaves nothing at FILE.

If cairn is initialised with a server that publishes a Sigstore trusted root, the
attestations that server has for the digest (sha256 only) are verified offline and
shown, with the identities under the URL's host; an attestation policy (see 'cairn
policy') is applied to them first, and an unmet rule exits 4 without writing anything.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			u, err := client.CheckFetchURL(args[0])
			if err != nil {
				return err
			}
			want, err := api.ParseDigest(digest)
			if err != nil {
				return err
			}
			dir := os.TempDir()
			if out != "" && out != "-" {
				dir = filepath.Dir(out)
			}
			hc, err := a.httpClient()
			if err != nil {
				return err
			}
			tmp, n, err := client.FetchToTemp(a.ctx, hc, u, want, dir, maxSize)
			if err != nil {
				return err
			}
			defer os.Remove(tmp) // gone once moved
			a.notef("Fetched %s: %d bytes, %s verified.\n", u, n, want)
			if err := a.fetchAttestations(&pf, u.Hostname(), want); err != nil {
				return err
			}
			if out == "" || out == "-" {
				f, err := os.Open(tmp)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(a.stdout, f)
				return err
			}
			if err := os.Chmod(tmp, 0o644); err != nil {
				return err
			}
			if err := os.Rename(tmp, out); err != nil {
				return fmt.Errorf("moving the verified file to %s: %w", out, err)
			}
			a.notef("Wrote %s.\n", out)
			return nil
		}),
	}
	cmd.Flags().StringVar(&digest, "digest", "", "the content digest the download must have: sha256:HEX or sha512:HEX (required)")
	cmd.Flags().StringVarP(&out, "output-file", "o", "", "write to FILE (default: standard output)")
	cmd.Flags().Int64Var(&maxSize, "max-size", 1<<30, "refuse downloads larger than this many bytes")
	pf.add(cmd)
	_ = cmd.MarkFlagRequired("digest")
	return cmd
}

// fetchAttestations shows and checks the attestations the configured server has for the
// digest. Without a configured server or trusted root it only says so, unless a policy
// rule asks for attestations.
func (a *app) fetchAttestations(pf *policyFlags, host string, d api.Digest) error {
	rules, err := a.policyRules(pf, "")
	if err != nil {
		return err
	}
	if d.Algorithm != "sha256" {
		if !rules.Empty() {
			return &client.VerifyError{Code: client.ExitPolicy, Detail: "the attestation policy cannot be checked: attestations are looked up by sha256 only"}
		}
		return nil
	}
	repo, err := a.repo()
	if err == nil {
		var rest *client.API
		if rest, err = a.apiClient(); err == nil {
			var set *client.AttestationSet
			if set, err = client.VerifyAttestations(a.ctx, repo, rest, d.Hex); err == nil {
				ids := set.Identities()
				a.notef("%d distinct verified identities attested it on %s.\n", len(ids), repo.Server())
				for _, id := range ids {
					mark := ""
					if domainMatches(id.SAN, []string{host}) {
						mark = "  (matches " + host + ")"
					}
					a.notef("  %s%s\n", id, mark)
				}
				if err := rules.Evaluate(set.Attestations); err != nil {
					return &client.VerifyError{Code: client.ExitPolicy, Target: d.String(), Detail: err.Error() + " (nothing was written)", Err: err}
				}
				return nil
			}
		}
	}
	if !rules.Empty() || client.Classify(err) == client.ExitPolicy {
		return err
	}
	if api.CodeOf(err) != api.CodeAttestationsOff {
		a.notef("note: no attestations checked: %v\n", err)
	}
	return nil
}
