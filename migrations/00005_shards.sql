-- +goose Up

-- The nodes of the two delegation trees (DESIGN.md "Delegations that scale"): claimed and
-- recently-claimed are the tops (prefix ''); every other node is a shard role named
-- "_<tree>.<prefix>" that delegates the projects whose names start with its prefix.
-- Nodes are never removed: clients refuse a snapshot that drops a role they saw.
CREATE TABLE shards (
    role   text PRIMARY KEY,
    tree   text NOT NULL CHECK (tree IN ('claimed', 'recently-claimed')),
    prefix text NOT NULL,
    -- A recently-claimed node the publisher must re-sign: a project it delegates moved to
    -- claimed. (New projects and key changes are found through projects.delegated.)
    dirty  boolean NOT NULL DEFAULT false,
    UNIQUE (tree, prefix)
);
INSERT INTO shards (role, tree, prefix) VALUES ('claimed', 'claimed', ''), ('recently-claimed', 'recently-claimed', '');
CREATE INDEX shards_dirty ON shards (role) WHERE dirty;

-- The node that delegates the project directly. An existing repository is the degenerate
-- layout: every project in its tree's top.
ALTER TABLE projects ADD COLUMN shard text REFERENCES shards (role);
-- Claimed projects are delegated by claimed once the version that moved them is published;
-- a recently-claimed project not yet delegated is routed by the publisher.
UPDATE projects SET shard = delegator WHERE delegated OR delegator = 'claimed';
CREATE INDEX projects_shard ON projects (shard, name);

-- +goose Down
DROP INDEX projects_shard;
ALTER TABLE projects DROP COLUMN shard;
DROP TABLE shards;
