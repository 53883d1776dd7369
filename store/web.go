package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
)

// Queries for the web UI (package web). Each costs O(page): the home page of a registry
// with a million projects must not scan them.

// RecentRelease is a release whose files were published recently.
type RecentRelease struct {
	Project string
	Version string
	// Files counts the release's files among the rows read (at least 1).
	Files      int
	UploadedAt time.Time
}

// RecentReleases returns up to limit releases, newest first by the upload time of their
// newest published file. It reads the release_files_created index backwards.
func (db *DB) RecentReleases(ctx context.Context, limit int) ([]RecentRelease, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT f.project, f.version, f.created_at
		FROM release_files f JOIN projects p ON p.name = f.project
		WHERE f.role_version <= p.published_version
		ORDER BY f.created_at DESC LIMIT $1`, limit*8)
	if err != nil {
		return nil, fmt.Errorf("listing recent releases: %w", err)
	}
	var out []RecentRelease
	seen := map[string]int{}
	var project, version string
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&project, &version, &at}, func() error {
		k := project + "/" + version
		if i, ok := seen[k]; ok {
			out[i].Files++
			return nil
		}
		if len(out) == limit {
			return nil
		}
		seen[k] = len(out)
		out = append(out, RecentRelease{Project: project, Version: version, Files: 1, UploadedAt: at.UTC()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing recent releases: %w", err)
	}
	return out, nil
}

// ProjectMatch is one search result.
type ProjectMatch struct {
	Name      string
	Delegator string
	Published int64 // published role version; 0 while nothing is published
}

// SearchProjects returns up to limit projects whose canonical name (PEP 503: lowercase,
// runs of '.', '_' and '-' as one '-') starts with the canonical form of query, in name
// order, with an exact match first.
func (db *DB) SearchProjects(ctx context.Context, query string, limit int) ([]ProjectMatch, error) {
	q := tufrepo.CanonicalProjectName(query)
	if q == "" {
		return nil, nil
	}
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q)
	rows, err := db.Pool.Query(ctx, `
		SELECT name, delegator, published_version FROM projects
		WHERE canonical_name LIKE $1 || '%' ESCAPE '\'
		ORDER BY canonical_name <> $2, canonical_name LIMIT $3`, esc, q, limit)
	if err != nil {
		return nil, fmt.Errorf("searching projects for %q: %w", query, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProjectMatch, error) {
		var m ProjectMatch
		err := r.Scan(&m.Name, &m.Delegator, &m.Published)
		return m, err
	})
}

// EstimatedProjects is PostgreSQL's estimate of the number of projects (from the last
// ANALYZE): a count(*) would scan them all.
func (db *DB) EstimatedProjects(ctx context.Context) (int64, error) {
	var n float64
	err := db.Pool.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = 'projects'::regclass`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("estimating the number of projects: %w", err)
	}
	if n < 0 { // never analysed
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM projects LIMIT 10000) p`).Scan(&n); err != nil {
			return 0, fmt.Errorf("counting projects: %w", err)
		}
	}
	return int64(n), nil
}

// PublishedAt returns when the published snapshot was signed: the time of the last publish.
func (db *DB) PublishedAt(ctx context.Context) (time.Time, error) {
	var at time.Time
	err := db.Pool.QueryRow(ctx, `SELECT m.created_at FROM metadata m JOIN repo_state s ON m.role = 'snapshot' AND m.version = s.snapshot_version`).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return at, ErrNotBootstrapped
	}
	if err != nil {
		return at, fmt.Errorf("reading the time of the last publish: %w", err)
	}
	return at.UTC(), nil
}

// ProjectState fingerprints everything a project's pages show that the database holds
// (delegation, versions, open proposals, maintainer changes), for ETags and the page
// cache: it changes whenever one of them does. now decides which proposals are open.
func (db *DB) ProjectState(ctx context.Context, project string, now time.Time) (string, error) {
	var s string
	err := db.Pool.QueryRow(ctx, `
		SELECT concat_ws('|', p.delegator, p.threshold, array_to_string(p.keyids, ','), p.role_version, p.published_version, p.delegation_version, p.delegated,
			(SELECT string_agg(kind || ':' || version || ':' || jsonb_array_length(signatures) || ':' || extract(epoch FROM expires_at), ',' ORDER BY kind, version)
			 FROM proposals WHERE project = p.name AND expires_at > $2),
			(SELECT count(*) || ':' || coalesce(max(version), 0) || ':' || count(*) FILTER (WHERE status = 'queued') FROM maintainer_changes WHERE project = p.name))
		FROM projects p WHERE p.name = $1`, project, now).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", api.Errorf(api.CodeNotFound, "project %q does not exist", project)
	}
	if err != nil {
		return "", fmt.Errorf("reading the state of project %s: %w", project, err)
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16]), nil
}

// MaintainerChangeRecord is one maintainer change of a project's history.
type MaintainerChangeRecord struct {
	Version   int64
	Keys      map[string]api.Key
	KeyIDs    []string
	Threshold int
	// Status is "applied" or "queued" (waiting for the admins' offline signing of claimed).
	Status    string
	CreatedAt time.Time
}

// MaintainerHistory returns a project's maintainer changes, newest first.
func (db *DB) MaintainerHistory(ctx context.Context, project string, limit int) ([]MaintainerChangeRecord, error) {
	rows, err := db.Pool.Query(ctx, `SELECT version, keys, keyids, threshold, status, created_at FROM maintainer_changes WHERE project = $1 ORDER BY version DESC LIMIT $2`, project, limit)
	if err != nil {
		return nil, fmt.Errorf("reading maintainer changes of %s: %w", project, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (MaintainerChangeRecord, error) {
		var c MaintainerChangeRecord
		var keys []byte
		if err := r.Scan(&c.Version, &keys, &c.KeyIDs, &c.Threshold, &c.Status, &c.CreatedAt); err != nil {
			return c, err
		}
		c.CreatedAt = c.CreatedAt.UTC()
		if err := json.Unmarshal(keys, &c.Keys); err != nil {
			return c, fmt.Errorf("decoding keys of maintainer change %d of %s: %w", c.Version, project, err)
		}
		return c, nil
	})
}

// PublishedVersions returns the published versions of role, newest first, up to limit.
func (db *DB) PublishedVersions(ctx context.Context, role string, limit int) ([]int64, error) {
	rows, err := db.Pool.Query(ctx, `SELECT version FROM metadata WHERE role = $1 AND snapshot_version IS NOT NULL ORDER BY version DESC LIMIT $2`, role, limit)
	if err != nil {
		return nil, fmt.Errorf("listing versions of %s: %w", role, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// TlogPendingEntry is a signed version that has no transparency log entry yet.
type TlogPendingEntry struct {
	Role        string
	Version     int64
	Attempts    int
	LastError   string
	NextAttempt time.Time
}

// TlogPendingList returns up to limit signed versions waiting for their log entry, oldest first.
func (db *DB) TlogPendingList(ctx context.Context, limit int) ([]TlogPendingEntry, error) {
	rows, err := db.Pool.Query(ctx, `SELECT p.role, p.version, p.attempts, coalesce(p.last_error, ''), CASE WHEN isfinite(p.next_attempt) THEN p.next_attempt END FROM tlog_pending p JOIN metadata m USING (role, version) WHERE m.action = 'signed' ORDER BY p.created_at, p.role, p.version LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("listing versions waiting for the transparency log: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (TlogPendingEntry, error) {
		var e TlogPendingEntry
		var next *time.Time
		err := r.Scan(&e.Role, &e.Version, &e.Attempts, &e.LastError, &next)
		if next != nil {
			e.NextAttempt = next.UTC()
		}
		return e, err
	})
}

