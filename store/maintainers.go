package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ChangeValidator checks a maintainer change document against the current delegation.
type ChangeValidator func(raw []byte, current tufrepo.ProjectDelegation, currentVersion int64) (*tufrepo.AcceptedChange, error)

// ChangeResult says what became of a maintainer change.
type ChangeResult struct {
	Change *tufrepo.AcceptedChange
	// Status is "applied" (recently-claimed: the delegation changes in the next publish),
	// "queued" (claimed: waits for the admins) or "pending" (needs more signatures).
	Status string
}

// Maintainer change outcomes.
const (
	ChangeApplied = "applied"
	ChangeQueued  = "queued"
	ChangePending = "pending"
)

// SubmitMaintainerChange validates a maintainer change of project and applies, queues or
// proposes it. Nothing is stored when it returns an error.
func (db *DB) SubmitMaintainerChange(ctx context.Context, project string, raw []byte, now time.Time, validate ChangeValidator) (*ChangeResult, error) {
	return db.maintainerTx(ctx, project, func(ctx context.Context, tx pgx.Tx, st tufrepo.ProjectState, dv int64, delegator string) (*ChangeResult, error) {
		c, err := validate(raw, st.Delegation, dv)
		if err != nil {
			return nil, err
		}
		return finishChange(ctx, tx, project, delegator, c, now)
	})
}

