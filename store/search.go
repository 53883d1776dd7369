package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/api"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
)

// SearchQuery is GET /api/v1/search's filters, validated by the caller. Zero fields do not
// filter. Each query reads one index range (BENCHMARKS.md, "Search").
type SearchQuery struct {
	Prefix string // canonical project-name prefix
	KeyID  string // maintainer key ID the project's delegation lists
	SHA256 []byte
	After  time.Time // published at or after
	Before time.Time // published before
	Limit  int
	// AfterName continues a project search after this canonical name; AfterTime and
	// AfterPath a file search after this (published_at, path), newest first.
	AfterName string
	AfterTime time.Time
	AfterPath string
}

// Files reports whether q filters files (and so answers files, not projects).
func (q SearchQuery) Files() bool { return q.SHA256 != nil || !q.After.IsZero() || !q.Before.IsZero() }

// likePrefix escapes s for a LIKE prefix pattern.
func likePrefix(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
}

// SearchProjectsBy returns up to q.Limit published projects matching the project filters,
// in canonical-name order, and whether there are more.
func (db *DB) SearchProjectsBy(ctx context.Context, q SearchQuery) ([]api.SearchProject, bool, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	where = append(where, "published_version > 0")
	if q.Prefix != "" {
		where = append(where, "canonical_name LIKE "+arg(likePrefix(tufrepo.CanonicalProjectName(q.Prefix)))+` ESCAPE '\'`)
	}
	if q.KeyID != "" {
		where = append(where, "keyids @> ARRAY["+arg(q.KeyID)+"]::text[]")
	}
	if q.AfterName != "" {
		where = append(where, "canonical_name > "+arg(q.AfterName))
	}
	sql := `SELECT name, canonical_name, delegator, threshold, keyids, published_version FROM projects WHERE ` +
		strings.Join(where, " AND ") + ` ORDER BY canonical_name LIMIT ` + arg(q.Limit+1)
	rows, err := db.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("searching projects: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.SearchProject, error) {
		var p api.SearchProject
		var canonical string
		err := r.Scan(&p.Name, &canonical, &p.Delegator, &p.Threshold, &p.KeyIDs, &p.RoleVersion)
		return p, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("searching projects: %w", err)
	}
	more := len(out) > q.Limit
	if more {
		out = out[:q.Limit]
	}
	return out, more, nil
}

// SearchFiles returns up to q.Limit published release files matching q, newest first (by
// publication time, then path), and whether there are more.
func (db *DB) SearchFiles(ctx context.Context, q SearchQuery) ([]api.SearchFile, bool, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	where = append(where, "f.role_version <= p.published_version")
	if q.SHA256 != nil {
		where = append(where, "f.sha256 = "+arg(q.SHA256))
	}
	if !q.After.IsZero() {
		where = append(where, "f.created_at >= "+arg(q.After))
	}
	if !q.Before.IsZero() {
		where = append(where, "f.created_at < "+arg(q.Before))
	}
	if q.Prefix != "" {
		where = append(where, "p.canonical_name LIKE "+arg(likePrefix(tufrepo.CanonicalProjectName(q.Prefix)))+` ESCAPE '\'`)
	}
	if q.KeyID != "" {
		where = append(where, "p.keyids @> ARRAY["+arg(q.KeyID)+"]::text[]")
	}
	if q.AfterPath != "" {
		where = append(where, "(f.created_at, f.path) < ("+arg(q.AfterTime)+", "+arg(q.AfterPath)+")")
	}
	sql := `SELECT f.project, f.version, f.filename, f.path, f.length, f.sha256, f.created_at
		FROM release_files f JOIN projects p ON p.name = f.project
		WHERE ` + strings.Join(where, " AND ") + `
		ORDER BY f.created_at DESC, f.path DESC LIMIT ` + arg(q.Limit+1)
	rows, err := db.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, fmt.Errorf("searching release files: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.SearchFile, error) {
		var f api.SearchFile
		var sum []byte
		err := r.Scan(&f.Project, &f.Version, &f.File, &f.Path, &f.Length, &sum, &f.PublishedAt)
		f.SHA256 = hex.EncodeToString(sum)
		f.PublishedAt = f.PublishedAt.UTC()
		return f, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("searching release files: %w", err)
	}
	more := len(out) > q.Limit
	if more {
		out = out[:q.Limit]
	}
	return out, more, nil
}
