-- Service token lifecycle: which token a rotation replaced, and the once-only audit of an expired token's use.

-- The token this one was rotated from (NULL for tokens created directly or imported).
ALTER TABLE tokens ADD COLUMN rotated_from text REFERENCES tokens (id);

-- Set by the first refused use after expiry, with a conditional UPDATE that only one request wins,
-- so `service_token.expired_on_use` is audited once across requests and server processes.
ALTER TABLE tokens ADD COLUMN expiry_audited_at timestamptz;

-- Deleted tokens keep their row; a deleted token always says when.
ALTER TABLE tokens ADD CONSTRAINT tokens_deleted_has_time CHECK ((state = 'deleted') = (deleted_at IS NOT NULL));
