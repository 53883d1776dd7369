package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
)

// claimProjects reads every claimed and recently-claimed project with the delegation the
// next claimed must give it (for a claimed project with queued maintainer changes, the
// latest queued change).
func claimProjects(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, lock bool) ([]api.ClaimProject, map[string]tufrepo.ProjectDelegation, map[string]tufrepo.ProjectDelegation, error) {
	sql := `
		SELECT p.name, coalesce(c.keys, p.keys), coalesce(c.keyids, p.keyids), coalesce(c.threshold, p.threshold),
		       coalesce(c.version, p.delegation_version), p.delegator = 'claimed', c.version IS NOT NULL
		FROM projects p
		LEFT JOIN LATERAL (SELECT keys, keyids, threshold, version FROM maintainer_changes m
		                   WHERE m.project = p.name AND m.status = 'queued' ORDER BY version DESC LIMIT 1) c ON true
		WHERE p.role_version > 0 ORDER BY p.name`
	if lock {
		sql += ` FOR UPDATE OF p`
	}
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading projects to claim: %w", err)
	}
	var out []api.ClaimProject
	claimed, candidates := map[string]tufrepo.ProjectDelegation{}, map[string]tufrepo.ProjectDelegation{}
	var cp api.ClaimProject
	var keys []byte
	var keyids []string
	_, err = pgx.ForEachRow(rows, []any{&cp.Name, &keys, &keyids, &cp.Threshold, &cp.DelegationVersion, &cp.Claimed, &cp.Change}, func() error {
		d := tufrepo.ProjectDelegation{Name: cp.Name, KeyIDs: keyids, Threshold: cp.Threshold}
		if err := json.Unmarshal(keys, &d.Keys); err != nil {
			return err
		}
		c := cp
		c.Changes = nil
		c.Keys = map[string]api.Key{}
		for id, k := range d.Keys {
			c.Keys[id] = tufrepo.KeyToAPI(k)
		}
		out = append(out, c)
		if cp.Claimed {
			claimed[cp.Name] = d
		} else {
			candidates[cp.Name] = d
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	// The signed change documents behind queued changes.
	crows, err := q.Query(ctx, `SELECT project, raw FROM maintainer_changes WHERE status = 'queued' ORDER BY project, version`)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading queued maintainer changes: %w", err)
	}
	docs := map[string][][]byte{}
	var name string
	var raw []byte
	if _, err := pgx.ForEachRow(crows, []any{&name, &raw}, func() error {
		docs[name] = append(docs[name], slices.Clone(raw))
		return nil
	}); err != nil {
		return nil, nil, nil, err
	}
	for i := range out {
		out[i].Changes = docs[out[i].Name]
	}
	return out, claimed, candidates, nil
}

func latestClaimed(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int64, []byte, error) {
	var v int64
	var raw []byte
	err := q.QueryRow(ctx, `SELECT version, raw FROM metadata WHERE role = 'claimed' ORDER BY version DESC LIMIT 1`).Scan(&v, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, ErrNotBootstrapped
	}
	return v, raw, err
}

// ClaimQueue returns what waits for the admins.
func (db *DB) ClaimQueue(ctx context.Context) (*api.ClaimQueue, error) {
	v, raw, err := latestClaimed(ctx, db.Pool)
	if err != nil {
		return nil, err
	}
	ps, _, _, err := claimProjects(ctx, db.Pool, false)
	if err != nil {
		return nil, err
	}
	if ps == nil {
		ps = []api.ClaimProject{}
	}
	return &api.ClaimQueue{ClaimedVersion: v, Claimed: raw, Projects: ps}, nil
}

// SubmitClaimed validates and stages a new version of claimed, moves the projects it claims
// out of recently-claimed, and applies the queued maintainer changes it carries, in one
// transaction. Nothing is stored when it returns an error.
func (db *DB) SubmitClaimed(ctx context.Context, raw []byte, now time.Time) (*tufrepo.AcceptedClaim, error) {
	var acc *tufrepo.AcceptedClaim
	err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, publisherLockID); err != nil {
			return err
		}
		var targets []byte
		if err := tx.QueryRow(ctx, `SELECT raw FROM metadata WHERE role = 'targets' ORDER BY version DESC LIMIT 1`).Scan(&targets); err != nil {
			return fmt.Errorf("reading targets: %w", err)
		}
		cv, _, err := latestClaimed(ctx, tx)
		if err != nil {
			return err
		}
		_, claimed, candidates, err := claimProjects(ctx, tx, true)
		if err != nil {
			return err
		}
		a, err := tufrepo.ValidateClaimed(raw, tufrepo.ClaimState{Targets: targets, CurrentVersion: cv, Claimed: claimed, Candidates: candidates}, now)
		if err != nil {
			return err
		}
		if err := insertMetadata(ctx, tx, tufrepo.RoleClaimed, a.Version, raw, a.Expires, api.ActionAccepted, nil); err != nil {
			return err
		}
		if len(a.Moved) > 0 {
			// The recently-claimed nodes that delegated them are re-signed without them by
			// the next publish; delegated = false until that publish.
			if _, err := tx.Exec(ctx, `UPDATE shards SET dirty = true WHERE role IN (SELECT shard FROM projects WHERE name = ANY($1) AND delegator = 'recently-claimed')`, a.Moved); err != nil {
				return fmt.Errorf("flagging recently-claimed nodes: %w", err)
			}
			if _, err := tx.Exec(ctx, `UPDATE projects SET delegator = 'claimed', shard = 'claimed', delegated = false WHERE name = ANY($1)`, a.Moved); err != nil {
				return fmt.Errorf("moving projects to claimed: %w", err)
			}
		}
		// Queued maintainer changes are now in effect for every claimed project.
		if _, err := tx.Exec(ctx, `
			UPDATE projects p SET keys = c.keys, keyids = c.keyids, threshold = c.threshold, delegation_version = c.version
			FROM (SELECT DISTINCT ON (project) project, keys, keyids, threshold, version FROM maintainer_changes
			      WHERE status = 'queued' ORDER BY project, version DESC) c
			WHERE p.name = c.project AND p.delegator = 'claimed'`); err != nil {
			return fmt.Errorf("applying queued maintainer changes: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE maintainer_changes m SET status = 'applied' FROM projects p WHERE m.project = p.name AND p.delegator = 'claimed' AND m.status = 'queued'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, 'claimed')`, ChannelStaged); err != nil {
			return err
		}
		acc = a
		return nil
	})
	return acc, err
}
