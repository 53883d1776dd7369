-- +goose Up

-- The Merkle snapshot (TAP 16, DESIGN.md "Merkle snapshot"): one leaf per role the classic
-- snapshot lists, committing to the role's current version, length and the sha256 of its
-- exact bytes. idx is the leaf's place in the tree: the order in which roles first
-- appeared in the audit log, so a publish changes leaves in place and appends new roles,
-- and an auditor replaying the log rebuilds the same tree. snapshot_version is the
-- snapshot (tree version) that last changed the leaf.
CREATE TABLE merkle_leaves (
    idx              bigint PRIMARY KEY CHECK (idx >= 0),
    role             text   NOT NULL UNIQUE,
    version          bigint NOT NULL CHECK (version >= 1),
    length           bigint NOT NULL,
    sha256           bytea  NOT NULL,
    snapshot_version bigint NOT NULL
);

-- Replicas follow the tree version by version: the role versions each snapshot published.
CREATE INDEX metadata_published_in ON metadata (snapshot_version)
    WHERE snapshot_version IS NOT NULL AND role NOT IN ('root', 'timestamp', 'snapshot');

-- An existing repository: every role its head snapshot lists (the newest published version
-- of each role), ordered by first audit-log entry. The first publish after the migration
-- signs a timestamp that carries the tree.
INSERT INTO merkle_leaves (idx, role, version, length, sha256, snapshot_version)
SELECT row_number() OVER (ORDER BY a.first_seq NULLS LAST, m.role) - 1, m.role, m.version, m.length, m.sha256, m.snapshot_version
FROM (
    SELECT DISTINCT ON (role) role, version, length, sha256, snapshot_version
    FROM metadata
    WHERE snapshot_version IS NOT NULL AND role NOT IN ('root', 'timestamp', 'snapshot')
      AND snapshot_version <= (SELECT snapshot_version FROM repo_state WHERE id = 1)
    ORDER BY role, version DESC
) m
LEFT JOIN (SELECT role, min(seq) AS first_seq FROM audit_log GROUP BY role) a ON a.role = m.role;

-- +goose Down
DROP INDEX metadata_published_in;
DROP TABLE merkle_leaves;
