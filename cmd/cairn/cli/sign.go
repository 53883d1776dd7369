package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func (a *app) signCommand() *cobra.Command {
	var (
		keyName string
		version int64
		kind    string
		yes     bool
		wait    time.Duration
		output  string
	)
	cmd := &cobra.Command{
		Use:   "sign NAME --key KEY [--kind role|maintainers] [--version N] [--yes]",
		Short: "Review and co-sign a project's pending proposals",
		Long: `sign shows the proposals of project NAME that wait for maintainer signatures and
co-signs one with KEY. A proposal is either a new version of the project's role metadata
(kind "role": releases, yanks) or a maintainer change (kind "maintainers": a new set of
maintainer keys and threshold, from 'cairn maintainer add/remove' or 'cairn project
threshold').

A role proposal is a new version of the project's role metadata. It is compared with the
current role as verified through TUF from the pinned root, and described in words: the
releases and files it adds (with sizes and sha256 hashes), the releases it yanks or
unyanks, anything else it changes; who proposed it, which maintainer keys have signed
(verified locally), how many signatures are needed and when it expires.

A proposal is refused, and never signed, unless it is the next version of the verified
role and leaves every published file exactly as it was. KEY must be one of the project's
maintainer keys and must not have signed already.

A maintainer change is compared with the project's delegation verified through TUF (and
checked against the server's record of it): the keys it adds, removes and keeps, with
their fingerprints, and the threshold. Every signature on it is verified locally against
the current maintainer keys. It is refused, and never signed, unless it is the next
change, at least one current maintainer's signature on it verifies and none fails, it
has not expired, the new keys and threshold are usable, and the role clients verify now
would still verify under the new keys.

sign asks for confirmation on a terminal; pass --yes to sign without asking (scripts).
When more than one proposal is open, choose one with --version, and with --kind when
a role version and a maintainer change have the same number.`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("version") && version < 1 {
				return api.Errorf(api.CodeBadRequest, "--version must be a role version or maintainer change version, 1 or more")
			}
			if kind != "" && kind != api.KindRole && kind != api.KindMaintainers {
				return api.Errorf(api.CodeBadRequest, "--kind must be %q or %q, not %q", api.KindRole, api.KindMaintainers, kind)
			}
			return a.sign(args[0], keyName, version, kind, yes, wait, output)
		}),
	}
	cmd.Flags().StringVar(&keyName, "key", "", "your signing key (required)")
	cmd.Flags().Int64Var(&version, "version", 0, "sign the proposal for this role version (or maintainer change version)")
	cmd.Flags().StringVar(&kind, "kind", "", `the kind of proposal to sign: "role" or "maintainers" (default: whichever is open)`)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "sign without asking for confirmation")
	cmd.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for publication once the threshold is met (0: do not wait)")
	addOutputFlag(cmd, &output)
	cmd.MarkFlagRequired("key")
	return cmd
}

// signBasis is what a proposal is judged against: the project's current role and the
// maintainer keys that may sign it.
type signBasis struct {
	current   *metadata.Metadata[metadata.TargetsType] // nil: the project has no published role yet
	keys      map[string]*metadata.Key
	keyIDs    []string
	threshold int
	// verified is set when keys and role come from TUF metadata verified from the pinned
	// root; otherwise (a new project) the keys are the server's unverified word.
	verified  bool
	snapshot  int64
	delegator string
}

// signerView is one maintainer key and whether it has signed a proposal.
type signerView struct {
	KeyID       string `json:"keyid"`
	Fingerprint string `json:"fingerprint"`
	Signed      bool   `json:"signed"`
	Proposer    bool   `json:"proposer,omitempty"`
	You         bool   `json:"you,omitempty"`
}

