-- Members who can be switched off, personal tokens listed per user, and each account's token policy.

-- A deactivated user's personal tokens are refused at once (the credential query reads this column);
-- the row stays for the audit trail, and service tokens the user created keep working.
ALTER TABLE users ADD COLUMN state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'deactivated'));
ALTER TABLE users ADD COLUMN deactivated_at timestamptz;
ALTER TABLE users ADD CONSTRAINT users_deactivated_has_time CHECK ((state = 'deactivated') = (deactivated_at IS NOT NULL));

-- viewer.userTokens and User.tokens list a user's personal tokens.
CREATE INDEX tokens_user_idx ON tokens (user_id, created_at) WHERE user_id IS NOT NULL;

-- No row: the defaults (no required expiry for service tokens, personal tokens at most 90 days).
CREATE TABLE token_policies (
    account_id                       text PRIMARY KEY REFERENCES accounts (id),
    require_service_token_expiry     boolean NOT NULL DEFAULT false,
    service_token_max_lifetime_days  integer CHECK (service_token_max_lifetime_days BETWEEN 1 AND 36500),
    user_token_max_lifetime_days     integer NOT NULL DEFAULT 90 CHECK (user_token_max_lifetime_days BETWEEN 1 AND 36500),
    updated_at                       timestamptz NOT NULL DEFAULT now()
);
