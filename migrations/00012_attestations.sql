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

-- An attestation names a file by content; release_files_sha256 (00011_search.sql) finds
-- the release files with that sha256.

-- The Sigstore trusted roots the repository has published as the TUF target
-- _cairn/sigstore/trusted_root.json (listed by the top recently-claimed node, signed with
-- the online key). The row with the newest current_since is the one the publisher lists;
-- older ones stay served under their hash (consistent-snapshot target URLs are immutable).
CREATE TABLE sigstore_trusted_roots (
    sha256        bytea       PRIMARY KEY CHECK (length(sha256) = 32),
    raw           bytea       NOT NULL,
    current_since timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The attestation index (tufrepo/attestindex.go): one online-signed role per first byte of
-- the file digest. Every post increments wanted; a publish that signs the shard sets signed
-- to the wanted it read, so a post that commits while a publish runs is never lost (the
-- shard stays due: wanted > signed). The bytes
-- of every index target ever signed are kept by their sha256, to be served under it.
CREATE TABLE attestation_shards (
    shard text    PRIMARY KEY CHECK (shard ~ '^[0-9a-f]{2}$'),
    wanted bigint NOT NULL DEFAULT 1,
    signed bigint NOT NULL DEFAULT 0
);
CREATE TABLE attestation_indexes (
    sha256      bytea PRIMARY KEY CHECK (length(sha256) = 32),
    file_sha256 bytea NOT NULL,
    raw         bytea NOT NULL
);

-- +goose Down
DROP TABLE attestation_indexes;
DROP TABLE attestation_shards;
DROP TABLE sigstore_trusted_roots;
DROP TABLE attestations;
