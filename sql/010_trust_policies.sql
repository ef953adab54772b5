-- Keyless CI (issue 25): trust policies let a workload's OIDC token (GitHub Actions, GitLab CI) be exchanged for a
-- short-lived tokengate token (RFC 8693, POST /oauth/token). docs/keyless-ci.md.

CREATE TABLE trust_policies (
    id                    text PRIMARY KEY,                      -- tpl_…
    account_id            text NOT NULL REFERENCES accounts (id),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    issuer                text NOT NULL,                         -- https URL, exactly as the tokens' iss
    audience              text NOT NULL CHECK (length(audience) BETWEEN 1 AND 1024),
    subject               text NOT NULL CHECK (length(subject) BETWEEN 1 AND 1024),
    conditions            jsonb NOT NULL DEFAULT '{}',            -- claim name -> exact value
    grants                jsonb NOT NULL DEFAULT '[]',            -- what the exchanged tokens carry
    max_lifetime_seconds  integer NOT NULL CHECK (max_lifetime_seconds BETWEEN 60 AND 3600),
    created_at            timestamptz NOT NULL DEFAULT now(),
    created_by            text NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trust_policies_account_idx ON trust_policies (account_id, created_at);
CREATE INDEX trust_policies_issuer_idx ON trust_policies (issuer);

-- An exchanged token is a token row of its own kind, bound to the policy it was exchanged under: it lives while
-- the policy stays as it was (a change or a deletion revokes every one of them).
ALTER TABLE tokens DROP CONSTRAINT tokens_kind_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_kind_check CHECK (kind IN ('service', 'user', 'exchanged'));
ALTER TABLE tokens ADD COLUMN trust_policy_id text REFERENCES trust_policies (id) ON DELETE SET NULL;
ALTER TABLE tokens ADD CONSTRAINT tokens_exchanged_expire CHECK (kind <> 'exchanged' OR expires_at IS NOT NULL);
CREATE INDEX tokens_trust_policy_idx ON tokens (trust_policy_id) WHERE trust_policy_id IS NOT NULL;

-- Each presented token's jti is accepted once per issuer, remembered until that token expires.
CREATE TABLE exchanged_subject_tokens (
    issuer      text NOT NULL,
    jti         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX exchanged_subject_tokens_expiry_idx ON exchanged_subject_tokens (expires_at);

-- Exchanges are audited in the policy's account, by the door they came through.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_source_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_source_check
    CHECK (source IN ('graphql', 'cli', 'secret_scanning', 'system', 'sign_in', 'token_exchange'));
