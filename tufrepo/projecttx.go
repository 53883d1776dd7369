package tufrepo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The project write path: creating a project, submitting a role version that is stored at
// once (a proposal, ?wait=0, a replica without a publisher), co-signing, and maintainer
// changes. The policy lives here — stage or propose, when a proposal is open, expired or
// stale, repeated co-signatures, which maintainer change applies, queues or waits — and runs
// over ProjectTx, the storage operations of one transaction, which store implements (as
// the publisher runs over PublishTx). Complete uploads on a publishing replica take the
// group-commit path instead (submit.go).

// ProjectStore begins the transactions of project writes. fn may be run again (the store
// retries serialization failures and deadlocks); its error rolls everything back.
type ProjectStore interface {
	// InProjectTx runs fn in one transaction.
	InProjectTx(ctx context.Context, fn func(ctx context.Context, tx ProjectTx) error) error
	// InMaintainerTx runs fn in one transaction that first takes the publisher lock: a
	// maintainer change appends to the audit log, and takes the locks in the publisher's
	// own order (publisher lock, then project row).
	InMaintainerTx(ctx context.Context, fn func(ctx context.Context, tx ProjectTx) error) error
}

// StoredProposal is an open or expired proposal as stored.
type StoredProposal struct {
	Signed     []byte
	Signatures []metadata.Signature
	Expires    time.Time
}

// MaintainerState is what a maintainer change is checked against.
type MaintainerState struct {
	// DelegationVersion is the version of the project's applied maintainer change (0 for
	// the keys it was created with); Delegator the role that delegates to the project.
	DelegationVersion int64
	Delegator         string
	// Queued is the newest change queued for the admins, if any.
	Queued *QueuedChange
}

// QueuedChange is a maintainer change waiting for the admins.
type QueuedChange struct {
	Version    int64
	Delegation ProjectDelegation
}

// ProjectTx is the project write path's view of storage inside one transaction. It
// decides nothing: the functions of this file do.
type ProjectTx interface {
	// ProjectWithCanonicalName returns the name of the project whose canonical name
	// (CanonicalProjectName) is canonical, or "" if there is none.
	ProjectWithCanonicalName(ctx context.Context, canonical string) (string, error)
	// InsertProject stores a new project delegated by recently-claimed at roleVersion
	// (project_exists if the name is taken meanwhile).
	InsertProject(ctx context.Context, d ProjectDelegation, roleVersion int64) error
	// AddToTokenScope gives the (non-admin) token id the project in its scope.
	AddToTokenScope(ctx context.Context, id, project string) error
	// LockProject locks the project's row until the transaction ends and returns its
	// state (not_found if there is no such project).
	LockProject(ctx context.Context, project string) (ProjectState, error)
	// BlobSizes looks blob sizes up inside the transaction.
	BlobSizes(ctx context.Context) BlobSizes
	// StageRole stores a complete role version for the publisher: its metadata row, new
	// release files, changed custom data, the project's role version; removes the
	// project's role proposals for that version or earlier (they can never complete
	// now); and wakes the publishers.
	StageRole(ctx context.Context, project string, a *AcceptedRole) error
	// Proposal returns the proposal of kind and version, locked until the transaction
	// ends, or nil if there is none (open or expired).
	Proposal(ctx context.Context, project, kind string, version int64) (*StoredProposal, error)
	// InsertProposal stores a new proposal.
	InsertProposal(ctx context.Context, project, kind string, version int64, p StoredProposal, proposer string) error
	// SetProposalSignatures replaces the signatures of a proposal.
	SetProposalSignatures(ctx context.Context, project, kind string, version int64, sigs []metadata.Signature) error
	// DeleteProposals removes the project's proposals of kind from version from up to
	// version to (from = to: one).
	DeleteProposals(ctx context.Context, project, kind string, from, to int64) error
	// MaintainerState reads the project's maintainer change state.
	MaintainerState(ctx context.Context, project string) (MaintainerState, error)
	// LatestRole returns the project's newest role version, staged or published, or nil.
	LatestRole(ctx context.Context, project string) ([]byte, error)
	// ApplyDelegation gives the project the keys and threshold of d as maintainer change
	// version, to be published by the next publish (recently-claimed re-signed), and
	// wakes the publishers.
	ApplyDelegation(ctx context.Context, project string, d ProjectDelegation, version int64) error
	// RecordMaintainerChange records a complete maintainer change (raw, its signed
	// envelope) with status, and appends it to the audit log at now.
	RecordMaintainerChange(ctx context.Context, project string, version int64, raw []byte, d ProjectDelegation, status string, now time.Time) error
}

