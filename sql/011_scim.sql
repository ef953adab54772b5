-- SCIM 2.0 provisioning (docs/scim.md). A SCIM token belongs to an account and authenticates /scim/v2/* only:
-- its own table, so no other door's lookup can ever find it. Only the keyed hash of its text is stored.
CREATE TABLE scim_tokens (
    id           text PRIMARY KEY,               -- the 16 base62 characters after tgp_ (not secret)
    account_id   text NOT NULL REFERENCES accounts (id),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    hash         bytea NOT NULL,
    key_id       text NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX scim_tokens_account_idx ON scim_tokens (account_id, created_at, id);

-- What the identity provider knows a member by: its userName (NULL: the member's e-mail, for members made
-- elsewhere) and the rest of its SCIM record (name, displayName, emails, externalId), kept as it was sent.
ALTER TABLE users ADD COLUMN scim_user_name text CHECK (length(scim_user_name) BETWEEN 1 AND 320);
ALTER TABLE users ADD COLUMN scim_profile jsonb NOT NULL DEFAULT '{}'::jsonb;
-- userName is unique in the account, case-insensitively, whether it is a SCIM userName or the e-mail.
CREATE UNIQUE INDEX users_account_scim_user_name_idx ON users (account_id, lower(coalesce(scim_user_name, email)));
-- A member removed through SCIM (DELETE /Users/{id}): deactivated, kept for the audit trail and the members list,
-- and no longer a SCIM resource (404); its e-mail and userName stay taken in the account.
ALTER TABLE users ADD COLUMN scim_deleted_at timestamptz;

-- Changes the identity provider makes through /scim/v2 are audited with source 'scim'.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_source_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_source_check
    CHECK (source IN ('graphql', 'cli', 'secret_scanning', 'system', 'sign_in', 'token_exchange', 'scim'));
