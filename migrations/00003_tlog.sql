-- +goose Up

-- Transparency log (Rekor v2) entries of the metadata versions the server signed with an
-- online key (metadata.action = 'signed'), one per version, written by the tlog worker
-- after the publish that signed the version committed: publishing never waits on the log.
CREATE TABLE tlog_entries (
    seq        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    role       text   NOT NULL,
    version    bigint NOT NULL,
    length     bigint NOT NULL,
    sha256     bytea  NOT NULL,
    keyid      text   NOT NULL,
    -- the DSSE envelope (api.DSSEEnvelope JSON) and the log's answer (api.RekorEntry JSON)
    envelope   jsonb  NOT NULL,
    rekor      jsonb  NOT NULL,
    log_url    text   NOT NULL,
    log_index  bigint NOT NULL,
    logged_at  timestamptz NOT NULL,
    PRIMARY KEY (role, version),
    FOREIGN KEY (role, version) REFERENCES metadata (role, version)
);

-- Failed submissions, retried with backoff; removed once the version is logged.
CREATE TABLE tlog_attempts (
    role         text   NOT NULL,
    version      bigint NOT NULL,
    attempts     int    NOT NULL,
    last_error   text   NOT NULL,
    next_attempt timestamptz NOT NULL,
    PRIMARY KEY (role, version),
    FOREIGN KEY (role, version) REFERENCES metadata (role, version)
);

-- The worker's scan: signed versions, oldest first.
CREATE INDEX metadata_signed ON metadata (created_at, role, version) WHERE action = 'signed';

-- +goose Down
DROP INDEX metadata_signed;
DROP TABLE tlog_attempts;
DROP TABLE tlog_entries;