// proposalView is one proposal as 'cairn sign' presents it.
type proposalView struct {
	Version    int64              `json:"version"`
	ProposedBy string             `json:"proposed_by"`
	CreatedAt  time.Time          `json:"created_at"`
	ExpiresAt  time.Time          `json:"expires_at"`
	Threshold  int                `json:"threshold"`
	Signatures int                `json:"signatures"` // valid signatures by maintainer keys, verified locally
	Signers    []signerView       `json:"signers"`
	Invalid    []string           `json:"invalid_signatures,omitempty"`
	Untrusted  []string           `json:"untrusted_signatures,omitempty"`
	Changes    client.RoleChanges `json:"changes"`
	// Problem says why the proposal may not be signed, if it may not.
	Problem string `json:"problem,omitempty"`

	md      *metadata.Metadata[metadata.TargetsType]
	problem error
	signed  bool // by the user's key
}

// signOutput is what 'cairn sign --output json' prints.
type signOutput struct {
	Project         string            `json:"project"`
	Kind            string            `json:"kind"`
	Server          string            `json:"server"`
	CurrentVersion  int64             `json:"current_version"`
	Verified        bool              `json:"verified"`
	SnapshotVersion int64             `json:"snapshot_version,omitempty"`
	Threshold       int               `json:"threshold"`
	Key             string            `json:"key"`
	Proposals       []proposalView    `json:"proposals"`
	Result          *api.SubmitResult `json:"result,omitempty"`
}

