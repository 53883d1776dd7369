package store

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-dev/cairn/migrations"
	"github.com/jackc/pgx/v5"
)

// gooseTable is where goose records applied migrations (its default table name).
const gooseTable = "goose_db_version"

// SchemaError says that a database's schema is not the one this binary was built for:
// it was never migrated (perhaps it is not a Cairn database at all), it lacks migrations
// this binary embeds, or it has migrations this binary does not know (a newer cairnd
// migrated it).
type SchemaError struct {
	Database string   // the database, as Describe names it
	Never    bool     // no migration was ever applied
	Missing  []string // embedded migration files not applied
	Unknown  []int64  // applied versions this binary does not embed
}

func (e *SchemaError) Error() string {
	switch {
	case e.Never:
		return fmt.Sprintf("database %s has no Cairn schema (no migration was ever applied): if it is the right database, run `cairnd migrate` (or `cairnd serve`, which migrates on start) first; otherwise check --database-url / CAIRN_DATABASE_URL", e.Database)
	case len(e.Unknown) > 0:
		return fmt.Sprintf("database %s has migrations this cairnd does not know (versions %v): a newer cairnd migrated it; use that version", e.Database, e.Unknown)
	default:
		return fmt.Sprintf("database %s is not migrated to this cairnd's schema (missing %s): run `cairnd migrate` (or `cairnd serve`, which migrates on start) first", e.Database, strings.Join(e.Missing, ", "))
	}
}

// embeddedMigrations returns the version of each embedded migration file, by file name.
func embeddedMigrations() (map[int64]string, error) {
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	out := make(map[int64]string, len(files))
	for _, f := range files {
		num, _, ok := strings.Cut(f, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %s: name does not start with a version number", f)
		}
		out[v] = f
	}
	return out, nil
}

// CheckSchema compares the migrations applied to the database with the embedded ones,
// and returns a *SchemaError unless they are the same. It only reads: unlike goose's own
// status calls it never creates the version table, so pointing it at the wrong database
// changes nothing there.
func (db *DB) CheckSchema(ctx context.Context) error {
	want, err := embeddedMigrations()
	if err != nil {
		return err
	}
	var exists bool
	if err := db.Pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, gooseTable).Scan(&exists); err != nil {
		return fmt.Errorf("checking the database schema: %w", err)
	}
	serr := &SchemaError{Database: db.Describe()}
	if !exists {
		serr.Never = true
		return serr
	}
	// goose records a rollback as a newer row with is_applied false: the latest row of
	// each version decides. Version 0 is goose's own starting row.
	rows, err := db.Pool.Query(ctx, `SELECT version_id FROM (
		SELECT DISTINCT ON (version_id) version_id, is_applied FROM `+pgx.Identifier{gooseTable}.Sanitize()+`
		ORDER BY version_id, id DESC) v WHERE is_applied AND version_id > 0`)
	if err != nil {
		return fmt.Errorf("reading applied migrations: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("reading applied migrations: %w", err)
	}
	if len(applied) == 0 {
		serr.Never = true
		return serr
	}
	for _, v := range applied {
		if _, ok := want[v]; !ok {
			serr.Unknown = append(serr.Unknown, v)
		}
	}
	for v, f := range want {
		if !slices.Contains(applied, v) {
			serr.Missing = append(serr.Missing, f)
		}
	}
	slices.Sort(serr.Missing)
	slices.Sort(serr.Unknown)
	if len(serr.Missing) > 0 || len(serr.Unknown) > 0 {
		return serr
	}
	return nil
}

// Describe names the database for messages: host, port, database and user, never the
// password.
func (db *DB) Describe() string { return redactDSN(db.Pool.Config().ConnConfig) }

// Identity names one PostgreSQL database for good: the cluster's system identifier (set
// by initdb, the same on a physical replica), the database's name and its OID (new when a
// database of the same name is dropped and created again).
type Identity struct {
	SystemID string `json:"system_identifier"`
	Database string `json:"database"`
	OID      uint32 `json:"database_oid"`
}

func (i Identity) String() string {
	return fmt.Sprintf("database %q (oid %d) of PostgreSQL system %s", i.Database, i.OID, i.SystemID)
}

// Identity returns the database's identity.
func (db *DB) Identity(ctx context.Context) (Identity, error) {
	var id Identity
	err := db.Pool.QueryRow(ctx, `SELECT (SELECT system_identifier::text FROM pg_control_system()), current_database(),
		(SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&id.SystemID, &id.Database, &id.OID)
	if err != nil {
		return id, fmt.Errorf("reading the database's identity (pg_control_system(), pg_database): %w", err)
	}
	return id, nil
}

// MissingProjects returns those of names that are not projects, in the order given.
func (db *DB) MissingProjects(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	rows, err := db.Pool.Query(ctx, `SELECT name FROM projects WHERE name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("looking up projects: %w", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("looking up projects: %w", err)
	}
	var missing []string
	for _, n := range names {
		if !slices.Contains(have, n) && !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	return missing, nil
}
