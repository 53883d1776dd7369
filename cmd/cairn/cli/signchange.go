package cli

import (
	"fmt"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/client"
	"github.com/cairn-dev/cairn/tufrepo"
)

// changeProposalView is one open maintainer change as 'cairn sign' presents it.
type changeProposalView struct {
	Version    int64     `json:"version"`
	ProposedBy string    `json:"proposed_by"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// Threshold is how many current maintainers must sign; Signatures how many valid
	// signatures by current maintainer keys it carries, verified locally.
	Threshold  int                   `json:"threshold"`
	Signatures int                   `json:"signatures"`
	Signers    []signerView          `json:"signers"`
	Invalid    []string              `json:"invalid_signatures,omitempty"`
	Untrusted  []string              `json:"untrusted_signatures,omitempty"`
	Change     client.MaintainerDiff `json:"change"`
	// Problem says why the change may not be signed, if it may not.
	Problem string `json:"problem,omitempty"`

	c       *client.SignedMaintainerChange
	problem error
	signed  bool // by the user's key
}

// signChangesOutput is what 'cairn sign --kind maintainers --output json' prints.
type signChangesOutput struct {
	Project   string `json:"project"`
	Kind      string `json:"kind"`
	Server    string `json:"server"`
	Delegator string `json:"delegator"`
	// DelegationVersion is the server's count of applied maintainer changes; the next
	// change is one more.
	DelegationVersion int64                       `json:"delegation_version"`
	SnapshotVersion   int64                       `json:"verified_snapshot"`
	Threshold         int                         `json:"threshold"`
	Key               string                      `json:"key"`
	Proposals         []changeProposalView        `json:"proposals"`
	Result            *api.MaintainerChangeResult `json:"result,omitempty"`
	// PublishedIn is the snapshot in which the client verified the new delegation.
	PublishedIn int64 `json:"published_in_snapshot,omitempty"`
}

// signMaintainerChange reviews the open maintainer changes of project against its
// delegation verified through TUF and co-signs the one chosen with the user's key.
func (a *app) signMaintainerChange(ac *client.API, project string, kf *tufrepo.KeyFile, proposals []api.Proposal, version int64, yes bool, wait time.Duration, output string) error {
	repo, pr, err := a.delegatedProjectRole(project)
	if err != nil {
		return err
	}
	p, err := a.serverProject(ac, project, pr)
	if err != nil {
		return err
	}
	cur := client.MaintainersOf(pr)
	if _, ok := cur.Keys[kf.KeyID]; !ok {
		return api.Errorf(api.CodeKeyNotDelegated, "key %q (%s) is not a maintainer key of project %s, so it cannot sign a maintainer change; the maintainer keys are %s (%d must sign)",
			kf.Name, kf.KeyID, project, keyListText(cur), cur.Threshold)
	}
	now := a.now()
	views := []changeProposalView{}
	for _, pp := range proposals {
		if version != 0 && pp.Version != version {
			continue
		}
		views = append(views, reviewMaintainerProposal(project, pp, pr, p.DelegationVersion, kf, now))
	}
	out := signChangesOutput{Project: project, Kind: api.KindMaintainers, Server: ac.Server(), Delegator: pr.Delegator, DelegationVersion: p.DelegationVersion,
		SnapshotVersion: pr.SnapshotVersion, Threshold: cur.Threshold, Key: kf.KeyID, Proposals: views}
	finish := a.finishWithJSON(output, &out)
	if output != "json" {
		a.notef("Verified the maintainers of %s (delegated by %s, %d of %d keys must sign) through snapshot %d; the server counts %s applied.\n",
			project, pr.Delegator, cur.Threshold, len(cur.Keys), pr.SnapshotVersion, plural(int(p.DelegationVersion), "maintainer change"))
	}
	switch {
	case len(views) == 0 && version != 0:
		return finish(api.Errorf(api.CodeNotFound, "project %s has no open maintainer change with version %d (open: %s)", project, version, proposalVersions(proposals)))
	case len(views) == 0:
		if output != "json" {
			a.printf("No maintainer changes of %s are waiting for signatures.\n", project)
		}
		return finish(nil)
	}
	if output != "json" {
		for i := range views {
			a.printf("\n")
			a.describeMaintainerProposal(project, &views[i], p.DelegationVersion, kf.Name)
		}
		a.printf("\n")
	}
	if len(views) > 1 {
		vs := versionsText(views, func(v changeProposalView) int64 { return v.Version })
		return finish(api.Errorf(api.CodeBadRequest, "%d maintainer changes are open (versions %s): choose the one to sign with --version", len(views), vs))
	}
	v := &views[0]
	if v.problem != nil {
		return finish(fmt.Errorf("not signing maintainer change %d of %s: %w", v.Version, project, v.problem))
	}
	if v.signed {
		return finish(api.Errorf(api.CodeSignatureRepeated, "your key %q (%s) has already signed maintainer change %d of %s (%d of %d signatures): another maintainer must sign it",
			kf.Name, kf.KeyID, v.Version, project, v.Signatures, v.Threshold))
	}
	if ok, err := a.agreeToSign(yes, fmt.Sprintf("Sign maintainer change %d of %s with key %q? [y/N] ", v.Version, project, kf.Name)); !ok {
		return finish(err)
	}
	signer, err := a.openSigner(kf)
	if err != nil {
		return finish(err)
	}
	keyID, sig, err := client.SignMaintainerProposal(a.ctx, v.c, signer.Signer)
	if err != nil {
		return finish(err)
	}
	if keyID != kf.KeyID {
		return finish(keyFileDamaged(kf.Name, kf.KeyID, keyID))
	}
	res, status, err := ac.CoSignMaintainerChange(a.ctx, project, v.Version, keyID, sig, min(wait, 30*time.Second))
	if err != nil {
		return finish(queuedChangeConflict(project, pr, v.Version, err))
	}
	out.Result = &res
	out.PublishedIn = a.verifiedPublication(repo, project, res, status, v.c.Set)
	if output == "json" {
		return finish(nil)
	}
	a.printf("Signed. %s\n", describeChangeResult(project, res, out.PublishedIn))
	return nil
}

// reviewMaintainerProposal compares an open maintainer change with the verified
// delegation of the project (pr; the server counts delegationVersion changes applied) and
// checks it.
func reviewMaintainerProposal(project string, p api.Proposal, pr *client.ProjectRole, delegationVersion int64, kf *tufrepo.KeyFile, now time.Time) changeProposalView {
	cur := client.MaintainersOf(pr)
	v := changeProposalView{Version: p.Version, ProposedBy: p.ProposedBy, CreatedAt: p.CreatedAt.UTC(), ExpiresAt: p.ExpiresAt.UTC(), Threshold: cur.Threshold}
	fail := func(err error) changeProposalView {
		v.problem = err
		v.Problem = api.ProblemFor(err).Detail
		return v
	}
	c, err := client.ParseMaintainerProposal(p)
	if err != nil {
		v.Change = client.MaintainerDiff{Project: project, Version: p.Version}
		return fail(err)
	}
	v.c = c
	v.Change = client.DiffMaintainers(project, c.Doc.Version, cur, c.Set)
	v.Change.Expires = c.Doc.Expires.UTC()
	sc := client.CheckChangeSignatures(c, cur)
	v.Signatures, v.Invalid, v.Untrusted = len(sc.Valid), sc.Invalid, sc.Untrusted
	for _, id := range cur.KeyIDs() {
		sv := signerView{KeyID: id, Fingerprint: fingerprintOf(cur.Keys[id]), Signed: slices.Contains(sc.Valid, id), Proposer: id == p.ProposedBy, You: id == kf.KeyID}
		v.Signers = append(v.Signers, sv)
	}
	v.signed = slices.Contains(sc.Valid, kf.KeyID) || slices.Contains(p.SignedBy, kf.KeyID)

	expires := c.Doc.Expires
	if !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(expires) {
		expires = p.ExpiresAt
	}
	next := delegationVersion + 1
	switch {
	case !expires.After(now):
		return fail(api.Errorf(api.CodeProposalExpired, "the change expired at %s; the proposer must propose it again", expires.UTC().Format(time.RFC3339)))
	case c.Doc.Version < next:
		return fail(api.Errorf(api.CodeProposalStale, "the change no longer applies: %s has had %s since, so the next change is version %d; propose it again", project, plural(int(delegationVersion), "maintainer change"), next))
	case c.Doc.Version > next && pr.Claimed():
		return fail(api.Errorf(api.CodeVersionConflict, "the change is version %d, but the verified maintainers of %s are at version %d: it builds on maintainer change(s) queued for the admins and not yet signed into claimed, so it is signed by keys that cannot be verified here. Wait until the admins have applied the queued change(s) ('cairn admin claim'), then propose it again", c.Doc.Version, project, delegationVersion))
	case c.Doc.Version != next:
		return fail(api.Errorf(api.CodeVersionConflict, "the change is version %d, but the maintainers of %s are at version %d, so the next change is version %d", c.Doc.Version, project, delegationVersion, next))
	case len(sc.Valid) == 0:
		return fail(api.Errorf(api.CodeSignatureInvalid, "no current maintainer's signature on the change verifies, so no maintainer is known to have proposed it (the server may have made it up); do not sign it"))
	case len(sc.Invalid) > 0:
		return fail(api.Errorf(api.CodeSignatureInvalid, "the signature by maintainer key %s does not verify over this change, so the server would refuse it; the proposer must propose it again", short(sc.Invalid[0])))
	case len(sc.Untrusted) > 0:
		return fail(api.Errorf(api.CodeKeyNotDelegated, "the change carries a signature by key %s, which is not a current maintainer key of %s; do not sign it", short(sc.Untrusted[0]), project))
	}
	if err := client.CheckMaintainerSet(project, c.Set); err != nil {
		return fail(err)
	}
	if v.Change.Empty() {
		return fail(api.Errorf(api.CodeBadRequest, "the change leaves the keys and threshold of %s as they are", project))
	}
	if err := publishedRoleSurvives(project, pr, c.Set, []*tufrepo.KeyFile{kf}); err != nil {
		return fail(err)
	}
	return v
}

// describeMaintainerProposal prints one open maintainer change in plain language.
func (a *app) describeMaintainerProposal(project string, v *changeProposalView, delegationVersion int64, keyName string) {
	a.printf("Maintainer change %d of %s (the maintainers are at version %d)\n", v.Version, project, delegationVersion)
	a.printProposer(v.ProposedBy, v.Signers, v.CreatedAt)
	a.printf("  Signatures:  %d of %d required (of the current maintainer keys)\n", v.Signatures, v.Threshold)
	a.printSigners(v.Signers, v.Invalid, v.Untrusted, keyName, "change")
	exp := v.ExpiresAt
	if !v.Change.Expires.IsZero() && (exp.IsZero() || v.Change.Expires.Before(exp)) {
		exp = v.Change.Expires
	}
	if !exp.IsZero() {
		a.printf("  Expires:     %s\n", when(exp, a.now()))
	}
	if v.c != nil {
		a.printf("  Changes:\n")
		a.printMaintainerDiff("    ", v.Change)
	}
	if v.Problem != "" {
		a.printf("  CANNOT BE SIGNED: %s\n", v.Problem)
	}
}
