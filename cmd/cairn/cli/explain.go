package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/client"
	"github.com/spf13/cobra"
)

func (a *app) explainCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "explain NAME[@VERSION]",
		Short: "Show the chain of signed metadata that vouches for a release",
		Long: `explain verifies release VERSION of project NAME (default: the highest version
that is not yanked) through TUF from the pinned root, exactly as 'cairn get' does, and
shows what vouches for it: the root (version, threshold, keys), the timestamp and
snapshot, targets, the role that delegates to the project (claimed, signed offline by the
admins, or recently-claimed, signed online by the server) and what that means, the
project's maintainer keys and which of them signed, every threshold and expiry on the
path, and the release's files with their hashes.

Only the verified TUF metadata is used; the REST API is not consulted. The chain is
verified through snapshot.json (as with --classic-snapshot), so that every link shown
carries its signatures. The exit codes
are those of 'cairn get'.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			project, version, _, err := releaseArg(args[0])
			if err != nil {
				return err
			}
			// The chain explain shows is the signed one, link by link: snapshot.json with its
			// signatures, as standard TUF clients verify it, not the Merkle snapshot's proofs
			// (whose stand-in snapshot carries no signatures of its own).
			a.classicSnapshot = true
			repo, err := a.repo()
			if err != nil {
				return err
			}
			e, err := repo.Explain(a.ctx, project, version)
			if err != nil {
				return err
			}
			if output == "json" {
				return a.printJSON(e)
			}
			a.printExplanation(e)
			return nil
		}),
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func (a *app) printExplanation(e *client.Explanation) {
	a.printf("%s %s, verified through snapshot %d of %s\n", e.Project, e.Release, e.SnapshotVersion, e.Server)
	if e.Yanked {
		a.printf("YANKED by its maintainers (%s): 'cairn get %s' skips it unless asked for by version.\n", yankWhy(e.YankReason), e.Project)
	}
	a.printf("\nChain of trust, from the pinned root down (each role is signed by the keys the role above it names):\n")
	for _, l := range e.Chain {
		a.printf("\n  %s  version %d, expires %s\n", l.Role, l.Version, expiryText(l.Expires, a.now()))
		by := "root names its own keys; this root chains from the one you pinned"
		if l.Role != "root" {
			by = "keys named by " + l.DelegatedBy
		}
		if len(l.Paths) > 0 {
			by += ", for paths " + strings.Join(l.Paths, " ")
		}
		a.printf("    signers:    %s (%s)\n", l.KeyHolder, by)
		met := "met"
		if !l.ThresholdMet {
			met = "NOT met"
		}
		a.printf("    threshold:  %d of %d keys; %d signed: %s\n", l.Threshold, len(l.Keys), l.Signatures, met)
		tw := a.table()
		for _, k := range l.Keys {
			mark := "not signed"
			if k.Signed {
				mark = "signed"
			}
			fmt.Fprintf(tw, "      %s\tkey %s\t%s\t%s\n", mark, short(k.KeyID), k.KeyType, k.Fingerprint)
		}
		tw.Flush()
	}
	state := "is NOT claimed"
	if e.Claimed {
		state = "is claimed"
	}
	a.printf("\n%s %s (delegated by %s): %s.\n", e.Project, state, e.Delegator, e.Meaning)
	a.printf("\nFiles of %s %s:\n", e.Project, e.Release)
	tw := a.table()
	for _, f := range e.Files {
		fmt.Fprintf(tw, "  %s\t%d bytes\tsha256 %s\n", f.Name, f.Length, f.SHA256)
	}
	tw.Flush()
}

// expiryText gives an expiry with how far ahead it is.
func expiryText(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d <= 0:
		return fmtTime(t) + " (expired)"
	case d >= 48*time.Hour:
		return fmt.Sprintf("%s (in %d days)", fmtTime(t), int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%s (in %d hours)", fmtTime(t), int(d.Hours()))
	}
	return fmt.Sprintf("%s (in %d minutes)", fmtTime(t), int(d.Minutes()))
}
