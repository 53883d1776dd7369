-- +goose Up

-- Pending proposals: a project role version (or a maintainer change) that carries fewer
-- than the threshold of maintainer signatures. Co-signers add signatures over the exact
-- same signed bytes; at the threshold the proposal is staged and removed. One open proposal
-- per project version.
CREATE TABLE proposals (
    project     text   NOT NULL REFERENCES projects (name),
    version     bigint NOT NULL,
    -- the exact bytes of "signed" as the proposer sent them
    signed      bytea  NOT NULL,
    -- verified signatures so far: [{"keyid": …, "sig": …}]
    signatures  jsonb  NOT NULL,
    proposed_by text   NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (project, version)
);

-- +goose Down
DROP TABLE proposals;
