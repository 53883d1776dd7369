-- +goose Up

-- One row: the repository's bootstrap state and the head of the published chain.
CREATE TABLE repo_state (
    id                int PRIMARY KEY CHECK (id = 1),
    bootstrapped_at   timestamptz NOT NULL DEFAULT now(),
    -- key ID → role for each online key, so that a server started with other keys refuses.
    online_keys       jsonb NOT NULL,
    snapshot_version  bigint NOT NULL,
    timestamp_version bigint NOT NULL
);

-- Every metadata version, as the exact bytes that were signed. snapshot_version is the first
-- snapshot that lists this version (NULL while staged). Top-level roles are published when
-- inserted.
CREATE TABLE metadata (
    role             text   NOT NULL,
    version          bigint NOT NULL CHECK (version >= 1),
    raw              bytea  NOT NULL,
    length           bigint NOT NULL,
    sha256           bytea  NOT NULL,
    expires          timestamptz NOT NULL,
    action           text   NOT NULL CHECK (action IN ('accepted', 'signed')),
    snapshot_version bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, version)
);
CREATE INDEX metadata_staged ON metadata (created_at) WHERE snapshot_version IS NULL;

CREATE TABLE projects (
    name           text PRIMARY KEY,
    canonical_name text NOT NULL UNIQUE,
    delegator      text NOT NULL CHECK (delegator IN ('recently-claimed', 'claimed')),
    threshold      int  NOT NULL CHECK (threshold >= 1),
    keys           jsonb NOT NULL,           -- keyid → TUF key
    keyids         text[] NOT NULL,
    role_version   bigint NOT NULL,          -- latest accepted (staged or published)
    published_version bigint NOT NULL DEFAULT 0,
    -- false until the delegation to this project has been published by the publisher.
    delegated      boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(keyids) >= threshold)
);
CREATE INDEX projects_undelegated ON projects (name) WHERE NOT delegated;

-- Release files, one row per target path, immutable once accepted.
CREATE TABLE release_files (
    path         text PRIMARY KEY,
    project      text NOT NULL REFERENCES projects (name),
    version      text NOT NULL,
    filename     text NOT NULL,
    length       bigint NOT NULL,
    sha256       bytea NOT NULL,
    custom       jsonb,
    role_version bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX release_files_project ON release_files (project, version);

-- Content-addressed blobs present in the blob store.
CREATE TABLE blobs (
    sha256     bytea PRIMARY KEY,
    size       bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tokens (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    secret_hash bytea NOT NULL,
    admin       boolean NOT NULL DEFAULT false,
    can_create  boolean NOT NULL DEFAULT false,
    projects    text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Hash-chained audit log of every metadata version accepted or signed. Written only by the
-- publisher (and bootstrap), which holds the publisher lock, so the chain never forks.
CREATE TABLE audit_log (
    seq       bigint PRIMARY KEY,
    action    text NOT NULL,
    role      text NOT NULL,
    version   bigint NOT NULL,
    length    bigint NOT NULL,
    sha256    bytea NOT NULL,
    snapshot  bigint NOT NULL,
    at        timestamptz NOT NULL,
    prev_hash bytea NOT NULL,
    hash      bytea NOT NULL
);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE tokens;
DROP TABLE blobs;
DROP TABLE release_files;
DROP TABLE projects;
DROP TABLE metadata;
DROP TABLE repo_state;
