-- +goose NO TRANSACTION
-- +goose Up

-- GET /api/v1/search (issue #14). CONCURRENTLY: on a registry with a million release
-- files the indexes are built without blocking uploads; goose runs this file outside a
-- transaction for it.

-- Which projects does this maintainer key sign for? (keyids @> ARRAY[key])
CREATE INDEX CONCURRENTLY IF NOT EXISTS projects_keyids ON projects USING gin (keyids);
-- Name prefixes, covering what a join from release files needs, so that a prefix narrowed
-- by a date range reads no project rows (BENCHMARKS.md, "Search"). It replaces
-- projects_canonical_prefix (00006), which the web UI's search also uses.
CREATE INDEX CONCURRENTLY IF NOT EXISTS projects_canonical_prefix_cover ON projects (canonical_name text_pattern_ops) INCLUDE (name, published_version);
DROP INDEX CONCURRENTLY IF EXISTS projects_canonical_prefix;
-- Which releases contain this file?
CREATE INDEX CONCURRENTLY IF NOT EXISTS release_files_sha256 ON release_files (sha256);
-- Files by publication date, newest first, with the path as the tie-breaker of the
-- keyset cursor.
CREATE INDEX CONCURRENTLY IF NOT EXISTS release_files_created_path ON release_files (created_at DESC, path DESC);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS release_files_created_path;
DROP INDEX CONCURRENTLY IF EXISTS release_files_sha256;
CREATE INDEX CONCURRENTLY IF NOT EXISTS projects_canonical_prefix ON projects (canonical_name text_pattern_ops);
DROP INDEX CONCURRENTLY IF EXISTS projects_canonical_prefix_cover;
DROP INDEX CONCURRENTLY IF EXISTS projects_keyids;
