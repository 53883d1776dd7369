-- +goose Up

-- The web UI's home page lists the most recently published releases and searches projects
-- by name prefix; both must cost O(page), not O(projects), at a million projects.
CREATE INDEX release_files_created ON release_files (created_at DESC);
-- text_pattern_ops: a LIKE 'prefix%' search uses the index whatever the database collation.
CREATE INDEX projects_canonical_prefix ON projects (canonical_name text_pattern_ops);

-- +goose Down
DROP INDEX projects_canonical_prefix;
DROP INDEX release_files_created;
