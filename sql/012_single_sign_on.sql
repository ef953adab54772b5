-- Single sign-on with an OpenID Connect provider, one per account (docs/sign-in.md "Single sign-on").
-- The client secret is sealed under the server key (like webhook signing secrets: tokengate must send it to the
-- provider, so it cannot be a hash); the grants are JSON documents as store/grants.py writes them.
CREATE TABLE single_sign_on (
    account_id        text PRIMARY KEY REFERENCES accounts (id),
    issuer            text NOT NULL CHECK (length(issuer) BETWEEN 8 AND 2048),
    client_id         text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 512),
    sealed_secret     bytea NOT NULL,
    secret_key_id     text NOT NULL,
    email_domains     text[] NOT NULL,
    trust_emails_without_verification boolean NOT NULL DEFAULT false,
    default_grants    jsonb NOT NULL DEFAULT '[]'::jsonb,
    groups_claim      text NOT NULL DEFAULT 'groups',
    group_mappings    jsonb NOT NULL DEFAULT '[]'::jsonb,   -- [{"group": "...", "grants": [...]}, ...]
    enforced          boolean NOT NULL DEFAULT false,
    sign_in_again_after_seconds integer NOT NULL DEFAULT 86400 CHECK (sign_in_again_after_seconds BETWEEN 1 AND 2592000),
    -- Whether a first sign-in may link a member who exists already (same e-mail, no link to this issuer yet):
    -- decided at each save, true only when the saver holds ACCOUNT_ADMIN (who could invite, i.e. sign in as,
    -- any member anyway). Anyone else's save could otherwise point the account at a provider they control and
    -- sign in as an admin.
    links_existing_members boolean NOT NULL DEFAULT false,
    updated_by        text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Who a provider knows a member as: (issuer, subject), never the e-mail alone. A subject is linked once per
-- account and issuer; a member has at most one link per issuer.
CREATE TABLE single_sign_on_links (
    account_id  text NOT NULL REFERENCES accounts (id),
    issuer      text NOT NULL,
    subject     text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id     text NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, issuer, subject),
    UNIQUE (user_id, issuer)
);

-- One row per sign-in through the provider: the state (its keyed hash), the browser's flow cookie (its keyed
-- hash), the nonce and the PKCE verifier; taken once, before it expires.
CREATE TABLE single_sign_on_flows (
    id             text PRIMARY KEY,                 -- sso_…
    account_id     text NOT NULL REFERENCES accounts (id),
    state_hash     bytea NOT NULL UNIQUE,
    browser_hash   bytea NOT NULL UNIQUE,
    nonce          text NOT NULL,
    code_verifier  text NOT NULL,
    redirect_uri   text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);
CREATE INDEX single_sign_on_flows_expiry_idx ON single_sign_on_flows (expires_at);

-- A sign-in through the provider makes a session of its own method; its absolute expiry is capped by the
-- account's sign_in_again_after_seconds when it is made (and when the setting is lowered).
ALTER TABLE sessions DROP CONSTRAINT sessions_method_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_method_check CHECK (method IN ('invitation', 'passkey', 'sso'));