// CoSignMaintainerChange adds sig to the open maintainer change proposal of version.
func (db *DB) CoSignMaintainerChange(ctx context.Context, project string, version int64, sig metadata.Signature, now time.Time, validate ChangeValidator) (*ChangeResult, error) {
	return db.maintainerTx(ctx, project, func(ctx context.Context, tx pgx.Tx, st tufrepo.ProjectState, dv int64, delegator string) (*ChangeResult, error) {
		var signed, sigsJSON []byte
		var exp time.Time
		err := tx.QueryRow(ctx, `SELECT signed, signatures, expires_at FROM proposals WHERE project = $1 AND kind = 'maintainers' AND version = $2 FOR UPDATE`, project, version).Scan(&signed, &sigsJSON, &exp)
		if errors.Is(err, pgx.ErrNoRows) && version <= dv {
			return nil, api.Errorf(api.CodeProposalStale, "the maintainer change %d of %q no longer applies: the maintainers are already at version %d; propose again", version, project, dv)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, api.Errorf(api.CodeNotFound, "project %q has no open maintainer change proposal for version %d", project, version)
		}
		if err != nil {
			return nil, fmt.Errorf("reading proposal: %w", err)
		}
		if version != dv+1 {
			return nil, api.Errorf(api.CodeProposalStale, "the maintainer change %d of %q no longer applies: the maintainers are already at version %d; propose again", version, project, dv)
		}
		if !exp.After(now) {
			return nil, api.Errorf(api.CodeProposalExpired, "the maintainer change proposal %d of %q expired at %s; propose it again", version, project, exp.UTC().Format(time.RFC3339))
		}
		var sigs []metadata.Signature
		if err := json.Unmarshal(sigsJSON, &sigs); err != nil {
			return nil, err
		}
		for _, s := range sigs {
			if s.KeyID == sig.KeyID {
				return nil, api.Errorf(api.CodeSignatureRepeated, "key %s has already signed the maintainer change %d of %q", sig.KeyID, version, project)
			}
		}
		c, err := validate(tufrepo.Envelope(signed, append(sigs, sig)), st.Delegation, dv)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM proposals WHERE project = $1 AND kind = 'maintainers' AND version = $2`, project, version); err != nil {
			return nil, err
		}
		return finishChange(ctx, tx, project, delegator, c, now)
	})
}

// maintainerTx runs fn holding the publisher lock (the audit log is appended here) and the
// project's row lock, in that order, the publisher's own order.
func (db *DB) maintainerTx(ctx context.Context, project string, fn func(ctx context.Context, tx pgx.Tx, st tufrepo.ProjectState, dv int64, delegator string) (*ChangeResult, error)) (*ChangeResult, error) {
	var res *ChangeResult
	err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, publisherLockID); err != nil {
			return err
		}
		st, err := lockProject(ctx, tx, project)
		if err != nil {
			return err
		}
		var dv int64
		var delegator string
		if err := tx.QueryRow(ctx, `SELECT delegation_version, delegator FROM projects WHERE name = $1`, project).Scan(&dv, &delegator); err != nil {
			return err
		}
		// Changes chain: a change queued for the admins is what the next one builds on (its
		// keys sign it, its version is the one before).
		var keys []byte
		var keyids []string
		var threshold int
		var qv int64
		err = tx.QueryRow(ctx, `SELECT keys, keyids, threshold, version FROM maintainer_changes WHERE project = $1 AND status = 'queued' ORDER BY version DESC LIMIT 1`, project).Scan(&keys, &keyids, &threshold, &qv)
		switch {
		case err == nil:
			d := tufrepo.ProjectDelegation{Name: project, KeyIDs: keyids, Threshold: threshold}
			if err := json.Unmarshal(keys, &d.Keys); err != nil {
				return err
			}
			st.Delegation, dv = d, qv
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("reading queued maintainer changes: %w", err)
		}
		r, err := fn(ctx, tx, st, dv, delegator)
		if err != nil {
			return err
		}
		res = r
		return nil
	})
	return res, err
}

func finishChange(ctx context.Context, tx pgx.Tx, project, delegator string, c *tufrepo.AcceptedChange, now time.Time) (*ChangeResult, error) {
	if !c.Complete() {
		err := insertProposal(ctx, tx, project, api.KindMaintainers, c.Doc.Version, c.Signed, c.Signatures, c.SignedBy[0], c.Threshold, minTime(now.Add(tufrepo.ProposalLifetime), c.Doc.Expires), now)
		return &ChangeResult{Change: c, Status: ChangePending}, err
	}
	var roleRaw []byte
	err := tx.QueryRow(ctx, `SELECT raw FROM metadata WHERE role = $1 ORDER BY version DESC LIMIT 1`, project).Scan(&roleRaw)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("reading role of %s: %w", project, err)
	}
	if err == nil {
		if err := tufrepo.CheckRoleUnderDelegation(roleRaw, c.New); err != nil {
			return nil, err
		}
	}
	status := ChangeQueued
	if delegator == tufrepo.RoleRecentlyClaimed {
		status = ChangeApplied
		keys, err := json.Marshal(c.New.Keys)
		if err != nil {
			return nil, err
		}
		// delegated = false: the publisher re-signs recently-claimed with the new keys.
		if _, err := tx.Exec(ctx, `UPDATE projects SET keys = $2, keyids = $3, threshold = $4, delegation_version = $5, delegated = false WHERE name = $1`,
			project, keys, c.New.KeyIDs, c.New.Threshold, c.Doc.Version); err != nil {
			return nil, fmt.Errorf("applying maintainer change: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ChannelStaged, project); err != nil {
			return nil, err
		}
	}
	keys, err := json.Marshal(c.New.Keys)
	if err != nil {
		return nil, err
	}
	// Proposals for this change version or earlier can never complete now.
	if _, err := tx.Exec(ctx, `DELETE FROM proposals WHERE project = $1 AND kind = 'maintainers' AND version <= $2`, project, c.Doc.Version); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO maintainer_changes (project, version, raw, keys, keyids, threshold, status) VALUES ($1,$2,$3,$4,$5,$6,$7)`,
		project, c.Doc.Version, tufrepo.Envelope(c.Signed, c.Signatures), keys, c.New.KeyIDs, c.New.Threshold, status); err != nil {
		return nil, fmt.Errorf("recording maintainer change: %w", err)
	}
	var snap int64
	if err := tx.QueryRow(ctx, `SELECT snapshot_version FROM repo_state WHERE id = 1`).Scan(&snap); err != nil {
		return nil, err
	}
	raw := tufrepo.Envelope(c.Signed, c.Signatures)
	if err := appendAudit(ctx, tx, []api.LogEntry{logEntry(api.ActionAccepted, project+"@maintainers", c.Doc.Version, raw, snap, now)}); err != nil {
		return nil, err
	}
	return &ChangeResult{Change: c, Status: status}, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
