package cli

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// maintainerAndExplainCommands returns the top-level commands of this file and of
// explain.go, and adds 'project threshold' and 'project resign' to root's project command.
func (a *app) maintainerAndExplainCommands(root *cobra.Command) []*cobra.Command {
	for _, c := range root.Commands() {
		if c.Name() == "project" {
			c.AddCommand(a.projectThresholdCommand(), a.projectResignCommand())
		}
	}
	return []*cobra.Command{a.maintainerCommand(), a.explainCommand()}
}

func (a *app) maintainerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maintainer",
		Short: "List, add and remove a project's maintainer keys",
		Long: `maintainer commands change who may sign a project's releases. Every change is a
document that names the project's complete new set of maintainer keys and threshold,
signed by the current maintainers: once a threshold of them has signed, the server
applies it (a recently-claimed project, published at once) or queues it for the
repository admins (a claimed project, whose delegation only their offline keys sign).

Changes are built on the delegation verified through TUF from the pinned root, never on
the server's word alone. A change that would leave the project without keys, with a
threshold nobody can meet, or with a published role that clients could no longer verify
is refused before anything is signed.`,
	}
	cmd.AddCommand(a.maintainerListCommand(), a.maintainerAddCommand(), a.maintainerRemoveCommand())
	return cmd
}

// changeFlags are the flags shared by the commands that write a maintainer change.
type changeFlags struct {
	keys   []string
	wait   time.Duration
	dryRun bool
	output string
}

func (f *changeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.keys, "key", nil, "your maintainer key; repeat to sign with several keys you hold (required)")
	cmd.Flags().DurationVar(&f.wait, "wait", 30*time.Second, "how long the server may hold the answer until an applied change is published")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "show what would change and stop before signing")
	addOutputFlag(cmd, &f.output)
	cmd.MarkFlagRequired("key")
}

func (a *app) maintainerAddCommand() *cobra.Command {
	var (
		f         changeFlags
		threshold int
	)
	cmd := &cobra.Command{
		Use:   "add NAME PUBKEY --key KEY [--threshold T]",
		Short: "Add a maintainer key to a project",
		Long: `add gives project NAME one more maintainer key: PUBKEY is the new maintainer's
public key, as a file with (or the JSON of) 'cairn key export --public', or the name of a
key in your key store. The threshold stays as it is unless --threshold sets it too.

The change is signed with KEY (a current maintainer key) and sent: if the project's
threshold is more than one, it waits for co-maintainers to sign it with 'cairn sign'.`,
		Args: cobra.ExactArgs(2),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			newKey, err := a.parseMaintainerKey(args[1])
			if err != nil {
				return err
			}
			setT := cmd.Flags().Changed("threshold")
			return a.maintainerChange(args[0], f, func(cur client.MaintainerSet) (client.MaintainerSet, error) {
				id := tufrepo.KeyID(newKey)
				if _, ok := cur.Keys[id]; ok {
					return cur, api.Errorf(api.CodeBadRequest, "key %s (%s) is already a maintainer key of %s: nothing to add", id, fingerprintOf(newKey), args[0])
				}
				fp := fingerprintOf(newKey)
				for oid, k := range cur.Keys {
					if fingerprintOf(k) == fp {
						return cur, api.Errorf(api.CodeBadRequest, "the public key %s is already a maintainer key of %s (as key ID %s): nothing to add", fp, args[0], oid)
					}
				}
				next := cur.Clone()
				next.Keys[id] = newKey
				if setT {
					next.Threshold = threshold
				}
				return next, nil
			})
		}),
	}
	f.add(cmd)
	cmd.Flags().IntVar(&threshold, "threshold", 0, "also set the threshold (default: keep it)")
	return cmd
}

