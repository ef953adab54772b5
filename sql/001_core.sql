-- Accounts, projects, users, the permission catalog, grants, tokens and the audit log.
-- Identifiers are opaque text (acc_…, prj_…, usr_…; a v2 token's row id is the id inside the token).

CREATE TABLE accounts (
    id          text PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    plan        text NOT NULL CHECK (plan IN ('DEVELOPER', 'STARTER', 'TEAM', 'ENTERPRISE', 'ENTERPRISE_PLUS')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id          text PRIMARY KEY,
    account_id  text NOT NULL REFERENCES accounts (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_account_idx ON projects (account_id, created_at);

CREATE TABLE users (
    id          text PRIMARY KEY,
    account_id  text NOT NULL REFERENCES accounts (id),
    email       text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    license     text NOT NULL CHECK (license IN ('DEVELOPER', 'READ_ONLY', 'IT')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_account_email_idx ON users (account_id, lower(email));

-- The catalog: kept equal to src/tokengate/reference/*.csv by the migration runner (and a test).
CREATE TABLE permission_sets (
    key    text PRIMARY KEY,
    name   text NOT NULL,
    level  text NOT NULL CHECK (level IN ('ACCOUNT', 'PROJECT'))
);

CREATE TABLE permission_matrix (
    permission_set              text NOT NULL REFERENCES permission_sets (key),
    set_level                   text NOT NULL CHECK (set_level IN ('ACCOUNT', 'PROJECT')),
    resource                    text NOT NULL,
    access                      text NOT NULL CHECK (access IN ('READ', 'WRITE')),
    environment_write_possible  boolean NOT NULL,
    PRIMARY KEY (permission_set, resource)
);

CREATE TABLE plan_permission_sets (
    plan            text NOT NULL,
    permission_set  text NOT NULL REFERENCES permission_sets (key),
    PRIMARY KEY (plan, permission_set)
);

CREATE TABLE tokens (
    id            text PRIMARY KEY,
    account_id    text NOT NULL REFERENCES accounts (id),
    kind          text NOT NULL CHECK (kind IN ('service', 'user')),
    format        text NOT NULL CHECK (format IN ('v2', 'legacy')),
    lookup_hint   text,                 -- legacy only: the first characters, not secret
    hash          bytea NOT NULL,       -- keyed BLAKE2b (v2) or argon2id (legacy); never the token
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    user_id       text REFERENCES users (id),
    state         text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'deleted')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL,
    expires_at    timestamptz,
    last_used_at  timestamptz,
    deleted_at    timestamptz,
    CHECK ((kind = 'user') = (user_id IS NOT NULL)),
    CHECK ((format = 'legacy') = (lookup_hint IS NOT NULL))
);
CREATE INDEX tokens_account_idx ON tokens (account_id, kind, created_at);
CREATE INDEX tokens_legacy_hint_idx ON tokens (lookup_hint) WHERE lookup_hint IS NOT NULL;

-- A grant belongs to exactly one user or one token; project_ids is empty when all_projects.
CREATE TABLE grants (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      text NOT NULL REFERENCES accounts (id),
    user_id         text REFERENCES users (id),
    token_id        text REFERENCES tokens (id),
    permission_set  text NOT NULL REFERENCES permission_sets (key),
    all_projects    boolean NOT NULL,
    project_ids     text[] NOT NULL DEFAULT '{}',
    position        integer NOT NULL DEFAULT 0,
    CHECK ((user_id IS NULL) <> (token_id IS NULL)),
    CHECK (all_projects = (cardinality(project_ids) = 0))
);
CREATE INDEX grants_user_idx ON grants (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX grants_token_idx ON grants (token_id) WHERE token_id IS NOT NULL;

CREATE TABLE audit_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   text NOT NULL REFERENCES accounts (id),
    action       text NOT NULL,
    actor        text NOT NULL,
    source       text NOT NULL CHECK (source IN ('graphql', 'cli')),
    client_addr  text,
    target_id    text,
    details      jsonb NOT NULL DEFAULT '{}',
    occurred_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audit_events_account_idx ON audit_events (account_id, id DESC);

-- The audit log is append-only: no code path may change or remove a row.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
