package store_test

import (
	"context"
	"os"
	"testing"
)

// The role and snapshot bytes in metadata.raw are compressed with lz4 when the server
// supports it (migration 00013): pglz was the top cost of storing an upload batch.
func TestMetadataRawIsLZ4(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	var configure string
	// pg_config's build flags are not visible over SQL; a table of our own is the probe.
	if _, err := db.Pool.Exec(ctx, `CREATE TEMP TABLE lz4_probe (b bytea COMPRESSION lz4)`); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI's PostgreSQL has no lz4 (%v): install a build with it (PGDG, Debian)", err)
		}
		t.Skipf("this PostgreSQL has no lz4 (%v): the migration keeps pglz", err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT attcompression::text FROM pg_attribute WHERE attrelid = 'metadata'::regclass AND attname = 'raw'`).Scan(&configure); err != nil {
		t.Fatal(err)
	}
	if configure != "l" {
		t.Fatalf("metadata.raw compression is %q, want \"l\" (lz4)", configure)
	}
}
