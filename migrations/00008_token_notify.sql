-- +goose Up

-- Replicas cache token records (store.DB.Authenticate); a change to one (revocation, a
-- project added to its scope) or its removal tells every replica to forget it.
-- +goose StatementBegin
CREATE FUNCTION tokens_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cairn_tokens', OLD.id);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER tokens_changed AFTER UPDATE OR DELETE ON tokens
    FOR EACH ROW EXECUTE FUNCTION tokens_notify();

-- +goose Down
DROP TRIGGER tokens_changed ON tokens;
DROP FUNCTION tokens_notify();
