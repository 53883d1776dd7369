package store

import (
	"context"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/migrations"
	"github.com/cairn-dev/cairn/tufrepo"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// MigrationStatus says which embedded migrations the database has applied.
type MigrationStatus struct {
	Applied int      `json:"applied"`
	Pending []string `json:"pending"`
	Latest  string   `json:"latest"`
}

// Migrations reports the embedded migrations that are applied and pending, without
// applying any (for 'cairnd doctor').
func (db *DB) Migrations(ctx context.Context) (MigrationStatus, error) {
	var st MigrationStatus
	sqldb := stdlib.OpenDBFromPool(db.Pool)
	defer sqldb.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqldb, migrations.FS)
	if err != nil {
		return st, fmt.Errorf("loading migrations: %w", err)
	}
	res, err := p.Status(ctx)
	if err != nil {
		return st, fmt.Errorf("reading migration status: %w", err)
	}
	st.Pending = []string{}
	for _, r := range res {
		st.Latest = r.Source.Path
		if r.State == goose.StateApplied {
			st.Applied++
		} else {
			st.Pending = append(st.Pending, r.Source.Path)
		}
	}
	return st, nil
}

// Clock returns PostgreSQL's clock (clock_timestamp(), not the transaction's start).
func (db *DB) Clock(ctx context.Context) (time.Time, error) {
	var t time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t); err != nil {
		return t, fmt.Errorf("reading the database clock: %w", err)
	}
	return t, nil
}

// ServerVersion returns PostgreSQL's version string.
func (db *DB) ServerVersion(ctx context.Context) (string, error) {
	var v string
	if err := db.Pool.QueryRow(ctx, `SHOW server_version`).Scan(&v); err != nil {
		return "", fmt.Errorf("reading the database version: %w", err)
	}
	return v, nil
}

// PublishedRole is the newest published version of a role and its expiry.
type PublishedRole struct {
	Role    string
	Version int64
	Expires time.Time
}

// maxDoctorRoles bounds the delegating roles read at once: the shards of both trees.
const maxDoctorRoles = 100_000

// PublishedRepositoryRoles returns the newest published version of every top-level role
// and every node of the claimed and recently-claimed trees (not the project roles), by
// role name.
func (db *DB) PublishedRepositoryRoles(ctx context.Context) ([]PublishedRole, error) {
	// Shard names start with "_", which no project name can (tufrepo.ShardRole).
	rows, err := db.Pool.Query(ctx, `SELECT DISTINCT ON (role) role, version, expires FROM metadata
		WHERE snapshot_version IS NOT NULL AND (role = ANY($1) OR role LIKE '\_%')
		ORDER BY role, version DESC LIMIT $2`,
		[]string{tufrepo.RoleRoot, tufrepo.RoleTimestamp, tufrepo.RoleSnapshot, tufrepo.RoleTargets, tufrepo.RoleClaimed, tufrepo.RoleRecentlyClaimed}, maxDoctorRoles)
	if err != nil {
		return nil, fmt.Errorf("reading published roles: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PublishedRole, error) {
		var p PublishedRole
		err := r.Scan(&p.Role, &p.Version, &p.Expires)
		p.Expires = p.Expires.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading published roles: %w", err)
	}
	return out, nil
}
