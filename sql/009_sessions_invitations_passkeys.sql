-- People sign in without a pasted token (docs/sign-in.md): invitations give a one-time link, the invitee
-- registers a passkey, and every sign-in makes a browser session. Secrets (the session cookie, the invitation
-- link) are stored as keyed hashes only, like tokens; a passkey's public key is not a secret.

CREATE TABLE sessions (
    id            text PRIMARY KEY,               -- ses_…: what listings and "sign out" name (never the cookie)
    secret_hash   bytea NOT NULL UNIQUE,          -- keyed hash of the cookie's value under the newest server key
    account_id    text NOT NULL REFERENCES accounts (id),
    user_id       text NOT NULL REFERENCES users (id),
    method        text NOT NULL CHECK (method IN ('invitation', 'passkey')),
    passkey_id    text,                           -- the passkey it was signed in with, if any
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    idle_expires_at      timestamptz NOT NULL,    -- moved on by every use, never past absolute_expires_at
    absolute_expires_at  timestamptz NOT NULL,
    client_addr   text,
    user_agent    text,
    ended_at      timestamptz,
    ended_reason  text
);
CREATE INDEX sessions_user_idx ON sessions (user_id, created_at) WHERE ended_at IS NULL;

CREATE TABLE invitations (
    id          text PRIMARY KEY,                 -- inv_…
    secret_hash bytea NOT NULL UNIQUE,
    account_id  text NOT NULL REFERENCES accounts (id),
    user_id     text NOT NULL REFERENCES users (id),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX invitations_user_idx ON invitations (user_id);

CREATE TABLE passkeys (
    id             text PRIMARY KEY,              -- pky_…
    account_id     text NOT NULL REFERENCES accounts (id),
    user_id        text NOT NULL REFERENCES users (id),
    credential_id  bytea NOT NULL UNIQUE,         -- the authenticator's id for it
    public_key     bytea NOT NULL,                -- COSE
    sign_count     bigint NOT NULL DEFAULT 0,
    invitation_id  text REFERENCES invitations (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz,
    revoked_at     timestamptz
);
CREATE INDEX passkeys_user_idx ON passkeys (user_id);

-- One row per WebAuthn ceremony: its challenge, used once, before it expires.
CREATE TABLE webauthn_challenges (
    id             text PRIMARY KEY,              -- wch_…: the ceremony, given back by the browser's script
    kind           text NOT NULL CHECK (kind IN ('registration', 'authentication')),
    challenge      bytea NOT NULL,
    invitation_id  text REFERENCES invitations (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);
CREATE INDEX webauthn_challenges_expiry_idx ON webauthn_challenges (expires_at);

-- Sign-ins, passkey registrations and sign-outs through the sign-in endpoints are audited from their own door.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_source_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_source_check
    CHECK (source IN ('graphql', 'cli', 'secret_scanning', 'system', 'sign_in'));