func (a *app) sign(project, keyName string, version int64, kind string, yes bool, wait time.Duration, output string) error {
	if err := tufrepo.ValidateProjectName(project); err != nil {
		return err
	}
	if err := a.requireToken(); err != nil {
		return err
	}
	kf, err := a.loadKey(keyName)
	if err != nil {
		return err
	}
	ac, err := a.apiClient()
	if err != nil {
		return err
	}
	pl, err := ac.Pending(a.ctx, project)
	if err != nil {
		return err
	}
	var roles, changes []api.Proposal
	var unknown int
	for _, p := range pl.Proposals {
		switch p.Kind {
		case "", api.KindRole:
			roles = append(roles, p)
		case api.KindMaintainers:
			changes = append(changes, p)
		default:
			unknown++
		}
	}
	if unknown > 0 && output != "json" {
		a.notef("note: %s also has %s of a kind this version of cairn does not know.\n", project, plural(unknown, "proposal"))
	}
	if kind == "" {
		nr, nc := countVersion(roles, version), countVersion(changes, version)
		switch {
		case nr > 0 && nc > 0:
			what := "open"
			if version != 0 {
				what = fmt.Sprintf("open with version %d", version)
			}
			return api.Errorf(api.CodeBadRequest, "project %s has both a role proposal and a maintainer change %s (role versions %s; maintainer changes %s): choose one with --kind role or --kind maintainers",
				project, what, proposalVersions(roles), proposalVersions(changes))
		case nc > 0:
			kind = api.KindMaintainers
		case nr == 0 && version != 0 && len(changes) > 0:
			return api.Errorf(api.CodeNotFound, "project %s has no open proposal with version %d (role versions: %s; maintainer changes: %s)", project, version, proposalVersions(roles), proposalVersions(changes))
		default:
			kind = api.KindRole
		}
	}
	if kind == api.KindMaintainers {
		return a.signMaintainerChange(ac, project, kf, changes, version, yes, wait, output)
	}
	if len(changes) > 0 && output != "json" {
		a.notef("note: %s also has %s open (maintainer changes %s): review it with 'cairn sign %s --kind maintainers'.\n", project, plural(len(changes), "maintainer change"), proposalVersions(changes), project)
	}
	pl.Proposals = roles
	basis, err := a.signBasis(ac, project, pl.Proposals)
	if err != nil {
		return err
	}
	if !slices.Contains(basis.keyIDs, kf.KeyID) {
		return api.Errorf(api.CodeKeyNotDelegated, "key %q (%s) is not a maintainer key of project %s; its maintainer keys are %s (%d must sign)",
			keyName, kf.KeyID, project, strings.Join(basis.keyIDs, ", "), basis.threshold)
	}

	views := make([]proposalView, 0, len(pl.Proposals))
	for _, p := range pl.Proposals {
		if version != 0 && p.Version != version {
			continue
		}
		views = append(views, reviewProposal(project, p, basis, kf.KeyID, a.now()))
	}
	out := signOutput{Project: project, Kind: api.KindRole, Server: ac.Server(), Verified: basis.verified, SnapshotVersion: basis.snapshot, Threshold: basis.threshold, Key: kf.KeyID, Proposals: views}
	if basis.current != nil {
		out.CurrentVersion = basis.current.Signed.Version
	}
	finish := a.finishWithJSON(output, &out)

	if output != "json" {
		a.describeBasis(project, basis)
	}
	switch {
	case len(views) == 0 && version != 0:
		return finish(api.Errorf(api.CodeNotFound, "project %s has no open proposal for role version %d (open: %s)", project, version, proposalVersions(pl.Proposals)))
	case len(views) == 0:
		if output != "json" {
			a.printf("No proposals of %s are waiting for signatures.\n", project)
		}
		return finish(nil)
	}
	if output != "json" {
		for i := range views {
			a.printf("\n")
			a.describeProposal(project, &views[i], keyName)
		}
		a.printf("\n")
	}
	if len(views) > 1 {
		vs := versionsText(views, func(v proposalView) int64 { return v.Version })
		return finish(api.Errorf(api.CodeBadRequest, "%d proposals are open (role versions %s): choose the one to sign with --version", len(views), vs))
	}
	v := &views[0]
	if v.problem != nil {
		return finish(fmt.Errorf("not signing the proposal for role version %d of %s: %w", v.Version, project, v.problem))
	}
	if v.signed {
		return finish(api.Errorf(api.CodeSignatureRepeated, "your key %q (%s) has already signed the proposal for role version %d of %s (%d of %d signatures): another maintainer must sign it",
			keyName, kf.KeyID, v.Version, project, v.Signatures, v.Threshold))
	}
	if ok, err := a.agreeToSign(yes, fmt.Sprintf("Sign role version %d of %s with key %q? [y/N] ", v.Version, project, keyName)); !ok {
		return finish(err)
	}

	signer, err := a.openSigner(kf)
	if err != nil {
		return finish(err)
	}
	keyID, sig, err := client.SignProposal(v.md, signer.Signer)
	if err != nil {
		return finish(err)
	}
	if keyID != kf.KeyID {
		return finish(keyFileDamaged(keyName, kf.KeyID, keyID))
	}
	res, err := a.submitAndAwait(ac, project, wait, func(serverWait time.Duration) (api.SubmitResult, error) {
		return ac.CoSign(a.ctx, project, v.Version, keyID, sig, serverWait)
	})
	if err != nil {
		return finish(err)
	}
	out.Result = &res
	if output == "json" {
		return finish(nil)
	}
	switch res.Status {
	case api.StatusPending:
		a.printf("Signed. %s\n", describePending(res))
	case api.StatusPublished:
		a.printf("Signed. Role version %d of %s has %d of %d signatures and is published in snapshot %d.\n", res.RoleVersion, project, v.Threshold, v.Threshold, res.SnapshotVersion)
	default:
		a.printf("Signed. %s\n", describeSubmit(res))
	}
	return nil
}

