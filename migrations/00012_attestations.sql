-- +goose Up

-- Attestations (issue #12, DESIGN.md "Attestations"): Sigstore bundles about release files,
-- each verified against the repository's Sigstore trusted root before it is stored. The
-- bundle's exact bytes are kept and served; the other columns are the server's reading of
-- it, for listing and summaries (clients verify the bundle again). A DSSE signature counts
-- once per file, whatever the bundle's serialisation (signature_sha256).
CREATE TABLE attestations (
    seq                 bigserial   PRIMARY KEY,
    file_sha256         bytea       NOT NULL CHECK (length(file_sha256) = 32),
    bundle_sha256       bytea       NOT NULL CHECK (length(bundle_sha256) = 32),
    signature_sha256    bytea       NOT NULL CHECK (length(signature_sha256) = 32),
    bundle              bytea       NOT NULL,
    san                 text        NOT NULL,
    issuer              text        NOT NULL,
    predicate_type      text        NOT NULL,
    source_repository   text        NOT NULL DEFAULT '',
    build_signer        text        NOT NULL DEFAULT '',
    log_time            timestamptz NOT NULL,
    log_index           bigint      NOT NULL,
    trusted_root_sha256 bytea       NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (file_sha256, bundle_sha256),
    UNIQUE (file_sha256, signature_sha256)
);

-- An attestation names a file by content: find the release files with that sha256.
CREATE INDEX release_files_sha256 ON release_files (sha256);

-- +goose Down
DROP INDEX release_files_sha256;
DROP TABLE attestations;
