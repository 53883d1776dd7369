-- +goose Up

-- Pending proposals: a project role version or a maintainer change that carries fewer than
-- the threshold of maintainer signatures. Co-signers add signatures over the exact same
-- signed bytes; at the threshold the proposal is applied and removed. One open proposal
-- per project, kind and version.
CREATE TABLE proposals (
    project     text   NOT NULL REFERENCES projects (name),
    kind        text   NOT NULL DEFAULT 'role' CHECK (kind IN ('role', 'maintainers')),
    version     bigint NOT NULL,
    -- the exact bytes of "signed" as the proposer sent them
    signed      bytea  NOT NULL,
    -- verified signatures so far: [{"keyid": …, "sig": …}]
    signatures  jsonb  NOT NULL,
    proposed_by text   NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (project, kind, version)
);

-- Maintainer changes (DESIGN.md): documents signed by a threshold of the current
-- maintainers. Applied at once to a recently-claimed project's delegation; queued for the
-- admins' next offline signing of claimed for a claimed project.
ALTER TABLE projects ADD COLUMN delegation_version bigint NOT NULL DEFAULT 1;

CREATE TABLE maintainer_changes (
    project    text   NOT NULL REFERENCES projects (name),
    version    bigint NOT NULL,
    raw        bytea  NOT NULL,
    keys       jsonb  NOT NULL,
    keyids     text[] NOT NULL,
    threshold  int    NOT NULL,
    status     text   NOT NULL CHECK (status IN ('applied', 'queued')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project, version)
);

-- +goose Down
DROP TABLE maintainer_changes;
ALTER TABLE projects DROP COLUMN delegation_version;
DROP TABLE proposals;
