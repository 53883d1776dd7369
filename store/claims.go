package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
)

// claimProjects reads the projects a claim may touch: the recently-claimed projects (all of
// them, or those in names when names is not nil) with a published delegation, and the
// claimed projects delegated by the nodes in nodes or with queued maintainer changes, each
// with the delegation the next claimed must give it (for a claimed project with queued
// maintainer changes, the latest queued change) and its node.
func claimProjects(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, names, nodes []string, lock bool) ([]api.ClaimProject, map[string]tufrepo.ClaimedProject, map[string]tufrepo.ProjectDelegation, error) {
	sql := `
		SELECT p.name, coalesce(c.keys, p.keys), coalesce(c.keyids, p.keyids), coalesce(c.threshold, p.threshold),
		       coalesce(c.version, p.delegation_version), p.delegator = 'claimed', c.version IS NOT NULL, coalesce(p.shard, '')
		FROM projects p
		LEFT JOIN LATERAL (SELECT keys, keyids, threshold, version FROM maintainer_changes m
		                   WHERE m.project = p.name AND m.status = 'queued' ORDER BY version DESC LIMIT 1) c ON true
		WHERE p.role_version > 0 AND (
		      (p.delegator = 'recently-claimed' AND p.delegated AND ($1::text[] IS NULL OR p.name = ANY($1)))
		   OR (p.delegator = 'claimed' AND (p.shard = ANY($2) OR c.version IS NOT NULL)))
		ORDER BY p.name`
	if lock {
		sql += ` FOR UPDATE OF p`
	}
	rows, err := q.Query(ctx, sql, names, nodes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading projects to claim: %w", err)
	}
	var out []api.ClaimProject
	claimed, candidates := map[string]tufrepo.ClaimedProject{}, map[string]tufrepo.ProjectDelegation{}
	var cp api.ClaimProject
	var keys []byte
	var keyids []string
	var shard string
	_, err = pgx.ForEachRow(rows, []any{&cp.Name, &keys, &keyids, &cp.Threshold, &cp.DelegationVersion, &cp.Claimed, &cp.Change, &shard}, func() error {
		d := tufrepo.ProjectDelegation{Name: cp.Name, KeyIDs: keyids, Threshold: cp.Threshold}
		if err := json.Unmarshal(keys, &d.Keys); err != nil {
			return err
		}
		c := cp
		c.Changes = nil
		c.Node = shard
		c.Keys = map[string]api.Key{}
		for id, k := range d.Keys {
			c.Keys[id] = tufrepo.KeyToAPI(k)
		}
		if cp.Claimed {
			claimed[cp.Name] = tufrepo.ClaimedProject{Node: shard, Want: d}
		} else {
			candidates[cp.Name] = d
		}
		// The queue lists what waits: candidates and claimed projects with queued changes.
		if !cp.Claimed || cp.Change {
			out = append(out, c)
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

// claimedLayout reads the claimed tree: its node prefixes and each node's latest version.
func claimedLayout(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) (*tufrepo.ShardLayout, []api.ClaimNode, error) {
	rows, err := q.Query(ctx, `
		SELECT s.role, s.prefix, coalesce((SELECT max(version) FROM metadata m WHERE m.role = s.role), 0)
		FROM shards s WHERE s.tree = 'claimed' ORDER BY s.role`)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the claimed tree: %w", err)
	}
	nodes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.ClaimNode, error) {
		var n api.ClaimNode
		return n, r.Scan(&n.Role, &n.Prefix, &n.Version)
	})
	if err != nil {
		return nil, nil, err
	}
	prefixes := make([]string, len(nodes))
	for i, n := range nodes {
		prefixes[i] = n.Prefix
	}
	l, err := tufrepo.NewShardLayout(tufrepo.RoleClaimed, prefixes...)
	return l, nodes, err
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

// ClaimQueue returns what waits for the admins: every recently-claimed project that may be
// claimed (or those named, when names is not nil), the claimed projects' queued maintainer
// changes, and the nodes of the claimed tree.
func (db *DB) ClaimQueue(ctx context.Context, names []string) (*api.ClaimQueue, error) {
	v, raw, err := latestClaimed(ctx, db.Pool)
	if err != nil {
		return nil, err
	}
	_, nodes, err := claimedLayout(ctx, db.Pool)
	if err != nil {
		return nil, err
	}
	ps, _, _, err := claimProjects(ctx, db.Pool, names, nil, false)
	if err != nil {
		return nil, err
	}
	if ps == nil {
		ps = []api.ClaimProject{}
	}
	return &api.ClaimQueue{ClaimedVersion: v, Claimed: raw, Projects: ps, Nodes: nodes}, nil
}

// SubmitClaimed validates and stages new versions of nodes of the claimed tree, moves the
// projects they claim out of recently-claimed, and applies the queued maintainer changes of
// the claimed projects they delegate, in one transaction. Nothing is stored when it returns
// an error.
func (db *DB) SubmitClaimed(ctx context.Context, nodes map[string][]byte, now time.Time) (*tufrepo.AcceptedClaim, error) {
	var acc *tufrepo.AcceptedClaim
	err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, publisherLockID); err != nil {
			return err
		}
		var targets []byte
		if err := tx.QueryRow(ctx, `SELECT raw FROM metadata WHERE role = 'targets' ORDER BY version DESC LIMIT 1`).Scan(&targets); err != nil {
			return fmt.Errorf("reading targets: %w", err)
		}
		layout, tree, err := claimedLayout(ctx, tx)
		if err != nil {
			return err
		}
		latest := map[string]int64{}
		for _, n := range tree {
			latest[n.Role] = n.Version
		}
		roles := slices.Sorted(maps.Keys(nodes))
		_, claimed, candidates, err := claimProjects(ctx, tx, tufrepo.ClaimNodeDelegations(nodes), roles, true)
		if err != nil {
			return err
		}
		a, err := tufrepo.ValidateClaimed(nodes, tufrepo.ClaimState{Targets: targets, Layout: layout, Latest: latest, Claimed: claimed, Candidates: candidates}, now)
		if err != nil {
			return err
		}
		var added, addedPrefixes []string
		for _, n := range a.Nodes {
			if err := insertMetadata(ctx, tx, n.Role, n.Version, n.Raw, n.Expires, api.ActionAccepted, nil); err != nil {
				return err
			}
			if n.New {
				added, addedPrefixes = append(added, n.Role), append(addedPrefixes, n.Prefix)
			}
		}
		if len(added) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO shards (role, tree, prefix) SELECT * FROM unnest($1::text[], array_fill('claimed'::text, ARRAY[cardinality($1::text[])]), $2::text[])`, added, addedPrefixes); err != nil {
				return fmt.Errorf("recording new claimed shards: %w", err)
			}
		}
		if len(a.Moved) > 0 {
			// The recently-claimed nodes that delegated them are re-signed without them by
			// the next publish; delegated = false until that publish.
			if _, err := tx.Exec(ctx, `UPDATE shards SET dirty = true WHERE role IN (SELECT shard FROM projects WHERE name = ANY($1) AND delegator = 'recently-claimed')`, a.Moved); err != nil {
				return fmt.Errorf("flagging recently-claimed nodes: %w", err)
			}
			if _, err := tx.Exec(ctx, `UPDATE projects SET delegator = 'claimed', delegated = false WHERE name = ANY($1)`, a.Moved); err != nil {
				return fmt.Errorf("moving projects to claimed: %w", err)
			}
		}
		if len(a.Assign) > 0 {
			names, shards := make([]string, 0, len(a.Assign)), make([]string, 0, len(a.Assign))
			for n, r := range a.Assign {
				names, shards = append(names, n), append(shards, r)
			}
			if _, err := tx.Exec(ctx, `UPDATE projects p SET shard = a.role FROM unnest($1::text[], $2::text[]) AS a(name, role) WHERE p.name = a.name`, names, shards); err != nil {
				return fmt.Errorf("recording the nodes of claimed projects: %w", err)
			}
		}
		// Queued maintainer changes are now in effect for the claimed projects the uploaded
		// nodes delegate (ValidateClaimed required their latest queued delegation).
		if _, err := tx.Exec(ctx, `
			UPDATE projects p SET keys = c.keys, keyids = c.keyids, threshold = c.threshold, delegation_version = c.version
			FROM (SELECT DISTINCT ON (project) project, keys, keyids, threshold, version FROM maintainer_changes
			      WHERE status = 'queued' ORDER BY project, version DESC) c
			WHERE p.name = c.project AND p.delegator = 'claimed' AND p.shard = ANY($1)`, roles); err != nil {
			return fmt.Errorf("applying queued maintainer changes: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE maintainer_changes m SET status = 'applied' FROM projects p WHERE m.project = p.name AND p.delegator = 'claimed' AND p.shard = ANY($1) AND m.status = 'queued'`, roles); err != nil {
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