func (a *app) maintainerRemoveCommand() *cobra.Command {
	var (
		f         changeFlags
		threshold int
	)
	cmd := &cobra.Command{
		Use:   "remove NAME KEYID --key KEY [--threshold T]",
		Short: "Remove a maintainer key from a project",
		Long: `remove takes a maintainer key away from project NAME. KEYID is the key's ID (or a
unique prefix of at least 8 hex digits), its SHA256: fingerprint, or the name of a key in
your key store; 'cairn maintainer list NAME' shows them. The threshold stays as it is
unless --threshold sets it; a threshold above the number of remaining keys is refused.

The published role must still verify without the removed key: if only that key signed
it, first have the remaining maintainers re-sign it ('cairn project resign').`,
		Args: cobra.ExactArgs(2),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			setT := cmd.Flags().Changed("threshold")
			return a.maintainerChange(args[0], f, func(cur client.MaintainerSet) (client.MaintainerSet, error) {
				id, err := a.findMaintainerKey(args[0], cur, args[1])
				if err != nil {
					return cur, err
				}
				next := cur.Clone()
				delete(next.Keys, id)
				if len(next.Keys) == 0 {
					return cur, api.Errorf(api.CodeInvalidThreshold, "key %s is the only maintainer key of %s: a project needs at least one; add the new maintainer's key first ('cairn maintainer add'), then remove this one", id, args[0])
				}
				if setT {
					next.Threshold = threshold
				} else if next.Threshold > len(next.Keys) {
					return cur, api.Errorf(api.CodeInvalidThreshold, "removing key %s would leave %s with %d key(s) and threshold %d, which nobody could meet: lower the threshold in the same change with --threshold %d", short(id), args[0], len(next.Keys), next.Threshold, len(next.Keys))
				}
				return next, nil
			})
		}),
	}
	f.add(cmd)
	cmd.Flags().IntVar(&threshold, "threshold", 0, "also set the threshold (default: keep it)")
	return cmd
}

func (a *app) projectThresholdCommand() *cobra.Command {
	var f changeFlags
	cmd := &cobra.Command{
		Use:   "threshold NAME T --key KEY",
		Short: "Set how many maintainer keys must sign a project's releases",
		Long: `threshold sets the number of maintainer signatures that project NAME's role
metadata needs to T (1 to the number of maintainer keys). It is a maintainer change like
'cairn maintainer add', signed by the current maintainers.

Raising the threshold needs a published role that already carries T signatures, or
clients could no longer verify it: 'cairn project resign NAME --key A --key B' publishes
the current releases again, signed by every key given.`,
		Args: cobra.ExactArgs(2),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			var t int
			if _, err := fmt.Sscanf(args[1], "%d", &t); err != nil || fmt.Sprint(t) != args[1] {
				return api.Errorf(api.CodeInvalidThreshold, "threshold %q is not a whole number", args[1])
			}
			return a.maintainerChange(args[0], f, func(cur client.MaintainerSet) (client.MaintainerSet, error) {
				if t == cur.Threshold {
					return cur, api.Errorf(api.CodeBadRequest, "the threshold of %s is already %d: nothing to change", args[0], t)
				}
				next := cur.Clone()
				next.Threshold = t
				return next, nil
			})
		}),
	}
	f.add(cmd)
	return cmd
}

// findMaintainerKey resolves what the user typed for a maintainer key: a key ID, a unique
// key ID prefix of 8+ hex digits, a SHA256: fingerprint, or a local key name.
func (a *app) findMaintainerKey(project string, cur client.MaintainerSet, arg string) (string, error) {
	arg = strings.TrimSpace(arg)
	if _, ok := cur.Keys[arg]; ok {
		return arg, nil
	}
	var matches []string
	for _, id := range cur.KeyIDs() {
		k := cur.Keys[id]
		if fingerprintOf(k) == arg || (len(arg) >= 8 && strings.HasPrefix(id, strings.ToLower(arg))) {
			matches = append(matches, id)
		}
	}
	if len(matches) == 0 {
		if ks, err := a.keyStore(); err == nil {
			if _, perr := ks.path(arg); perr == nil {
				if kf, lerr := ks.Load(arg); lerr == nil {
					if _, ok := cur.Keys[kf.KeyID]; ok {
						return kf.KeyID, nil
					}
					return "", api.Errorf(api.CodeNotFound, "your key %q (%s) is not a maintainer key of %s: nothing to remove; its keys are %s", arg, kf.KeyID, project, keyListText(cur))
				}
			}
		}
	}
	switch len(matches) {
	case 0:
		return "", api.Errorf(api.CodeNotFound, "%q is not a maintainer key of %s: nothing to remove; its keys are %s", arg, project, keyListText(cur))
	case 1:
		return matches[0], nil
	}
	return "", api.Errorf(api.CodeBadRequest, "%q matches %d maintainer keys of %s (%s): give more of the key ID", arg, len(matches), project, strings.Join(matches, ", "))
}

