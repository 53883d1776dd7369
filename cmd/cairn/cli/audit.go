package cli

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tlog"
	"github.com/spf13/cobra"
)

func (a *app) auditCommand() *cobra.Command {
	var (
		rekorKey    string
		rekorOrigin string
		pageSize    int
		output      string
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check that everything the server signed with its online keys is in the transparency log",
		Long: `audit monitors a Cairn server that submits its online signatures to a Rekor v2
transparency log (cairnd --rekor-url). For every timestamp, snapshot and
recently-claimed version the server signed (its hash-chained audit log lists them,
with the sha256 of each; the timestamp and snapshot it serves now are added), it
checks that:

  - the server stores a log entry for it;
  - the entry's statement names exactly the bytes the server serves (every
    consistent-snapshot version is fetched; for timestamp, the current one) and the
    sha256 and length the audit log records;
  - the entry's DSSE signature verifies with a key that the root in effect at that
    version delegates the role to (targets, for recently-claimed), the root chain
    being verified from your pinned root ('cairn init');
  - the log includes the entry: the inclusion proof verifies against a checkpoint
    signed by the log's key (--rekor-key, the log's public key from its operator).

Every version that fails is reported, and the exit code is that of the most serious
failure: 1 hash mismatch, 2 signature invalid, 3 key not trusted, 4 a version with
no entry (signed but never logged, or not logged yet: see the backlog).`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			ac, err := a.apiClient()
			if err != nil {
				return err
			}
			opts := client.AuditOptions{PageSize: pageSize}
			if rekorKey != "" {
				b, err := os.ReadFile(rekorKey)
				if err != nil {
					return fmt.Errorf("reading --rekor-key: %w", err)
				}
				pub, err := tlog.ParsePublicKey(b)
				if err != nil {
					return &client.VerifyError{Code: client.ExitMalformed, Role: "transparency log", Detail: "--rekor-key " + rekorKey, Err: err}
				}
				opts.LogKey = &tlog.LogKey{Key: pub, Origin: rekorOrigin}
			}
			if opts.TrustedRoot, err = a.pinnedRoot(ac.Server()); err != nil {
				return err
			}
			if opts.TrustedRoot == nil {
				a.notef("WARNING: no root is pinned for %s: trusting the root chain the server serves from version 1 (trust on first use). Run 'cairn init --server %s --root FILE' to audit against the root your administrators published.\n", ac.Server(), ac.Server())
			}
			rep, err := ac.Audit(a.ctx, opts)
			if err != nil {
				return err
			}
			if rep.LogKeyFromServer {
				a.notef("WARNING: the transparency log key was taken from the server being audited (trust on first use): a compromised server could name a log of its own. Pass --rekor-key FILE with the key the log's operator publishes.\n")
			}
			if output == "json" {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				a.printAudit(rep)
			}
			if len(rep.Problems) > 0 {
				detail := fmt.Sprintf("%d signed version(s) lack a valid transparency log entry", len(rep.Problems))
				if rep.MerkleProblems > 0 {
					detail = fmt.Sprintf("%d problem(s), %d of them Merkle snapshots that the audit log does not rebuild", len(rep.Problems), rep.MerkleProblems)
				}
				return &client.VerifyError{Code: rep.Code(), Role: "transparency log", Detail: detail}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&rekorKey, "rekor-key", "", "the transparency log's public key (PEM); default: the key the server reports, with a warning")
	cmd.Flags().StringVar(&rekorOrigin, "rekor-origin", "", "the log's checkpoint origin (default: as its checkpoints name it)")
	cmd.Flags().IntVar(&pageSize, "page-size", 500, "entries to request per page")
	addOutputFlag(cmd, &output)
	return cmd
}

func (a *app) printAudit(rep *client.AuditReport) {
	roles := make([]string, 0, len(rep.Checked))
	total := 0
	for r, n := range rep.Checked {
		roles = append(roles, fmt.Sprintf("%d %s", n, r))
		total += n
	}
	sort.Strings(roles)
	log := rep.LogURL
	if log == "" {
		log = "(the server reports no transparency log)"
	}
	a.printf("Transparency log audit of %s\n  log: %s\n", rep.Server, log)
	a.printf("  checked %d signed version(s) (%s) under %d root version(s); %d with a valid log entry; server backlog %d\n",
		total, strings.Join(roles, ", "), rep.Roots, rep.Logged, rep.Backlog)
	a.printf("  Merkle snapshot: %d timestamp tree(s) rebuilt from the audit log and matched; %d timestamp(s) without a tree\n", rep.MerkleTrees, rep.MerkleWithoutTree)
	if len(rep.Problems) == 0 {
		a.printf("OK: every signed version is in the transparency log, and every Merkle snapshot matches the audit log.\n")
		return
	}
	a.printf("%d problem(s):\n", len(rep.Problems))
	for _, p := range rep.Problems {
		a.printf("  %s version %d [%s]: %s\n", p.Role, p.Version, p.Code, p.Detail)
	}
}
