-- +goose Up

-- Large signed metadata (the snapshot: 4.7 MB at 100k projects) is kept as a file named by
-- its sha256 in the blob store's metadata/ directory, written and synced before the row
-- that names it commits (DESIGN.md "Snapshot and publish cost"); the row keeps version,
-- length and sha256. Versions no client can still ask for are pruned: the row stays (the
-- audit log and transparency log refer to its hash) and the bytes go.
ALTER TABLE metadata ALTER COLUMN raw DROP NOT NULL;
ALTER TABLE metadata ADD COLUMN stored text NOT NULL DEFAULT 'row' CHECK (stored IN ('row', 'file', 'pruned'));
ALTER TABLE metadata ADD CONSTRAINT metadata_raw_stored CHECK ((stored = 'row') = (raw IS NOT NULL));
CREATE INDEX metadata_snapshots_kept ON metadata (version) WHERE role = 'snapshot' AND stored <> 'pruned';
CREATE INDEX metadata_timestamps ON metadata (created_at) WHERE role = 'timestamp';
CREATE INDEX metadata_files ON metadata (sha256) WHERE stored = 'file';

-- +goose Down
DROP INDEX metadata_files;
DROP INDEX metadata_timestamps;
DROP INDEX metadata_snapshots_kept;
ALTER TABLE metadata DROP CONSTRAINT metadata_raw_stored;
ALTER TABLE metadata DROP COLUMN stored;
ALTER TABLE metadata ALTER COLUMN raw SET NOT NULL;