// changeReport is what the maintainer change commands print with --output json.
type changeReport struct {
	Project   string                `json:"project"`
	Delegator string                `json:"delegator"`
	Snapshot  int64                 `json:"verified_snapshot"`
	Change    client.MaintainerDiff `json:"change"`
	SignedBy  []string              `json:"signed_by"`
	DryRun    bool                  `json:"dry_run,omitempty"`
	// Result is the server's answer; HTTP is its status (201 published, 202 otherwise).
	Result *api.MaintainerChangeResult `json:"result,omitempty"`
	// PublishedIn is the snapshot in which the client verified the new delegation.
	PublishedIn int64 `json:"published_in_snapshot,omitempty"`
}

// maintainerChange runs one maintainer change: it verifies the current delegation,
// computes the new set with mutate, checks every guard rail, shows the change, signs it
// with the keys given and posts it.
func (a *app) maintainerChange(project string, f changeFlags, mutate func(client.MaintainerSet) (client.MaintainerSet, error)) error {
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return err
	}
	if !f.dryRun {
		if err := a.requireToken(); err != nil {
			return err
		}
	}
	kfs, err := a.loadRequiredKeys("--key", f.keys)
	if err != nil {
		return err
	}
	repo, pr, err := a.delegatedProjectRole(project)
	if err != nil {
		return err
	}
	ac, err := a.apiClient()
	if err != nil {
		return err
	}
	p, err := a.serverProject(ac, project, pr)
	if err != nil {
		return err
	}
	cur := client.MaintainersOf(pr)
	for _, kf := range kfs {
		if _, ok := cur.Keys[kf.KeyID]; !ok {
			return api.Errorf(api.CodeKeyNotDelegated, "key %q (%s) is not a maintainer key of %s, so it cannot sign a change; the maintainer keys are %s (%d must sign)", kf.Name, kf.KeyID, project, keyListText(cur), cur.Threshold)
		}
	}
	next, err := mutate(cur)
	if err != nil {
		return err
	}
	if err := client.CheckMaintainerSet(project, next); err != nil {
		return err
	}
	diff := client.DiffMaintainers(project, p.DelegationVersion+1, cur, next)
	if diff.Empty() {
		return api.Errorf(api.CodeBadRequest, "the change leaves the keys and threshold of %s as they are: nothing to sign", project)
	}
	if err := publishedRoleSurvives(project, pr, next, kfs); err != nil {
		return err
	}
	doc := client.NewMaintainerChange(project, diff.Version, next, a.now().Add(client.MaintainerChangeExpiry))
	diff.Expires = doc.Expires
	rep := changeReport{Project: project, Delegator: pr.Delegator, Snapshot: pr.SnapshotVersion, Change: diff, DryRun: f.dryRun, SignedBy: []string{}}
	for _, kf := range kfs {
		rep.SignedBy = append(rep.SignedBy, kf.KeyID)
	}
	if f.output != "json" {
		a.printf("Maintainer change %d of %s (now delegated by %s, verified through snapshot %d):\n", diff.Version, project, pr.Delegator, pr.SnapshotVersion)
		for _, l := range diff.Lines() {
			a.printf("  %s\n", l)
		}
		names := make([]string, len(kfs))
		for i, kf := range kfs {
			names[i] = fmt.Sprintf("%q", kf.Name)
		}
		a.printf("  signed by your key(s) %s; %d of the %d current maintainer keys must sign; the document expires %s\n",
			strings.Join(names, ", "), cur.Threshold, len(cur.Keys), fmtTime(doc.Expires))
	}
	if f.dryRun {
		if f.output == "json" {
			return a.printJSON(rep)
		}
		a.printf("Dry run: nothing was signed or sent.\n")
		return nil
	}

	signers, err := a.openSigners(kfs)
	if err != nil {
		return err
	}
	raw, err := client.SignMaintainerChange(a.ctx, doc, plainSigners(signers)...)
	if err != nil {
		return err
	}
	res, status, err := ac.ChangeMaintainers(a.ctx, project, raw, f.wait)
	if err != nil {
		return queuedChangeConflict(project, pr, diff.Version, err)
	}
	rep.Result = &res
	rep.PublishedIn = a.verifiedPublication(repo, project, res, status, next)
	if f.output == "json" {
		return a.printJSON(rep)
	}
	a.printf("%s\n", describeChangeResult(project, res, rep.PublishedIn))
	return nil
}

