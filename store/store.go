// Package store is Cairn's PostgreSQL storage (pgx) and blob storage: the only code that
// speaks SQL or touches the blob directory.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/migrations"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// DB is Cairn's PostgreSQL database.
type DB struct {
	Pool *pgxpool.Pool
	url  string
	// meta keeps signed metadata versions of at least metaMin bytes out of rows.
	meta    MetaFiles
	metaMin int
	// tokens caches token records (Authenticate).
	tokens *tokenCache
	// keys caches decoded maintainer keys (UploadState).
	keys *keyCache
	// files caches the published files of projects by role version and digest (UploadState).
	files fileCache
	// blobRows groups the rows of concurrent blob PUTs (RecordBlobGrouped).
	blobRows blobRows
}

// Open connects to url with DefaultSessions and checks the connection.
func Open(ctx context.Context, url string) (*DB, error) {
	return OpenWith(ctx, url, DefaultSessions())
}

// OpenWith connects to url, bounding its sessions with s, and checks the connection.
func OpenWith(ctx context.Context, url string, s Sessions) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing database URL: %w", err)
	}
	s.apply(cfg)
	if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL at %s: %w", redactDSN(cfg.ConnConfig), err)
	}
	return &DB{Pool: pool, url: url, tokens: &tokenCache{}, keys: &keyCache{}}, nil
}

func redactDSN(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s (user %s)", c.Host, c.Port, c.Database, c.User)
}

// Close closes the pool.
func (db *DB) Close() { db.Pool.Close() }

// Migrate applies every embedded migration that has not been applied yet and returns the
// files it applied. Concurrent replicas are safe: goose serialises them with a lock.
func (db *DB) Migrate(ctx context.Context) ([]string, error) {
	sqldb := stdlib.OpenDBFromPool(db.Pool)
	defer sqldb.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("creating migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqldb, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("loading migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("applying migrations: %w", err)
	}
	var applied []string
	for _, r := range res {
		applied = append(applied, r.Source.Path)
	}
	return applied, nil
}

// InTx runs fn in a transaction, retrying it on serialization failures and deadlocks, so
// fn must be idempotent apart from its database writes.
func (db *DB) InTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
		var pgErr *pgconn.PgError
		if err != nil && errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") && attempt < 5 {
			continue
		}
		return err
	}
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.Pool.Ping(ctx) }

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// EnsureDatabase creates the database named in url if it does not exist, connecting to
// the server's "postgres" database to do so. Used by the dev mode and by tests.
func EnsureDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parsing database URL: %w", err)
	}
	name := cfg.Database
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL at %s:%d as %s to create database %q: %w (is PostgreSQL running? set CAIRN_DATABASE_URL)", cfg.Host, cfg.Port, cfg.User, name, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("checking database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating database %q: %w", name, err)
	}
	return nil
}
