// Package testdb gives each test package its own fresh PostgreSQL database.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultServer is the local PostgreSQL of these machines (trust auth).
const DefaultServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Create makes a new, uniquely named database for the package named pkg and returns its URL
// and a function that drops it. It uses DATABASE_URL when set (its database name is
// replaced), the local server otherwise. It never skips: a missing server is an error
// that says what to do.
func Create(pkg string) (string, func(), error) {
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		base = DefaultServer
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, fmt.Errorf("testdb: parsing DATABASE_URL: %w", err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	// PostgreSQL cuts identifiers at 63 bytes: cut the readable part, never the random
	// suffix, or two long test names would collide.
	label := regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(pkg), "_")
	suffix := "_" + hex.EncodeToString(b)
	if room := 63 - len("cairn_test_") - len(suffix); len(label) > room {
		label = label[:room]
	}
	name := "cairn_test_" + label + suffix
	admin := *u
	admin.Path = "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return "", nil, fmt.Errorf("testdb: cannot reach PostgreSQL at %s:%s (%v): start it, or set DATABASE_URL to a server where this user may create databases", u.Hostname(), u.Port(), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("testdb: creating database %s: %w", name, err)
	}
	db := *u
	db.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin.String())
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return db.String(), drop, nil
}

// Main is for TestMain: it creates the package's database, exposes its URL through
// *url, runs the tests and drops the database.
func Main(m *testing.M, pkg string, dbURL *string) int {
	u, drop, err := Create(pkg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer drop()
	*dbURL = u
	return m.Run()
}
