-- +goose Up

-- A snapshot file is derived data: its signed value is the list of role versions the rows
-- say were published up to that snapshot, so the file can be rebuilt from the rows plus
-- its signatures. rebuild_head keeps the start of the file before the signed value
-- ({"signatures":[…],"signed":), which makes the file's durability the database's: it is
-- written before the row commits but synced after (DESIGN.md "Snapshot and publish cost").
ALTER TABLE metadata ADD COLUMN rebuild_head bytea;

-- +goose Down
ALTER TABLE metadata DROP COLUMN rebuild_head;
