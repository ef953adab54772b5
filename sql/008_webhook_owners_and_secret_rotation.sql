-- Webhooks show only what their owner may read (docs/webhooks.md). The owner is the principal that
-- created the webhook or last changed its URL or events, kept by id so that its grants of the moment are read
-- before every delivery: a user (owner_user_id), a service token (owner_token_id), or neither: the operator at
-- the command line. Webhooks made before are owned by the principal created_by names.
ALTER TABLE webhooks
    ADD COLUMN owner_user_id text REFERENCES users (id),
    ADD COLUMN owner_token_id text REFERENCES tokens (id),
    ADD CONSTRAINT webhooks_one_owner CHECK (owner_user_id IS NULL OR owner_token_id IS NULL);
UPDATE webhooks w SET owner_user_id = u.id
FROM users u WHERE w.created_by LIKE 'user:%' AND u.id = substr(w.created_by, 6);
-- "service_token:<id> (tgs_…)", the id bare or printed with its stk_ prefix.
UPDATE webhooks w SET owner_token_id = t.id
FROM tokens t
WHERE w.created_by LIKE 'service_token:%'
  AND t.id = regexp_replace(split_part(substr(w.created_by, 15), ' ', 1), '^stk_', '');

-- During a rolling upgrade the previous release still creates webhooks without an owner: fill it from created_by
-- as the backfill above does, so such a webhook never reads as the operator's (every event of the account).
CREATE FUNCTION webhooks_owner_from_creator() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.owner_user_id IS NULL AND NEW.owner_token_id IS NULL THEN
        IF NEW.created_by LIKE 'user:%' THEN
            NEW.owner_user_id := (SELECT u.id FROM users u WHERE u.id = substr(NEW.created_by, 6));
        ELSIF NEW.created_by LIKE 'service_token:%' THEN
            NEW.owner_token_id := (SELECT t.id FROM tokens t
                WHERE t.id = regexp_replace(split_part(substr(NEW.created_by, 15), ' ', 1), '^stk_', ''));
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER webhooks_owner_from_creator BEFORE INSERT ON webhooks
    FOR EACH ROW EXECUTE FUNCTION webhooks_owner_from_creator();

-- An event the owner may not read (now) is not sent: its delivery is recorded as skipped, with the reason.
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_status_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'skipped'));

-- Rotating a signing secret keeps the previous one, sealed like the current, until previous_secret_expires_at:
-- until then deliveries are signed with both.
ALTER TABLE webhooks
    ADD COLUMN previous_sealed_secret bytea,
    ADD COLUMN previous_secret_key_id text,
    ADD COLUMN previous_secret_expires_at timestamptz,
    ADD CONSTRAINT webhooks_previous_secret CHECK (
        (previous_sealed_secret IS NULL) = (previous_secret_key_id IS NULL)
        AND (previous_sealed_secret IS NULL) = (previous_secret_expires_at IS NULL));
