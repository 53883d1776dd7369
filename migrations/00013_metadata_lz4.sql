-- +goose Up

-- Every upload stores its whole project role in metadata.raw (O(files): 15 KB at 100
-- targets), and every publish a snapshot and a timestamp. PostgreSQL's default TOAST
-- compression, pglz, cost 0.5–0.8 ms per 15 KB row on the benchmark machine and was the
-- top statement of an upload batch (BENCHMARKS.md run 18); lz4 costs a third of that for
-- the same size. Only rows written from now on use it; old rows stay readable as they are.
-- A server built without lz4 (--with-lz4 is in the PGDG and Debian builds) keeps pglz.
-- The previous release reads and writes the table as before (decompression is
-- PostgreSQL's). SET COMPRESSION changes only the catalog, under a brief ACCESS EXCLUSIVE
-- lock on a hot table: bounded, so a migration stuck behind a long transaction fails and
-- is retried instead of stalling uploads (migrations/README.md).
SET LOCAL lock_timeout = '5s';
-- +goose StatementBegin
DO $$
BEGIN
    ALTER TABLE metadata ALTER COLUMN raw SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not supported by this PostgreSQL build: metadata.raw keeps pglz';
END;
$$;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE metadata ALTER COLUMN raw SET COMPRESSION default;