// CreateProject validates raw, version 1 of project d's role, and stores the project with
// it: staged for the publisher, or, with fewer than the threshold of signatures, as a
// proposal (the project is then not delegated until that version is complete). A token
// id that is not empty gets the project in its scope. project_exists if the name, or a
// name with the same canonical form, is taken. Nothing is stored when it returns an error.
func CreateProject(ctx context.Context, ps ProjectStore, d ProjectDelegation, tokenID string, raw []byte, now time.Time) (*AcceptedRole, error) {
	var acc *AcceptedRole
	err := ps.InProjectTx(ctx, func(ctx context.Context, tx ProjectTx) error {
		existing, err := tx.ProjectWithCanonicalName(ctx, CanonicalProjectName(d.Name))
		if err != nil {
			return err
		}
		switch {
		case existing == d.Name:
			return api.Errorf(api.CodeProjectExists, "project %q already exists", d.Name)
		case existing != "":
			return api.Errorf(api.CodeProjectExists, "project %q would be confused with existing project %q: choose another name", d.Name, existing)
		}
		a, err := ValidateProposal(raw, ProjectState{Delegation: d}, now, tx.BlobSizes(ctx))
		if err != nil {
			return err
		}
		// A project whose first version still needs co-signers has role_version 0: it is
		// not delegated until that version is complete.
		roleVersion := a.Version
		if !a.Complete() {
			roleVersion = 0
		}
		if err := tx.InsertProject(ctx, d, roleVersion); err != nil {
			return err
		}
		if err := stageOrPropose(ctx, tx, d.Name, a, now); err != nil {
			return err
		}
		if tokenID != "" {
			if err := tx.AddToTokenScope(ctx, tokenID, d.Name); err != nil {
				return err
			}
		}
		acc = a
		return nil
	})
	return acc, err
}

// SubmitRole validates raw, the next version of project's role, under the project's row
// lock and stages it, or, if it carries fewer than the threshold of signatures, keeps it
// as a proposal (AcceptedRole.Complete tells which). Concurrent submissions of one version
// have one winner. Nothing is stored when it returns an error.
func SubmitRole(ctx context.Context, ps ProjectStore, project string, raw []byte, now time.Time) (*AcceptedRole, error) {
	var acc *AcceptedRole
	err := ps.InProjectTx(ctx, func(ctx context.Context, tx ProjectTx) error {
		st, err := tx.LockProject(ctx, project)
		if err != nil {
			return err
		}
		a, err := ValidateProposal(raw, st, now, tx.BlobSizes(ctx))
		if err != nil {
			return err
		}
		if err := stageOrPropose(ctx, tx, project, a, now); err != nil {
			return err
		}
		acc = a
		return nil
	})
	return acc, err
}

// CoSignRole adds sig to the open proposal for version of project's role and checks the
// proposal again with every signature. At the threshold the version is staged and the
// proposal removed. Nothing is stored when it returns an error.
func CoSignRole(ctx context.Context, ps ProjectStore, project string, version int64, sig metadata.Signature, now time.Time) (*AcceptedRole, error) {
	var acc *AcceptedRole
	err := ps.InProjectTx(ctx, func(ctx context.Context, tx ProjectTx) error {
		st, err := tx.LockProject(ctx, project)
		if err != nil {
			return err
		}
		p, err := tx.Proposal(ctx, project, api.KindRole, version)
		if err != nil {
			return err
		}
		stale := api.Errorf(api.CodeProposalStale, "the proposal for version %d of %q no longer applies: version %d is already published; propose again on top of it", version, project, st.CurrentVersion)
		switch {
		case p == nil && version <= st.CurrentVersion:
			return stale
		case p == nil:
			return api.Errorf(api.CodeNotFound, "project %q has no open proposal for version %d: list them with `cairn sign %s`", project, version, project)
		case version != st.CurrentVersion+1:
			return stale
		case !p.Expires.After(now):
			return api.Errorf(api.CodeProposalExpired, "the proposal for version %d of %q expired at %s; propose it again", version, project, p.Expires.UTC().Format(time.RFC3339))
		}
		for _, s := range p.Signatures {
			if s.KeyID == sig.KeyID {
				return api.Errorf(api.CodeSignatureRepeated, "key %s has already signed the proposal for version %d of %q", sig.KeyID, version, project)
			}
		}
		a, err := ValidateProposal(Envelope(p.Signed, append(p.Signatures, sig)), st, now, tx.BlobSizes(ctx))
		if err != nil {
			return err
		}
		if !slices.Contains(a.SignedBy, sig.KeyID) {
			// The same public key under another key ID: it adds nothing.
			return api.Errorf(api.CodeSignatureRepeated, "key %s is a key that has already signed the proposal for version %d of %q", sig.KeyID, version, project)
		}
		if a.Complete() {
			if err := tx.StageRole(ctx, project, a); err != nil {
				return err
			}
		} else if err := tx.SetProposalSignatures(ctx, project, api.KindRole, version, a.Signatures); err != nil {
			return err
		}
		acc = a
		return nil
	})
	return acc, err
}

