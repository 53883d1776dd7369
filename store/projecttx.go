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

// InProjectTx implements tufrepo.ProjectStore: fn runs in one transaction (retried on
// serialization failures and deadlocks, as InTx).
func (db *DB) InProjectTx(ctx context.Context, fn func(ctx context.Context, tx tufrepo.ProjectTx) error) error {
	return db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		return fn(ctx, projectTx{tx: tx})
	})
}

// InMaintainerTx implements tufrepo.ProjectStore: InProjectTx holding the publisher lock,
// taken first.
func (db *DB) InMaintainerTx(ctx context.Context, fn func(ctx context.Context, tx tufrepo.ProjectTx) error) error {
	return db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, publisherLockID); err != nil {
			return err
		}
		return fn(ctx, projectTx{tx: tx})
	})
}

// projectTx implements tufrepo.ProjectTx: SQL only, the policy is tufrepo's.
type projectTx struct {
	tx pgx.Tx
}

var _ tufrepo.ProjectStore = (*DB)(nil)

func (p projectTx) ProjectWithCanonicalName(ctx context.Context, canonical string) (string, error) {
	var name string
	err := p.tx.QueryRow(ctx, `SELECT name FROM projects WHERE canonical_name = $1`, canonical).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("checking project name: %w", err)
	}
	return name, nil
}

func (p projectTx) InsertProject(ctx context.Context, d tufrepo.ProjectDelegation, roleVersion int64) error {
	keys, err := json.Marshal(d.Keys)
	if err != nil {
		return err
	}
	_, err = p.tx.Exec(ctx, `INSERT INTO projects (name, canonical_name, delegator, threshold, keys, keyids, role_version) VALUES ($1,$2,'recently-claimed',$3,$4,$5,$6)`,
		d.Name, tufrepo.CanonicalProjectName(d.Name), d.Threshold, keys, d.KeyIDs, roleVersion)
	if isUniqueViolation(err) {
		return api.Errorf(api.CodeProjectExists, "project %q already exists", d.Name)
	}
	if err != nil {
		return fmt.Errorf("storing project %s: %w", d.Name, err)
	}
	return nil
}

func (p projectTx) AddToTokenScope(ctx context.Context, id, project string) error {
	if _, err := p.tx.Exec(ctx, `UPDATE tokens SET projects = array_append(projects, $2) WHERE id = $1 AND NOT admin`, id, project); err != nil {
		return fmt.Errorf("adding project to token scope: %w", err)
	}
	return nil
}

func (p projectTx) LockProject(ctx context.Context, project string) (tufrepo.ProjectState, error) {
	return lockProject(ctx, p.tx, project)
}

func (p projectTx) BlobSizes(ctx context.Context) tufrepo.BlobSizes { return blobSizes(ctx, p.tx) }

func (p projectTx) StageRole(ctx context.Context, project string, a *tufrepo.AcceptedRole) error {
	if err := stageRole(ctx, p.tx, project, a); err != nil {
		return err
	}
	if _, err := p.tx.Exec(ctx, `UPDATE projects SET role_version = $2 WHERE name = $1`, project, a.Version); err != nil {
		return fmt.Errorf("updating project %s: %w", project, err)
	}
	return nil
}

func (p projectTx) Proposal(ctx context.Context, project, kind string, version int64) (*tufrepo.StoredProposal, error) {
	var sp tufrepo.StoredProposal
	var sigs []byte
	err := p.tx.QueryRow(ctx, `SELECT signed, signatures, expires_at FROM proposals WHERE project = $1 AND kind = $2 AND version = $3 FOR UPDATE`, project, kind, version).Scan(&sp.Signed, &sigs, &sp.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s proposal %d of %s: %w", kind, version, project, err)
	}
	if err := json.Unmarshal(sigs, &sp.Signatures); err != nil {
		return nil, fmt.Errorf("decoding proposal signatures: %w", err)
	}
	return &sp, nil
}

func (p projectTx) InsertProposal(ctx context.Context, project, kind string, version int64, sp tufrepo.StoredProposal, proposer string) error {
	b, err := json.Marshal(sp.Signatures)
	if err != nil {
		return err
	}
	_, err = p.tx.Exec(ctx, `INSERT INTO proposals (project, kind, version, signed, signatures, proposed_by, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7)`,
		project, kind, version, sp.Signed, b, proposer, sp.Expires)
	if err != nil {
		return fmt.Errorf("storing %s proposal for %s version %d: %w", kind, project, version, err)
	}
	return nil
}