// ReleaseFiles returns the files of one release of a project (an api.Release without its
// yank flag, which the published role holds), or not_found.
func (db *DB) ReleaseFiles(ctx context.Context, project, version string) (*api.Release, error) {
	rows, err := db.Pool.Query(ctx, `
		SELECT f.filename, f.path, f.length, f.sha256, f.role_version, f.created_at, f.role_version <= p.published_version
		FROM release_files f JOIN projects p ON p.name = f.project
		WHERE f.project = $1 AND f.version = $2 ORDER BY f.filename`, project, version)
	if err != nil {
		return nil, fmt.Errorf("reading release %s %s: %w", project, version, err)
	}
	rel := &api.Release{Project: project, Version: version}
	var f api.File
	var sum []byte
	var roleVersion int64
	var created time.Time
	var published bool
	_, err = pgx.ForEachRow(rows, []any{&f.Name, &f.Path, &f.Length, &sum, &roleVersion, &created, &published}, func() error {
		f.SHA256 = hex.EncodeToString(sum)
		rel.Files = append(rel.Files, f)
		if rel.RoleVersion == 0 || roleVersion < rel.RoleVersion {
			rel.RoleVersion, rel.UploadedAt, rel.Published = roleVersion, created.UTC(), published
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading release %s %s: %w", project, version, err)
	}
	if len(rel.Files) == 0 {
		return nil, api.Errorf(api.CodeNotFound, "project %s has no release %q", project, version)
	}
	return rel, nil
}