// stageOrPropose stages a complete role version, or stores an incomplete one as the
// project's proposal for that version, open until ProposalLifetime from now but never
// past the point where the role has less than MinProjectRoleLifetime left.
func stageOrPropose(ctx context.Context, tx ProjectTx, project string, a *AcceptedRole, now time.Time) error {
	if a.Complete() {
		return tx.StageRole(ctx, project, a)
	}
	expires := now.Add(ProposalLifetime)
	if limit := a.Expires.Add(-MinProjectRoleLifetime); limit.Before(expires) {
		expires = limit
	}
	return propose(ctx, tx, project, api.KindRole, a.Version, StoredProposal{Signed: a.Signed, Signatures: a.Signatures, Expires: expires}, a.SignedBy[0], a.Threshold, now)
}

// propose stores a new proposal, refusing while another for the same project, kind and
// version is open (an expired one is replaced).
func propose(ctx context.Context, tx ProjectTx, project, kind string, version int64, p StoredProposal, proposer string, threshold int, now time.Time) error {
	old, err := tx.Proposal(ctx, project, kind, version)
	if err != nil {
		return err
	}
	if old != nil {
		if old.Expires.After(now) {
			return api.Errorf(api.CodeProposalExists, "project %q already has an open %s proposal for version %d (%d of %d signatures, expires %s): co-sign it with `cairn sign %s`, or wait until it expires", project, kind, version, len(old.Signatures), threshold, old.Expires.UTC().Format(time.RFC3339), project)
		}
		if err := tx.DeleteProposals(ctx, project, kind, version, version); err != nil {
			return fmt.Errorf("removing expired proposal: %w", err)
		}
	}
	return tx.InsertProposal(ctx, project, kind, version, p, proposer)
}

// ChangeResult says what became of a maintainer change.
type ChangeResult struct {
	Change *AcceptedChange
	// Status is ChangeApplied, ChangeQueued or ChangePending.
	Status string
}

// Maintainer change outcomes.
const (
	// ChangeApplied: the project is delegated by recently-claimed, so the delegation
	// changes in the next publish.
	ChangeApplied = "applied"
	// ChangeQueued: the project is claimed; the change waits for the admins.
	ChangeQueued = "queued"
	// ChangePending: the change needs more maintainer signatures.
	ChangePending = "pending"
)

// SubmitMaintainerChange validates raw, a maintainer change of project, and applies,
// queues or proposes it. Nothing is stored when it returns an error.
func SubmitMaintainerChange(ctx context.Context, ps ProjectStore, project string, raw []byte, now time.Time) (*ChangeResult, error) {
	return maintainerTx(ctx, ps, project, func(ctx context.Context, tx ProjectTx, cur ProjectDelegation, dv int64, delegator string) (*ChangeResult, error) {
		c, err := ValidateMaintainerChange(raw, cur, dv, now)
		if err != nil {
			return nil, err
		}
		return finishChange(ctx, tx, project, delegator, c, now)
	})
}

