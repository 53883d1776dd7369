package cli

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// claimOptions are the flags of 'cairn admin claim'.
type claimOptions struct {
	keys     []string
	projects []string
	all      bool
	renew    bool
	reshard  bool
	capacity int
	yes      bool
	// acceptExpired applies queued maintainer changes whose documents expired in the queue.
	acceptExpired bool
	dryRun        bool
	wait          time.Duration
	output        string
}

// claimReport is what 'cairn admin claim --output json' prints.
type claimReport struct {
	Server   string            `json:"server"`
	Snapshot int64             `json:"verified_snapshot"`
	Plan     *client.ClaimPlan `json:"plan"`
	SignedBy []string          `json:"signed_by"`
	// Threshold is how many claimed keys targets requires.
	Threshold int                `json:"threshold"`
	DryRun    bool               `json:"dry_run,omitempty"`
	Result    *api.ClaimResult   `json:"result,omitempty"`
	Verified  *claimVerification `json:"verified,omitempty"`
}

// claimVerification is the new claimed tree as a fresh TUF refresh sees it.
type claimVerification struct {
	Snapshot       int64 `json:"snapshot"`
	ClaimedVersion int64 `json:"claimed_version"`
	// Nodes are the versions the verified snapshot lists for the nodes uploaded.
	Nodes map[string]int64 `json:"nodes"`
}

func (a *app) adminClaimCommand() *cobra.Command {
	var o claimOptions
	cmd := &cobra.Command{
		Use:   "claim --key ADMINKEY... [--project P... | --all] [--yes]",
		Short: "Sign the next claimed nodes: move projects into claimed and apply queued maintainer changes",
		Long: `claim is the admins' offline signing of the claimed tree: the claimed role and its
shards, each delegating the claimed projects whose names start with its prefix. It
downloads what waits (with an admin token): recently-claimed projects that may be moved
into claimed, and the maintainer changes queued for claimed projects. It checks the
server's current claimed against the one verified through TUF from the pinned root,
loads through TUF the nodes of the tree the change touches, shows in plain language what
changes (projects moved in with their maintainer keys' fingerprints and thresholds; keys
added and removed by queued changes; the nodes signed), writes the next version of only
those nodes (every other delegation kept, queued changes applied, the projects chosen with
--project or --all moved in, a node that would delegate more than 64 roles split into
new shards), signs them with every --key (claimed keys from your key store; targets says
how many must sign) and uploads them. The server publishes them and takes the moved
projects out of recently-claimed in the same snapshot.

Without --project or --all only queued maintainer changes are applied. With nothing to
change, claim stops. --reshard splits every node that delegates more than 64 roles (run it
once to move a repository made before sharding to the sharded layout); --renew re-signs
every node of the claimed tree (to renew their expiry).
Every queued maintainer change is verified here, offline, from its signed change
documents: the first must be signed by a threshold of the keys the verified claimed
delegates the project to now, each later one by a threshold of the keys of the one before,
and the last must name exactly the keys and threshold the server asks claimed to carry.
Otherwise claim refuses and signs nothing: the server queued keys the maintainers did not
sign. A document that expired while it waited is applied only with --accept-expired.

It asks for confirmation on a terminal; --yes signs without asking.`,
		Example: `  cairn admin claim --key claimed-1 --all
  cairn admin claim --key claimed-1 --key claimed-2 --project demo --project hello --yes`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error { return a.adminClaim(o) }),
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.keys, "key", nil, "a claimed key in your key store to sign with (required; repeatable)")
	f.StringArrayVar(&o.projects, "project", nil, "move this recently-claimed project into claimed (repeatable)")
	f.BoolVar(&o.all, "all", false, "move every waiting recently-claimed project into claimed")
	f.BoolVar(&o.renew, "renew", false, "re-sign every node of the claimed tree even if nothing changes (renews their expiry)")
	f.BoolVar(&o.reshard, "reshard", false, "split every claimed node that delegates more than --shard-capacity roles into shards")
	f.IntVar(&o.capacity, "shard-capacity", tufrepo.ShardCapacity, "the most delegations one claimed node holds before it is split")
	f.BoolVarP(&o.yes, "yes", "y", false, "sign without asking for confirmation")
	f.BoolVar(&o.acceptExpired, "accept-expired", false, "apply queued maintainer changes whose signed documents expired while queued (confirm them with the maintainers first)")
	f.BoolVar(&o.dryRun, "dry-run", false, "show what would change and stop before signing")
	f.DurationVar(&o.wait, "wait", 30*time.Second, "how long the server may hold the answer until the new claimed is published")
	addOutputFlag(cmd, &o.output)
	cmd.MarkFlagRequired("key")
	cmd.MarkFlagsMutuallyExclusive("project", "all")
	return cmd
}

