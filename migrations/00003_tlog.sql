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

-- The signed versions without an entry: a row per version, added by a trigger in the
-- transaction that inserts the signed version (so the worker never scans the whole
-- metadata table), removed when the entry is stored. Failed attempts are retried at
-- next_attempt.
CREATE TABLE tlog_pending (
    role         text   NOT NULL,
    version      bigint NOT NULL,
    attempts     int    NOT NULL DEFAULT 0,
    last_error   text,
    next_attempt timestamptz NOT NULL DEFAULT '-infinity',
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, version),
    FOREIGN KEY (role, version) REFERENCES metadata (role, version)
);
CREATE INDEX tlog_pending_order ON tlog_pending (created_at, role, version);

-- +goose StatementBegin
CREATE FUNCTION tlog_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tlog_pending (role, version) VALUES (NEW.role, NEW.version) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER metadata_tlog_enqueue AFTER INSERT ON metadata
    FOR EACH ROW WHEN (NEW.action = 'signed') EXECUTE FUNCTION tlog_enqueue();

-- Versions signed before this migration wait for the log too.
INSERT INTO tlog_pending (role, version, created_at)
    SELECT role, version, created_at FROM metadata WHERE action = 'signed'
    ON CONFLICT DO NOTHING;

-- +goose Down
DROP TRIGGER metadata_tlog_enqueue ON metadata;
DROP FUNCTION tlog_enqueue();
DROP TABLE tlog_pending;
DROP TABLE tlog_entries;