func (p projectTx) SetProposalSignatures(ctx context.Context, project, kind string, version int64, sigs []metadata.Signature) error {
	b, err := json.Marshal(sigs)
	if err != nil {
		return err
	}
	if _, err := p.tx.Exec(ctx, `UPDATE proposals SET signatures = $4 WHERE project = $1 AND kind = $2 AND version = $3`, project, kind, version, b); err != nil {
		return fmt.Errorf("adding signature: %w", err)
	}
	return nil
}

func (p projectTx) DeleteProposals(ctx context.Context, project, kind string, from, to int64) error {
	if _, err := p.tx.Exec(ctx, `DELETE FROM proposals WHERE project = $1 AND kind = $2 AND version BETWEEN $3 AND $4`, project, kind, from, to); err != nil {
		return fmt.Errorf("removing %s proposals of %s: %w", kind, project, err)
	}
	return nil
}

func (p projectTx) MaintainerState(ctx context.Context, project string) (tufrepo.MaintainerState, error) {
	var ms tufrepo.MaintainerState
	if err := p.tx.QueryRow(ctx, `SELECT delegation_version, delegator FROM projects WHERE name = $1`, project).Scan(&ms.DelegationVersion, &ms.Delegator); err != nil {
		return ms, fmt.Errorf("reading maintainers of %s: %w", project, err)
	}
	var keys []byte
	q := tufrepo.QueuedChange{Delegation: tufrepo.ProjectDelegation{Name: project}}
	err := p.tx.QueryRow(ctx, `SELECT keys, keyids, threshold, version FROM maintainer_changes WHERE project = $1 AND status = 'queued' ORDER BY version DESC LIMIT 1`, project).
		Scan(&keys, &q.Delegation.KeyIDs, &q.Delegation.Threshold, &q.Version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ms, nil
	case err != nil:
		return ms, fmt.Errorf("reading queued maintainer changes: %w", err)
	}
	if err := json.Unmarshal(keys, &q.Delegation.Keys); err != nil {
		return ms, fmt.Errorf("decoding keys of a queued maintainer change of %s: %w", project, err)
	}
	ms.Queued = &q
	return ms, nil
}

func (p projectTx) LatestRole(ctx context.Context, project string) ([]byte, error) {
	var raw []byte
	err := p.tx.QueryRow(ctx, `SELECT raw FROM metadata WHERE role = $1 ORDER BY version DESC LIMIT 1`, project).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading role of %s: %w", project, err)
	}
	return raw, nil
}

func (p projectTx) ApplyDelegation(ctx context.Context, project string, d tufrepo.ProjectDelegation, version int64) error {
	keys, err := json.Marshal(d.Keys)
	if err != nil {
		return err
	}
	// delegated = false: the publisher re-signs recently-claimed with the new keys.
	if _, err := p.tx.Exec(ctx, `UPDATE projects SET keys = $2, keyids = $3, threshold = $4, delegation_version = $5, delegated = false WHERE name = $1`,
		project, keys, d.KeyIDs, d.Threshold, version); err != nil {
		return fmt.Errorf("applying maintainer change: %w", err)
	}
	if _, err := p.tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ChannelStaged, project); err != nil {
		return fmt.Errorf("notifying publisher: %w", err)
	}
	return nil
}

func (p projectTx) RecordMaintainerChange(ctx context.Context, project string, version int64, raw []byte, d tufrepo.ProjectDelegation, status string, now time.Time) error {
	keys, err := json.Marshal(d.Keys)
	if err != nil {
		return err
	}
	if _, err := p.tx.Exec(ctx, `INSERT INTO maintainer_changes (project, version, raw, keys, keyids, threshold, status) VALUES ($1,$2,$3,$4,$5,$6,$7)`,
		project, version, raw, keys, d.KeyIDs, d.Threshold, status); err != nil {
		return fmt.Errorf("recording maintainer change: %w", err)
	}
	var snap int64
	if err := p.tx.QueryRow(ctx, `SELECT snapshot_version FROM repo_state WHERE id = 1`).Scan(&snap); err != nil {
		return fmt.Errorf("reading the snapshot version: %w", err)
	}
	return appendAudit(ctx, p.tx, []api.LogEntry{logEntry(api.ActionAccepted, project+"@maintainers", version, raw, snap, now)})
}