// signBasis finds what proposals are judged against. Normally that is the project's role
// verified through TUF. A project whose first version is itself still a proposal has no
// verified role yet: then, and only when every open proposal is for version 1, the
// maintainer keys are taken from the server's (unverified) project record, and
// describeBasis says so.
func (a *app) signBasis(ac *client.API, project string, proposals []api.Proposal) (*signBasis, error) {
	repo, err := a.repo()
	if err != nil {
		return nil, err
	}
	pr, err := repo.ProjectRole(a.ctx, project)
	if err == nil {
		if len(pr.KeyIDs) == 0 {
			return nil, api.Errorf(api.CodeKeyNotDelegated, "no verified role delegates to project %s", project)
		}
		return &signBasis{current: pr.Metadata, keys: pr.Keys, keyIDs: pr.KeyIDs, threshold: pr.Threshold, verified: true, snapshot: pr.SnapshotVersion, delegator: pr.Delegator}, nil
	}
	if !client.IsNotFound(err) || len(proposals) == 0 || slices.ContainsFunc(proposals, func(p api.Proposal) bool { return p.Version != 1 }) {
		return nil, err
	}
	p, perr := ac.Project(a.ctx, project)
	if perr != nil {
		return nil, perr
	}
	b := &signBasis{keys: map[string]*metadata.Key{}, threshold: p.Threshold}
	for _, m := range p.Maintainers {
		var w api.Key
		w.KeyType, w.Scheme, w.KeyVal.Public = m.KeyType, m.Scheme, m.Public
		k, err := tufrepo.KeyFromAPI(w)
		if err != nil {
			return nil, fmt.Errorf("the server lists a maintainer key of %s that is not valid: %w", project, err)
		}
		if id := tufrepo.KeyID(k); id != m.KeyID {
			return nil, api.Errorf(api.CodeInvalidKey, "the server lists maintainer key %s of %s, but that public key has ID %s", m.KeyID, project, id)
		}
		b.keys[m.KeyID] = k
		b.keyIDs = append(b.keyIDs, m.KeyID)
	}
	slices.Sort(b.keyIDs)
	if b.threshold < 1 || b.threshold > len(b.keyIDs) {
		return nil, api.Errorf(api.CodeInvalidThreshold, "the server gives project %s threshold %d with %d maintainer key(s)", project, b.threshold, len(b.keyIDs))
	}
	return b, nil
}

// reviewProposal compares a proposal with the basis and checks it.
func reviewProposal(project string, p api.Proposal, b *signBasis, ownKeyID string, now time.Time) proposalView {
	v := proposalView{Version: p.Version, ProposedBy: p.ProposedBy, CreatedAt: p.CreatedAt.UTC(), ExpiresAt: p.ExpiresAt.UTC(), Threshold: b.threshold}
	md, err := client.ParseProposal(p)
	if err != nil {
		v.problem = err
		v.Problem = api.ProblemFor(err).Detail
		v.Changes = client.RoleChanges{Project: project, ToVersion: p.Version}
		return v
	}
	v.md = md
	v.Changes = client.DiffRoles(project, b.current, md)
	sc := client.CheckSignatures(md, b.keys, b.keyIDs)
	v.Signatures, v.Invalid, v.Untrusted = len(sc.Valid), sc.Invalid, sc.Untrusted
	for _, id := range b.keyIDs {
		sv := signerView{KeyID: id, Signed: slices.Contains(sc.Valid, id), Proposer: id == p.ProposedBy, You: id == ownKeyID}
		if fp, err := tufrepo.Fingerprint(b.keys[id]); err == nil {
			sv.Fingerprint = fp
		}
		v.Signers = append(v.Signers, sv)
	}
	v.signed = slices.Contains(sc.Valid, ownKeyID) || slices.Contains(p.SignedBy, ownKeyID)

	switch {
	case !p.ExpiresAt.IsZero() && !p.ExpiresAt.After(now):
		v.problem = api.Errorf(api.CodeProposalExpired, "the proposal expired at %s; the proposer must propose again", p.ExpiresAt.UTC().Format(time.RFC3339))
	default:
		v.problem = client.CheckProposal(project, b.current, md, now)
	}
	if v.problem == nil && len(sc.Valid) == 0 {
		v.problem = api.Errorf(api.CodeSignatureInvalid, "no maintainer's signature on the proposal verifies, so no maintainer is known to have proposed it (the server may have made it up); do not sign it")
	}
	if v.problem != nil {
		v.Problem = api.ProblemFor(v.problem).Detail
	}
	return v
}