func (a *app) adminClaim(o claimOptions) error {
	for _, p := range o.projects {
		if err := tufrepo.ValidateProjectName(p); err != nil {
			return err
		}
	}
	if o.capacity < 2 || o.capacity > tufrepo.MaxShardDelegations {
		return api.Errorf(api.CodeBadRequest, "--shard-capacity %d: want 2 to %d (the server refuses nodes with more delegations)", o.capacity, tufrepo.MaxShardDelegations)
	}
	if err := a.requireToken(); err != nil {
		return err
	}
	kfs, err := a.loadRequiredKeys("--key", o.keys)
	if err != nil {
		return err
	}
	repo, err := a.repo()
	if err != nil {
		return err
	}
	d, err := repo.Delegators(a.ctx)
	if err != nil {
		return err
	}
	role, keys, err := d.ClaimedDelegation()
	if err != nil {
		return err
	}
	var signedBy []string
	for _, kf := range kfs {
		if !slices.Contains(role.KeyIDs, kf.KeyID) {
			return api.Errorf(api.CodeKeyNotDelegated, "key %q (%s) is not one of the claimed keys that the verified targets (version %d) delegates to: %s", kf.Name, kf.KeyID, d.Targets.Signed.Version, delegationKeysText(role.KeyIDs, keys))
		}
		signedBy = append(signedBy, kf.KeyID)
	}
	if len(kfs) < role.Threshold {
		return api.Errorf(api.CodeThresholdNotMet, "claimed must be signed by %d of its %d keys (%s); you gave %d: add --key for each", role.Threshold, len(role.KeyIDs), delegationKeysText(role.KeyIDs, keys), len(kfs))
	}
	ac, err := a.apiClient()
	if err != nil {
		return err
	}
	var only []string
	if !o.all {
		only = o.projects
	}
	q, err := ac.ClaimQueue(a.ctx, only...)
	if err != nil {
		return err
	}
	plan, nodes, err := client.PlanClaim(a.ctx, repo, d, q, client.ClaimOptions{Move: o.projects, All: o.all, Reshard: o.reshard, Renew: o.renew, Capacity: o.capacity}, a.now())
	if err != nil {
		return err
	}
	rep := claimReport{Server: repo.Server(), Snapshot: d.Snapshot.Signed.Version, Plan: plan, SignedBy: signedBy, Threshold: role.Threshold, DryRun: o.dryRun}
	if o.output != "json" {
		a.printClaimPlan(d, plan, o)
	}
	if plan.Empty() {
		if o.output == "json" {
			return a.printJSON(rep)
		}
		a.printf("Nothing to sign: no project is to be moved, no maintainer change is queued and no node is too big (--renew signs every node anyway).\n")
		return nil
	}
	if o.dryRun {
		if o.output == "json" {
			return a.printJSON(rep)
		}
		a.printf("Dry run: nothing was signed or sent.\n")
		return nil
	}
	if exp := expiredChanges(plan); len(exp) > 0 && !o.acceptExpired {
		err := api.Errorf(api.CodeExpired, "not signed: the signed maintainer change document(s) %s expired while they waited for the admins. Their signatures verify, but an expired document could be an old one replayed: confirm with the project's maintainers that they want the change, then run this command again with --accept-expired", strings.Join(exp, ", "))
		if o.output == "json" {
			a.printJSON(rep)
		}
		return err
	}
	if ok, err := a.agreeToSign(o.yes, fmt.Sprintf("Sign %s of the claimed tree with %d admin key(s) and upload them? [y/N] ", plural(len(nodes), "node"), len(kfs))); !ok {
		return err
	}
	online, err := a.openSigners(kfs)
	if err != nil {
		return err
	}
	// A delegator giving every node to the claimed keys, to check each node as clients will
	// before anything is sent.
	check := metadata.Targets()
	check.Signed.Delegations = &metadata.Delegations{Keys: keys}
	upload := map[string][]byte{}
	for _, roleName := range slices.Sorted(maps.Keys(nodes)) {
		raw, err := tufrepo.SignEnvelope(a.ctx, nodes[roleName], online...)
		if err != nil {
			return err
		}
		md, err := metadata.Targets().FromBytes(raw)
		if err != nil {
			return fmt.Errorf("%s just signed does not parse: %w", roleName, err)
		}
		check.Signed.Delegations.Roles = []metadata.DelegatedRole{{Name: roleName, KeyIDs: role.KeyIDs, Threshold: role.Threshold, Paths: []string{"*/*/*"}}}
		if err := check.VerifyDelegate(roleName, md); err != nil {
			return api.Wrap(api.CodeThresholdNotMet, err, "%s just signed does not verify against targets' delegation (%d of %s): nothing was sent: %v", roleName, role.Threshold, delegationKeysText(role.KeyIDs, keys), err)
		}
		upload[roleName] = raw
	}
	res, err := ac.SubmitClaimed(a.ctx, upload, o.wait)
	if err != nil {
		return err
	}
	rep.Result = &res
	if res.Status == api.StatusPublished {
		if d2, err := repo.Delegators(a.ctx); err == nil && d2.Snapshot != nil {
			v := &claimVerification{Snapshot: d2.Snapshot.Signed.Version, Nodes: map[string]int64{}}
			if d2.Claimed != nil {
				v.ClaimedVersion = d2.Claimed.Signed.Version
			}
			ok := true
			for r, want := range res.Nodes {
				e, listed := d2.Snapshot.Signed.Meta[tufrepo.MetaName(r)]
				if listed {
					v.Nodes[r] = e.Version
				}
				ok = ok && listed && e.Version >= want
			}
			if ok {
				rep.Verified = v
			}
		}
	}
	if o.output == "json" {
		return a.printJSON(rep)
	}
	moved := "no project moved"
	if len(res.Moved) > 0 {
		moved = "moved into claimed: " + strings.Join(res.Moved, ", ")
	}
	switch res.Status {
	case api.StatusPublished:
		what := plural(len(res.Nodes), "node") + " of the claimed tree"
		if res.Version > 0 {
			what = fmt.Sprintf("claimed version %d", res.Version)
			if len(res.Nodes) > 1 {
				what += fmt.Sprintf(" and %s", plural(len(res.Nodes)-1, "shard"))
			}
		}
		a.printf("Published %s in snapshot %d (%s; %s applied).\n", what, res.SnapshotVersion, moved, plural(len(plan.Changes), "maintainer change"))
		if rep.Verified != nil {
			a.printf("Verified through TUF: snapshot %d carries every node uploaded (claimed version %d).\n", rep.Verified.Snapshot, rep.Verified.ClaimedVersion)
		}
	default:
		a.printf("The server accepted %s of the claimed tree (%s) and publishes them in its next snapshot.\n", plural(len(res.Nodes), "node"), moved)
	}
	return nil
}