// describeChangeResult says where a maintainer change stands, and what comes next.
func describeChangeResult(project string, res api.MaintainerChangeResult, verifiedIn int64) string {
	switch res.Status {
	case "applied":
		if verifiedIn > 0 {
			return fmt.Sprintf("Applied: maintainer change %d of %s is published; snapshot %d delegates %s to the new keys (verified).", res.Version, project, verifiedIn, project)
		}
		return fmt.Sprintf("Applied: the server accepted maintainer change %d of %s and publishes the new delegation in its next snapshot.", res.Version, project)
	case "queued":
		return fmt.Sprintf("Queued for the admins: %s is claimed, so its delegation is signed only with the repository admins' offline keys; maintainer change %d takes effect when they next sign claimed ('cairn admin claim'). Until then the current keys stay in force.", project, res.Version)
	case api.StatusPending:
		return fmt.Sprintf("Pending: maintainer change %d of %s has %d of the %d signatures it needs from the current maintainers; ask a co-maintainer to run 'cairn sign %s'.", res.Version, project, res.Signatures, res.Threshold, project)
	}
	return fmt.Sprintf("Maintainer change %d of %s: %s.", res.Version, project, res.Status)
}

// publishedRoleSurvives refuses a new maintainer set under which the project's current
// role (the one clients verify now) would no longer verify, and says how to fix it.
func publishedRoleSurvives(project string, pr *client.ProjectRole, next client.MaintainerSet, kfs []*tufrepo.KeyFile) error {
	if _, err := tufrepo.VerifyThreshold(pr.Metadata, next.Delegation(project)); err == nil {
		return nil
	}
	var valid []string
	for _, id := range next.KeyIDs() {
		d := client.MaintainerSet{Keys: map[string]*metadata.Key{id: next.Keys[id]}, Threshold: 1}
		if _, err := tufrepo.VerifyThreshold(pr.Metadata, d.Delegation(project)); err == nil {
			valid = append(valid, short(id))
		}
	}
	signedBy := "none"
	if len(valid) > 0 {
		signedBy = strings.Join(valid, ", ")
	}
	example := make([]string, 0, next.Threshold)
	for _, kf := range kfs {
		if _, ok := next.Keys[kf.KeyID]; ok && len(example) < next.Threshold {
			example = append(example, "--key "+kf.Name)
		}
	}
	for len(example) < next.Threshold {
		example = append(example, "--key KEY")
	}
	how := fmt.Sprintf("'cairn project resign %s %s' publishes the current releases again signed by every key given", project, strings.Join(example, " "))
	if next.Threshold > 1 && pr.Threshold < next.Threshold {
		how += fmt.Sprintf(" (the server publishes a role version as soon as today's threshold of %d is met, so the %d signatures must come in one submission)", pr.Threshold, next.Threshold)
	}
	return api.Errorf(api.CodeThresholdNotMet,
		"refused: role version %d of %s, the one clients verify now, is signed by %s of the new maintainer keys, but the new threshold is %d, so TUF clients could no longer verify %s. Fix: first publish a role version signed by %d of the keys that stay — %s — then run this command again",
		pr.Version(), project, signedBy, next.Threshold, project, next.Threshold, how)
}

// serverProject is the server's record of project, checked against its verified
// delegation pr.
func (a *app) serverProject(ac *client.API, project string, pr *client.ProjectRole) (api.Project, error) {
	p, err := ac.Project(a.ctx, project)
	if err != nil {
		return p, err
	}
	return p, client.CheckServerProject(p, pr)
}