// describeBasis says what the proposals are compared with.
func (a *app) describeBasis(project string, b *signBasis) {
	if b.verified {
		a.notef("Verified %s role version %d (delegated by %s, %d of %d maintainer keys must sign) through snapshot %d.\n",
			project, b.current.Signed.Version, b.delegator, b.threshold, len(b.keyIDs), b.snapshot)
		return
	}
	a.notef("Project %s is not published yet: its maintainer keys below are what the server reports, NOT verified through TUF.\nCheck their fingerprints with your co-maintainers before you sign.\n", project)
}

// describeProposal prints one proposal in plain language.
func (a *app) describeProposal(project string, v *proposalView, keyName string) {
	c := v.Changes
	if c.FromVersion == 0 {
		a.printf("Proposal: role version %d of %s, the first version of a new project\n", v.Version, project)
	} else {
		a.printf("Proposal: role version %d of %s (the verified role is at version %d)\n", v.Version, project, c.FromVersion)
	}
	a.printProposer(v.ProposedBy, v.Signers, v.CreatedAt)
	a.printf("  Signatures:  %d of %d required\n", v.Signatures, v.Threshold)
	a.printSigners(v.Signers, v.Invalid, v.Untrusted, keyName, "proposal")
	if !v.ExpiresAt.IsZero() {
		a.printf("  Expires:     %s\n", when(v.ExpiresAt, a.now()))
	}
	a.printf("  Changes:\n")
	for _, line := range c.Lines() {
		a.printf("    %s\n", line)
	}
	if v.Problem != "" {
		a.printf("  CANNOT BE SIGNED: %s\n", v.Problem)
	}
}

// printProposer says which key proposed (with its fingerprint, if it is a maintainer key)
// and when.
func (a *app) printProposer(proposedBy string, signers []signerView, created time.Time) {
	proposer := short(proposedBy)
	for _, s := range signers {
		if s.KeyID == proposedBy {
			proposer += "  " + s.Fingerprint
		}
	}
	a.printf("  Proposed by: key %s, %s\n", proposer, when(created, a.now()))
}

// printSigners lists the maintainer keys and whether each signed, then warns of every
// signature that does not verify or is not by a maintainer key.
func (a *app) printSigners(signers []signerView, invalid, untrusted []string, keyName, what string) {
	for _, s := range signers {
		state := "not signed"
		if s.Signed {
			state = "signed    "
		}
		var notes []string
		if s.Proposer {
			notes = append(notes, "proposer")
		}
		if s.You {
			notes = append(notes, fmt.Sprintf("your key %q", keyName))
		}
		note := ""
		if len(notes) > 0 {
			note = "  <- " + strings.Join(notes, ", ")
		}
		a.printf("    %s  key %s  %s%s\n", state, short(s.KeyID), s.Fingerprint, note)
	}
	for _, id := range invalid {
		a.printf("    WARNING: the signature by maintainer key %s does not verify over this %s\n", short(id), what)
	}
	for _, id := range untrusted {
		a.printf("    WARNING: the %s carries a signature by key %s, which is not a maintainer key\n", what, short(id))
	}
}

// countVersion counts the proposals of version (all of them for 0).
func countVersion(ps []api.Proposal, version int64) int {
	n := 0
	for _, p := range ps {
		if version == 0 || p.Version == version {
			n++
		}
	}
	return n
}

// proposalVersions lists the versions of proposals, or "none".
func proposalVersions(ps []api.Proposal) string {
	if len(ps) == 0 {
		return "none"
	}
	return versionsText(ps, func(p api.Proposal) int64 { return p.Version })
}

// versionsText lists the versions of items, separated by commas.
func versionsText[T any](items []T, version func(T) int64) string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = fmt.Sprint(version(it))
	}
	return strings.Join(out, ", ")
}
