package cli

import (
	"fmt"
	"strconv"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/spf13/cobra"
)

func (a *app) diffCommand() *cobra.Command {
	var (
		output       string
		roleVersions bool
		root         bool
	)
	cmd := &cobra.Command{
		Use:   "diff NAME A B | diff NAME --role-versions X Y | diff --root V1 V2",
		Short: "Compare two releases, two role versions of a project, or two root versions, from verified metadata",
		Long: `diff compares, from verified TUF metadata only:

  cairn diff NAME A B                   releases A and B (A older) of project NAME
  cairn diff NAME --role-versions X Y   versions X < Y of the project's role
  cairn diff --root V1 V2               root versions V1 < V2

It shows the files added, removed and changed (sizes and sha256), who signed each side,
the maintainer keys and threshold in force at each side and what changed between them,
yank changes, and for two releases each side's attestations (verified offline, as of the
current snapshot; 'cairn attestations NAME@VERSION' shows who made them).

The current role version is verified by the TUF updater from the pinned root, as 'cairn
releases' does. A past version is verified against the delegation in force when it was
published: every root from the pinned one on is verified by its predecessor, the
server's audit log (hash chain recomputed) says which targets and delegating role
versions were current in the snapshot that published it, each is downloaded from its
immutable URL, checked against the length and sha256 the log records, and verified by
its parent's keys; the past version must carry a threshold of signatures of the
maintainer keys delegated to it then. Expiry is not checked for past versions. For
releases, each side is the role version that first published the release.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if root {
				if roleVersions {
					return fmt.Errorf("--root and --role-versions cannot be combined")
				}
				return cobra.ExactArgs(2)(cmd, args)
			}
			return cobra.ExactArgs(3)(cmd, args)
		},
		RunE: run(func(cmd *cobra.Command, args []string) error {
			var nums [2]int64
			if root || roleVersions {
				what := "role version"
				if root {
					what = "root version"
				}
				for i, s := range args[len(args)-2:] {
					n, err := strconv.ParseInt(s, 10, 64)
					if err != nil || n < 1 {
						return api.Errorf(api.CodeBadRequest, "%s %q is not a positive integer", what, s)
					}
					nums[i] = n
				}
			}
			repo, err := a.repo()
			if err != nil {
				return err
			}
			if root {
				h, err := repo.LoadHistory(a.ctx, nil, "")
				if err != nil {
					return err
				}
				d, err := h.DiffRoots(nums[0], nums[1])
				if err != nil {
					return err
				}
				if output == "json" {
					return a.printJSON(d)
				}
				a.printRootDiff(d)
				return nil
			}
			project := args[0]
			pr, err := repo.ProjectRole(a.ctx, project)
			if err != nil {
				return err
			}
			// Refusals that need no history come before reading the log.
			if roleVersions && nums[0] >= nums[1] {
				return api.Errorf(api.CodeBadRequest, "role versions in the wrong order: %d is not older than %d; give the older version first (cairn diff %s --role-versions %d %d)", nums[0], nums[1], project, min(nums[0], nums[1]), max(nums[0], nums[1]))
			}
			if roleVersions && nums[1] > pr.Version() {
				return api.Errorf(api.CodeNotFound, "project %s has no role version %d: the current verified version is %d", project, nums[1], pr.Version())
			}
			ac, err := a.apiClient()
			if err != nil {
				return err
			}
			h, err := repo.LoadHistory(a.ctx, ac, project)
			if err != nil {
				return err
			}
			// The refresh inside LoadHistory may have moved on: verify the project again
			// against the same trusted state the history was read with.
			if pr, err = repo.ProjectRole(a.ctx, project); err != nil {
				return err
			}
			var d *client.Diff
			if roleVersions {
				d, err = h.DiffRoleVersions(a.ctx, pr, nums[0], nums[1])
			} else {
				d, err = h.DiffReleases(a.ctx, pr, args[1], args[2])
			}
			if err != nil {
				return err
			}
			if !roleVersions {
				// Each release's attestations as of the current verified snapshot.
				for _, side := range []struct {
					rel string
					out *string
				}{{args[1], &d.Attestations.From}, {args[2], &d.Attestations.To}} {
					rel, _ := client.FindRelease(pr.Releases(), side.rel)
					if *side.out, err = client.ReleaseAttestations(a.ctx, repo, ac, rel); err != nil {
						return err
					}
				}
			}
			if output == "json" {
				return a.printJSON(d)
			}
			a.printDiff(d)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&roleVersions, "role-versions", false, "compare two versions X Y of the project's role instead of two releases")
	cmd.Flags().BoolVar(&root, "root", false, "compare two root versions V1 V2 of the chain verified from the pinned root")
	addOutputFlag(cmd, &output)
	return cmd
}

func (a *app) printDiff(d *client.Diff) {
	if d.Mode == "releases" {
		a.printf("%s %s → %s (%s)\n", d.Project, d.FromRelease, d.ToRelease, d.Server)
	} else {
		a.printf("%s role version %d → %d (%s)\n", d.Project, d.From.Version, d.To.Version, d.Server)
	}
	for _, s := range []struct {
		name string
		h    *client.HistoricalRole
	}{{"from", d.From}, {"to", d.To}} {
		met := "met"
		if !s.h.ThresholdMet {
			met = "NOT met"
		}
		a.printf("  %-4s role version %d, published in snapshot %d, delegated by %s; threshold %d of %d, %d signed (%s); signed by: %s [verified: %s]\n",
			s.name, s.h.Version, s.h.Snapshot, s.h.Delegator, s.h.Threshold, len(s.h.Keys), s.h.Signatures, met, s.h.SignerList(), s.h.Verified)
	}
	a.printf("\nFiles:\n")
	tw := a.table()
	for _, f := range d.Files.Added {
		fmt.Fprintf(tw, "  added\t%s\t%d bytes\tsha256 %s\n", fileLabel(d, f), f.Length, f.SHA256)
	}
	for _, f := range d.Files.Removed {
		fmt.Fprintf(tw, "  removed\t%s\t%d bytes\tsha256 %s\n", fileLabel(d, f), f.Length, f.SHA256)
	}
	for _, c := range d.Files.Changed {
		fmt.Fprintf(tw, "  changed\t%s\t%d → %d bytes\tsha256 %s → %s\n", c.Path, c.Before.Length, c.After.Length, c.Before.SHA256, c.After.SHA256)
	}
	tw.Flush()
	if d.Files.Empty() {
		a.printf("  no file added, removed or changed\n")
	}
	a.printf("  (%d unchanged)\n", d.Files.Same)
	a.printf("\nMaintainers (delegation at %s vs at %s):\n", sideName(d, true), sideName(d, false))
	if d.Maintainers.Empty() {
		a.printf("  unchanged: %d key(s), threshold %d\n", len(d.Maintainers.Kept), d.Maintainers.ThresholdAfter)
	} else {
		for _, l := range d.Maintainers.Lines() {
			a.printf("  %s\n", l)
		}
	}
	a.printf("\nYanks:\n")
	n := 0
	for _, y := range d.Yanked {
		a.printf("  yanked %s (%s)\n", y.Version, yankWhy(y.Reason))
		n++
	}
	for _, y := range d.Unyanked {
		a.printf("  unyanked %s\n", y.Version)
		n++
	}
	for _, y := range d.ReasonChanged {
		a.printf("  %s: yank reason changed from %q to %q\n", y.Version, y.PreviousReason, y.Reason)
		n++
	}
	for _, y := range d.YankStates {
		state := "not yanked"
		if y.Yanked {
			state = "YANKED (" + yankWhy(y.Reason) + ")"
		}
		a.printf("  %s %s: %s\n", y.Release, y.Side, state)
		n++
	}
	if n == 0 {
		a.printf("  no yank changes\n")
	}
	if d.Attestations.From == client.AttestationsNone && d.Attestations.To == client.AttestationsNone {
		a.printf("\nAttestations: not compared for role versions; 'cairn attestations %s@VERSION' verifies and shows a release's\n", d.Project)
	} else {
		a.printf("\nAttestations: from %s; to %s\n", d.Attestations.From, d.Attestations.To)
	}
	a.notef("How it was verified: %s\n", d.Verification)
}

func sideName(d *client.Diff, from bool) string {
	h := d.To
	if from {
		h = d.From
	}
	return fmt.Sprintf("role version %d", h.Version)
}

// fileLabel names a file as the diff compares it: by name between releases, by target
// path between role versions.
func fileLabel(d *client.Diff, f api.File) string {
	if d.Mode == "releases" || f.Path == "" {
		return f.Name
	}
	return f.Path
}

func (a *app) printRootDiff(d *client.RootDiff) {
	a.printf("root version %d → %d (%s; pinned version %d, current %d)\n", d.From.Version, d.To.Version, d.Server, d.Pinned, d.Current)
	for _, s := range []client.RootSide{d.From, d.To} {
		a.printf("  version %d: expires %s, consistent snapshots %t, signed by %d root key(s): %s\n", s.Version, expiryText(s.Expires, a.now()), s.ConsistentSnapshot, len(s.SignedBy), shortIDs(s.SignedBy))
	}
	a.printf("\n")
	tw := a.table()
	fmt.Fprintln(tw, "ROLE\tTHRESHOLD\tKEYS ADDED\tKEYS REMOVED\tKEYS KEPT")
	for _, r := range d.Roles {
		th := fmt.Sprintf("%d", r.After.Threshold)
		if r.Before.Threshold != r.After.Threshold {
			th = fmt.Sprintf("%d → %d", r.Before.Threshold, r.After.Threshold)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", r.Role, th, orDash(client.KeyList(r.Added)), orDash(client.KeyList(r.Removed)), len(r.Kept))
	}
	tw.Flush()
	a.notef("How it was verified: %s\n", d.Verification)
}

func shortIDs(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	out := ""
	for i, id := range ids {
		if i > 0 {
			out += ", "
		}
		if len(id) > 16 {
			id = id[:16]
		}
		out += id
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