// verifiedPublication confirms through TUF, as any client will see it, that a maintainer
// change the server applied and published (201) delegates project to next: it returns the
// snapshot that shows it, or 0.
func (a *app) verifiedPublication(repo *client.Repo, project string, res api.MaintainerChangeResult, status int, next client.MaintainerSet) int64 {
	if res.Status != "applied" || status != http.StatusCreated {
		return 0
	}
	if pr, err := repo.ProjectRole(a.ctx, project); err == nil && sameDelegation(client.MaintainersOf(pr), next) {
		return pr.SnapshotVersion
	}
	return 0
}

func sameDelegation(a, b client.MaintainerSet) bool {
	return a.Threshold == b.Threshold && slices.Equal(a.KeyIDs(), b.KeyIDs())
}

func (a *app) projectResignCommand() *cobra.Command {
	var (
		keys   []string
		wait   time.Duration
		output string
	)
	cmd := &cobra.Command{
		Use:   "resign NAME --key KEY [--key KEY2]...",
		Short: "Publish a project's current releases again, signed by the keys given",
		Long: `resign writes the next version of project NAME's role metadata with exactly the
releases and files of the current (verified) version and a renewed expiry, signs it with
every --key and submits it.

Use it to renew a role before it expires, or before a maintainer change that needs the
published role to carry other or more signatures: raising the threshold to T needs a
role signed by T maintainer keys, and removing a key needs a role that the remaining keys
signed. With fewer signatures than the threshold it becomes a proposal that
co-maintainers sign with 'cairn sign'.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			return a.projectResign(args[0], keys, wait, output)
		}),
	}
	cmd.Flags().StringArrayVar(&keys, "key", nil, "a maintainer key to sign with (required; repeatable)")
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long the server may hold the answer until the version is published")
	addOutputFlag(cmd, &output)
	cmd.MarkFlagRequired("key")
	return cmd
}

func (a *app) projectResign(project string, keyNames []string, wait time.Duration, output string) error {
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return err
	}
	if err := a.requireToken(); err != nil {
		return err
	}
	kfs, err := a.loadRequiredKeys("--key", keyNames)
	if err != nil {
		return err
	}
	_, pr, err := a.projectRole(project)
	if err != nil {
		return err
	}
	for _, kf := range kfs {
		if !pr.TrustsKey(kf.KeyID) {
			return api.Errorf(api.CodeKeyNotDelegated, "key %q (%s) is not a maintainer key of %s; the maintainer keys are %s", kf.Name, kf.KeyID, project, keyListText(client.MaintainersOf(pr)))
		}
	}
	cur := pr.Metadata
	next := metadata.Targets(a.now().UTC().Add(tufrepo.ProjectRoleExpiry).Truncate(time.Second))
	next.Signed.SpecVersion = cur.Signed.SpecVersion
	next.Signed.Version = cur.Signed.Version + 1
	next.Signed.UnrecognizedFields = cur.Signed.UnrecognizedFields
	next.Signed.Targets = maps.Clone(cur.Signed.Targets)
	if next.Signed.Targets == nil {
		next.Signed.Targets = map[string]*metadata.TargetFiles{}
	}
	signers, err := a.openSigners(kfs)
	if err != nil {
		return err
	}
	raw, err := client.SignRole(next, plainSigners(signers)...)
	if err != nil {
		return err
	}
	ac, err := a.apiClient()
	if err != nil {
		return err
	}
	if output != "json" {
		a.notef("Re-signing %s: role version %d → %d, same %d file(s), expires %s, signed by %d of %d maintainer keys (threshold %d)\n",
			project, cur.Signed.Version, next.Signed.Version, len(next.Signed.Targets), fmtTime(next.Signed.Expires), len(kfs), len(pr.KeyIDs), pr.Threshold)
	}
	res, err := ac.SubmitRole(a.ctx, project, raw, wait)
	if err != nil {
		return err
	}
	if output == "json" {
		return a.printJSON(res)
	}
	if res.Status == api.StatusPending {
		a.printf("Role version %d of %s is pending: %d of %d maintainer signatures; ask a co-maintainer to run 'cairn sign %s'.\n", res.RoleVersion, project, res.Signatures, res.Threshold, project)
		return nil
	}
	a.printf("%s\n", describeSubmit(res))
	return nil
}

func (a *app) maintainerListCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list NAME",
		Short: "List a project's maintainer keys, verified through TUF",
		Args:  cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			_, pr, err := a.projectRole(args[0])
			if err != nil {
				return err
			}
			set := client.MaintainersOf(pr)
			type listing struct {
				Project   string           `json:"project"`
				Delegator string           `json:"delegator"`
				Claimed   bool             `json:"claimed"`
				Threshold int              `json:"threshold"`
				Keys      []client.KeyView `json:"keys"`
				Snapshot  int64            `json:"verified_snapshot"`
			}
			l := listing{Project: pr.Name, Delegator: pr.Delegator, Claimed: pr.Claimed(), Threshold: set.Threshold, Keys: []client.KeyView{}, Snapshot: pr.SnapshotVersion}
			for _, id := range set.KeyIDs() {
				l.Keys = append(l.Keys, client.ViewKey(set.Keys[id]))
			}
			if output == "json" {
				return a.printJSON(l)
			}
			a.printf("%s: %d of these %d maintainer keys must sign (delegated by %s, verified through snapshot %d)\n", pr.Name, set.Threshold, len(set.Keys), pr.Delegator, pr.SnapshotVersion)
			tw := a.table()
			fmt.Fprintln(tw, "  KEY ID\tTYPE\tFINGERPRINT")
			for _, k := range l.Keys {
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", k.KeyID, k.KeyType, k.Fingerprint)
			}
			return tw.Flush()
		}),
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// requireMaintainerKey refuses key keyName (kf) unless the verified role of project
// trusts it.
func requireMaintainerKey(pr *client.ProjectRole, project, keyName string, kf *tufrepo.KeyFile) error {
	if pr.TrustsKey(kf.KeyID) {
		return nil
	}
	return api.Errorf(api.CodeKeyNotDelegated, "key %q (%s) is not a maintainer key of project %s; the project trusts %v (threshold %d)", keyName, kf.KeyID, project, pr.KeyIDs, pr.Threshold)
}

// noteThreshold warns that what the user sends (an upload, a change) carries only their
// signature when project needs more than one.
func (a *app) noteThreshold(pr *client.ProjectRole, project, what, keyName string) {
	if pr.Threshold > 1 {
		a.notef("note: %s requires %d maintainer signatures; this %s carries only yours (key %q)\n", project, pr.Threshold, what, keyName)
	}
}

func fingerprintOf(k *metadata.Key) string {
	fp, err := tufrepo.Fingerprint(k)
	if err != nil {
		return "(unusable key)"
	}
	return fp
}

func keyListText(s client.MaintainerSet) string { return delegationKeysText(s.KeyIDs(), s.Keys) }

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// printMaintainerDiff prints a maintainer change in plain language, indented; 'cairn
// sign' uses it for maintainer change proposals.
func (a *app) printMaintainerDiff(indent string, d client.MaintainerDiff) {
	for _, l := range d.Lines() {
		a.printf("%s%s\n", indent, l)
	}
}

// queuedChangeConflict explains the server's refusal of a maintainer change (or of a
// signature on one) of a claimed project for its version: a change already waits for the
// admins, and the next one must build on it, which only the admins' queue holds.
func queuedChangeConflict(project string, pr *client.ProjectRole, version int64, err error) error {
	if !pr.Claimed() {
		return err
	}
	if c := api.CodeOf(err); c != api.CodeVersionConflict && c != api.CodeProposalStale {
		return err
	}
	return api.Wrap(api.CodeVersionConflict, err, "a maintainer change of %s is already queued for the admins, so maintainer change %d, built on the keys clients verify now, cannot be accepted: the next change must build on the queued one (its version follows it and its keys sign it). Nothing changed. Wait until the admins have applied the queued change ('cairn admin claim'), then run this command again. The server said", project, version)
}
