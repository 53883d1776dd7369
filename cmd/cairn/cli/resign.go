package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
)

// targetsResignOptions are the flags of 'cairn admin targets resign'.
type targetsResignOptions struct {
	keys        []string
	expires     string
	yes, dryRun bool
	wait        time.Duration
	output      string
}

func (a *app) targetsResignCommand() *cobra.Command {
	var o targetsResignOptions
	cmd := &cobra.Command{
		Use:   "resign --key TARGETSKEY... [--expires 365d]",
		Short: "Sign the next targets with the same delegations and a new expiry",
		Long: `resign writes the next version of the top-level targets metadata: the verified
current one with version + 1 and a new expiry, delegating exactly as before (claimed
and recently-claimed, same keys, thresholds and paths). It signs it with every --key
(targets keys from your key store; root says how many must sign), checks it as the
server and clients will, uploads it with an admin token and verifies the result.

Run it before targets expires ('cairn admin status' warns 30 days ahead). To change
the targets keys, use 'cairn admin root rotate --new-targets-key'.`,
		Example: `  cairn admin targets resign --key targets --expires 365d --yes`,
		Args:    cobra.NoArgs,
		RunE:    run(func(cmd *cobra.Command, _ []string) error { return a.targetsResign(o) }),
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.keys, "key", nil, "a targets key in your key store to sign with (required; repeatable)")
	f.StringVar(&o.expires, "expires", "365d", "expiry of the new targets: a lifetime (365d, 52w, 8760h) or a date (2027-06-30)")
	f.BoolVarP(&o.yes, "yes", "y", false, "sign without asking for confirmation")
	f.BoolVar(&o.dryRun, "dry-run", false, "show what would change and stop before signing")
	f.DurationVar(&o.wait, "wait", 30*time.Second, "how long the server may hold the answer until the new targets is published")
	addOutputFlag(cmd, &o.output)
	cmd.MarkFlagRequired("key")
	return cmd
}

func (a *app) targetsResign(o targetsResignOptions) error {
	now := a.now()
	expires, err := parseExpiry("--expires", o.expires, now)
	if err != nil {
		return err
	}
	if !o.dryRun {
		if err := a.requireToken(); err != nil {
			return err
		}
	}
	kfs, err := a.loadKeys("--key", o.keys)
	if err != nil {
		return err
	}
	repo, cur, err := a.verifiedTopLevel()
	if err != nil {
		return err
	}
	tkeys := client.RootRoleKeys(cur.Root, tufrepo.RoleTargets)
	if err := checkSigningKeys("targets", "--key", kfs, tkeys, cur.Root.Signed.Version); err != nil {
		return err
	}
	plan, next, err := client.PlanTargetsResign(cur.Targets, expires, now)
	if err != nil {
		return err
	}
	rep := rotateReport{Server: repo.Server(), Snapshot: cur.Snapshot.Signed.Version, Targets: plan, KeyNames: a.localKeyNames(), DryRun: o.dryRun}
	for _, kf := range kfs {
		rep.TargetsSignedBy = append(rep.TargetsSignedBy, kf.KeyID)
	}
	if o.output != "json" {
		a.printf("Targets version %d is verified (through snapshot %d, root version %d); it expires %s.\n", plan.CurrentVersion, rep.Snapshot, cur.Root.Signed.Version, untilText(plan.ExpiresBefore, a.now()))
		a.printf("Targets version %d changes only its expiry, to %s, and keeps its delegations:\n", plan.NextVersion, untilText(plan.Expires, a.now()))
		a.printDelegations(plan)
		var names []string
		for _, id := range rep.TargetsSignedBy {
			names = append(names, keyName(rep.KeyNames, id))
		}
		a.printf("Signed by %s; root version %d requires %d of its %s.\n\n", strings.Join(names, ", "), cur.Root.Signed.Version, tkeys.Threshold, plural(len(tkeys.Keys), "targets key"))
		if plan.Expires.Before(plan.ExpiresBefore) {
			a.notef("warning: targets version %d expires earlier than version %d\n", plan.NextVersion, plan.CurrentVersion)
		}
		if d := plan.Expires.Sub(a.now()); d < 30*24*time.Hour {
			a.notef("warning: targets version %d expires in %s; the server warns 30 days ahead, so 'cairn admin status' will warn at once\n", plan.NextVersion, roughDuration(d))
		}
	}
	if o.dryRun {
		if o.output == "json" {
			return a.printJSON(rep)
		}
		a.printf("Dry run: nothing was signed or sent.\n")
		return nil
	}
	if !o.yes {
		ok, err := a.confirm(fmt.Sprintf("Sign targets version %d and upload it? [y/N] ", plan.NextVersion))
		if err != nil {
			return err
		}
		if !ok {
			a.notef("Not signed.\n")
			return nil
		}
	}
	var signers []*tufrepo.OnlineSigner
	for _, kf := range kfs {
		s, err := a.openSigner(kf)
		if err != nil {
			return err
		}
		signers = append(signers, s)
	}
	up := api.TopLevelUpdate{}
	if up.Targets, err = client.SignTopLevel(a.ctx, next, signers...); err != nil {
		return fmt.Errorf("signing targets version %d: %w", plan.NextVersion, err)
	}
	if err := client.CheckTopLevelUpdate(cur, up, a.now()); err != nil {
		return fmt.Errorf("the targets version %d just signed would be refused, nothing was sent: %w", plan.NextVersion, err)
	}
	res, err := a.submitTopLevel(up, o.wait)
	if err != nil {
		return err
	}
	rep.Result = &res
	rep.Verified = a.verifyTopLevel(repo, res)
	if o.output == "json" {
		return a.printJSON(rep)
	}
	a.printTopLevelResult(res, rep.Verified)
	return nil
}
