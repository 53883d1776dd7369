-- +goose Up

-- The OCI Distribution API (issue #4). Blob bytes live in the content-addressed blob store
-- (the same files as release files); these tables hold what the registry knows about them.
-- Digests are kept in their text form ("sha256:<hex>", "sha512:<hex>") because OCI uses
-- more than one algorithm.

CREATE TABLE oci_repositories (
    name       text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Blobs present in the blob store for the registry. last_used moves on every upload or
-- mount, so garbage collection can leave alone a blob that a push is about to link.
CREATE TABLE oci_blobs (
    digest     text PRIMARY KEY,
    size       bigint NOT NULL CHECK (size >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used  timestamptz NOT NULL DEFAULT now()
);

-- Which repository may serve which blob (a push or mount links it; DELETE unlinks it).
CREATE TABLE oci_repo_blobs (
    repo       text NOT NULL REFERENCES oci_repositories (name),
    digest     text NOT NULL REFERENCES oci_blobs (digest),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo, digest)
);
CREATE INDEX oci_repo_blobs_digest ON oci_repo_blobs (digest);

-- Manifests, as the exact bytes pushed. subject and artifact_type feed the referrers API.
CREATE TABLE oci_manifests (
    repo          text   NOT NULL REFERENCES oci_repositories (name),
    digest        text   NOT NULL,
    media_type    text   NOT NULL,
    artifact_type text   NOT NULL DEFAULT '',
    subject       text,
    annotations   jsonb,
    raw           bytea  NOT NULL,
    -- true for the artifact manifests of published releases: never deleted through OCI.
    release       boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo, digest)
);
CREATE INDEX oci_manifests_subject ON oci_manifests (repo, subject) WHERE subject IS NOT NULL;

-- Blobs and child manifests a manifest references (config, layers, index entries).
CREATE TABLE oci_manifest_refs (
    repo     text NOT NULL,
    manifest text NOT NULL,
    ref      text NOT NULL,
    PRIMARY KEY (repo, manifest, ref),
    FOREIGN KEY (repo, manifest) REFERENCES oci_manifests (repo, digest) ON DELETE CASCADE
);
CREATE INDEX oci_manifest_refs_ref ON oci_manifest_refs (repo, ref);

-- Tags. A release tag (<project>:<version>) is immutable: it cannot be moved or deleted.
CREATE TABLE oci_tags (
    repo       text NOT NULL,
    tag        text NOT NULL,
    digest     text NOT NULL,
    immutable  boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo, tag),
    FOREIGN KEY (repo, digest) REFERENCES oci_manifests (repo, digest) ON DELETE CASCADE
);

-- Upload sessions; the bytes received so far are in the blob store's uploads directory.
CREATE TABLE oci_uploads (
    id         text PRIMARY KEY,
    repo       text NOT NULL,
    size       bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oci_uploads_updated ON oci_uploads (updated_at);

-- The key that signs short-lived registry tokens (the Bearer challenge flow); shared by
-- every replica, created on first use.
CREATE TABLE oci_token_key (
    id         int PRIMARY KEY CHECK (id = 1),
    key        bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE oci_token_key;
DROP TABLE oci_uploads;
DROP TABLE oci_tags;
DROP TABLE oci_manifest_refs;
DROP TABLE oci_manifests;
DROP TABLE oci_repo_blobs;
DROP TABLE oci_blobs;
DROP TABLE oci_repositories;
