-- +goose NO TRANSACTION
-- +goose Up

-- GET /api/v1/search (issue #14). CONCURRENTLY: on a registry with a million release
-- files the indexes are built without blocking uploads; goose runs this file outside a
-- transaction for it.

-- Which projects does this maintainer key sign for? (keyids @> ARRAY[key])
CREATE INDEX CONCURRENTLY IF NOT EXISTS projects_keyids ON projects USING gin (keyids);
-- Which releases contain this file?
CREATE INDEX CONCURRENTLY IF NOT EXISTS release_files_sha256 ON release_files (sha256);
-- Files by publication date, newest first, with the path as the tie-breaker of the
-- keyset cursor.
CREATE INDEX CONCURRENTLY IF NOT EXISTS release_files_created_path ON release_files (created_at DESC, path DESC);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS release_files_created_path;
DROP INDEX CONCURRENTLY IF EXISTS release_files_sha256;
DROP INDEX CONCURRENTLY IF EXISTS projects_keyids;