// printClaimPlan says in words what the next claimed changes.
func (a *app) printClaimPlan(d *client.Delegators, p *client.ClaimPlan, o claimOptions) {
	a.printf("Claimed version %d is verified through snapshot %d; the nodes signed expire %s.\n", p.CurrentVersion, d.Snapshot.Signed.Version, fmtTime(p.Expires))
	if len(p.Move) > 0 {
		a.printf("\nMoves %s into claimed (from then on only the admins' offline keys can change who signs for them):\n", plural(len(p.Move), "project"))
		for _, e := range p.Move {
			a.printClaimEntry(e)
		}
	}
	if len(p.Changes) > 0 {
		a.printf("\nApplies the maintainer changes queued for %s (each signed change document verified here against the keys before it, starting from the keys in the verified claimed):\n", plural(len(p.Changes), "claimed project"))
		for _, c := range p.Changes {
			a.printf("  %s (maintainer change %d), in all:\n", c.Project, c.Version)
			a.printMaintainerDiff("    ", c.MaintainerDiff)
			for _, d := range c.Documents {
				a.printf("    signed change %d of %s, %s:\n", d.Change.Version, c.Project, signedByText(d))
				for _, sv := range d.SignedBy {
					a.printf("      signed by key %s  %s  %s\n", short(sv.KeyID), sv.KeyType, sv.Fingerprint)
				}
				a.printMaintainerDiff("      ", d.Change)
				if d.Expired {
					a.printf("      EXPIRED on %s while it waited for the admins: confirm with the maintainers that they still want it (an old signed change could be replayed), then pass --accept-expired\n", fmtTime(d.Change.Expires))
				}
			}
		}
	}
	if len(p.Waiting) > 0 {
		a.printf("\nStays in recently-claimed (choose with --project NAME or --all):\n")
		for _, e := range p.Waiting {
			a.printClaimEntry(e)
		}
	}
	if len(p.Kept) > 0 {
		a.printf("\nKeeps %s as it is: %s\n", plural(len(p.Kept), "claimed project"), strings.Join(p.Kept, ", "))
	}
	if len(p.Nodes) > 0 {
		a.printf("\nSigns %s of the claimed tree:\n", plural(len(p.Nodes), "node"))
		for _, n := range p.Nodes {
			what := fmt.Sprintf("version %d", n.Version)
			if n.New {
				what = "new shard, version 1"
			}
			a.printf("  %s (%s): %s, %s\n", n.Role, what, plural(n.Projects, "project"), plural(n.Shards, "shard"))
		}
	}
	a.printf("\n")
}

// signedByText says how many of the keys before a queued change signed it.
func signedByText(d client.QueuedChange) string {
	return fmt.Sprintf("signed by %d of the %d maintainer keys before it (%d needed)", len(d.SignedBy), d.KeysBefore, d.Threshold)
}

// expiredChanges lists the queued change documents of plan that expired while queued.
func expiredChanges(p *client.ClaimPlan) []string {
	var out []string
	for _, c := range p.Changes {
		for _, d := range c.Documents {
			if d.Expired {
				out = append(out, fmt.Sprintf("change %d of %s (expired %s)", d.Change.Version, c.Project, fmtTime(d.Change.Expires)))
			}
		}
	}
	return out
}

func (a *app) printClaimEntry(e client.ClaimEntry) {
	a.printf("  %s: %d of %d maintainer keys must sign\n", e.Name, e.Threshold, len(e.Keys))
	for _, k := range e.Keys {
		a.printf("    key %s  %s  %s\n", short(k.KeyID), k.KeyType, k.Fingerprint)
	}
}

func delegationKeysText(ids []string, keys map[string]*metadata.Key) string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		s := short(id)
		if k, ok := keys[id]; ok {
			s += " (" + fingerprintOf(k) + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}