// CoSignMaintainerChange adds sig to the open maintainer change proposal of version and
// applies, queues or keeps it as SubmitMaintainerChange does.
func CoSignMaintainerChange(ctx context.Context, ps ProjectStore, project string, version int64, sig metadata.Signature, now time.Time) (*ChangeResult, error) {
	return maintainerTx(ctx, ps, project, func(ctx context.Context, tx ProjectTx, cur ProjectDelegation, dv int64, delegator string) (*ChangeResult, error) {
		p, err := tx.Proposal(ctx, project, api.KindMaintainers, version)
		if err != nil {
			return nil, err
		}
		stale := api.Errorf(api.CodeProposalStale, "the maintainer change %d of %q no longer applies: the maintainers are already at version %d; propose again", version, project, dv)
		switch {
		case p == nil && version <= dv:
			return nil, stale
		case p == nil:
			return nil, api.Errorf(api.CodeNotFound, "project %q has no open maintainer change proposal for version %d", project, version)
		case version != dv+1:
			return nil, stale
		case !p.Expires.After(now):
			return nil, api.Errorf(api.CodeProposalExpired, "the maintainer change proposal %d of %q expired at %s; propose it again", version, project, p.Expires.UTC().Format(time.RFC3339))
		}
		for _, s := range p.Signatures {
			if s.KeyID == sig.KeyID {
				return nil, api.Errorf(api.CodeSignatureRepeated, "key %s has already signed the maintainer change %d of %q", sig.KeyID, version, project)
			}
		}
		c, err := ValidateMaintainerChange(Envelope(p.Signed, append(p.Signatures, sig)), cur, dv, now)
		if err != nil {
			return nil, err
		}
		// Replaced by the new proposal (still pending) or by the change itself.
		if err := tx.DeleteProposals(ctx, project, api.KindMaintainers, version, version); err != nil {
			return nil, err
		}
		return finishChange(ctx, tx, project, delegator, c, now)
	})
}

// maintainerTx runs fn holding the publisher lock and the project's row lock, with the
// delegation a change builds on: the newest change queued for the admins if there is one
// (its keys sign the next change, its version is the one before), else the project's.
func maintainerTx(ctx context.Context, ps ProjectStore, project string, fn func(ctx context.Context, tx ProjectTx, cur ProjectDelegation, dv int64, delegator string) (*ChangeResult, error)) (*ChangeResult, error) {
	var res *ChangeResult
	err := ps.InMaintainerTx(ctx, func(ctx context.Context, tx ProjectTx) error {
		st, err := tx.LockProject(ctx, project)
		if err != nil {
			return err
		}
		ms, err := tx.MaintainerState(ctx, project)
		if err != nil {
			return err
		}
		cur, dv := st.Delegation, ms.DelegationVersion
		if ms.Queued != nil {
			cur, dv = ms.Queued.Delegation, ms.Queued.Version
		}
		r, err := fn(ctx, tx, cur, dv, ms.Delegator)
		if err != nil {
			return err
		}
		res = r
		return nil
	})
	return res, err
}

// finishChange proposes an incomplete change; a complete one must keep the project's
// newest role valid under the new keys, and is applied (recently-claimed) or queued for
// the admins (claimed), recorded and logged.
func finishChange(ctx context.Context, tx ProjectTx, project, delegator string, c *AcceptedChange, now time.Time) (*ChangeResult, error) {
	if !c.Complete() {
		expires := now.Add(ProposalLifetime)
		if c.Doc.Expires.Before(expires) {
			expires = c.Doc.Expires
		}
		err := propose(ctx, tx, project, api.KindMaintainers, c.Doc.Version, StoredProposal{Signed: c.Signed, Signatures: c.Signatures, Expires: expires}, c.SignedBy[0], c.Threshold, now)
		return &ChangeResult{Change: c, Status: ChangePending}, err
	}
	roleRaw, err := tx.LatestRole(ctx, project)
	if err != nil {
		return nil, err
	}
	if roleRaw != nil {
		if err := CheckRoleUnderDelegation(roleRaw, c.New); err != nil {
			return nil, err
		}
	}
	status := ChangeQueued
	if delegator == RoleRecentlyClaimed {
		status = ChangeApplied
		if err := tx.ApplyDelegation(ctx, project, c.New, c.Doc.Version); err != nil {
			return nil, err
		}
	}
	// Proposals for this change version or earlier can never complete now.
	if err := tx.DeleteProposals(ctx, project, api.KindMaintainers, 0, c.Doc.Version); err != nil {
		return nil, err
	}
	if err := tx.RecordMaintainerChange(ctx, project, c.Doc.Version, Envelope(c.Signed, c.Signatures), c.New, status, now); err != nil {
		return nil, err
	}
	return &ChangeResult{Change: c, Status: status}, nil
}
