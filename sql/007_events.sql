-- Token events: webhooks per account with an outbox of deliveries, expiry and disuse notices, usage insight.

-- Audit events also come from GitHub's secret-scanning reports and from the server's own jobs.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_source_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_source_check
    CHECK (source IN ('graphql', 'cli', 'secret_scanning', 'system'));

CREATE TABLE webhooks (
    id             text PRIMARY KEY,
    account_id     text NOT NULL REFERENCES accounts (id),
    url            text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description    text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    -- Event types (service_token.created), families (service_token.*) or '*'.
    events         text[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 100),
    -- The signing secret sealed (XSalsa20-Poly1305) under a key derived from the server key whose key id
    -- is secret_key_id: the server must sign with it, so it cannot be a hash, and a dump alone does not reveal it.
    sealed_secret  bytea NOT NULL,
    secret_key_id  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL,
    -- Set when a delivery gave up after the retry window; cleared by the next successful delivery.
    failing_since  timestamptz
);
CREATE INDEX webhooks_account_idx ON webhooks (account_id);

-- What a webhook subscription must hold to receive an event of this type.
CREATE FUNCTION webhook_event_patterns(event_type text) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[event_type, split_part(event_type, '.', 1) || '.*', '*']
$$;

-- The outbox: one row per event and subscribed webhook, written in the transaction of the change, and the
-- delivery log. Instances claim due rows with FOR UPDATE SKIP LOCKED and hold them by a lease (locked_until)
-- while they send, outside any transaction: a crashed sender's rows are due again when its lease ends.
CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id       text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    account_id       text NOT NULL REFERENCES accounts (id),
    event_id         text NOT NULL,  -- the CloudEvents id: the same for every webhook and redelivery of one event
    event_type       text NOT NULL,
    subject          text,
    occurred_at      timestamptz NOT NULL,
    data             jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    locked_until     timestamptz,
    last_attempt_at  timestamptz,
    response_status  integer,
    latency_ms       integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, id DESC);
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (created_at) WHERE status <> 'pending';

-- Notices already sent, once per token and notice: expiring:30, expiring:7, expiring:1, expired, and
-- unused:<unix time of the last use> (once per stretch of disuse).
CREATE TABLE token_notices (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id  text NOT NULL REFERENCES tokens (id),
    notice    text NOT NULL,
    sent_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (token_id, notice)
);
CREATE INDEX tokens_expiry_idx ON tokens (expires_at) WHERE state = 'active' AND expires_at IS NOT NULL;

-- Usage insight, written in batches: the last 5 distinct client addresses (newest first), requests per
-- UTC day (kept 90 days), and when each grant last decided an allowed check.
ALTER TABLE tokens ADD COLUMN last_used_from text[] NOT NULL DEFAULT '{}';
CREATE TABLE token_usage_daily (
    token_id  text NOT NULL REFERENCES tokens (id),
    day       date NOT NULL,
    requests  bigint NOT NULL CHECK (requests >= 0),
    PRIMARY KEY (token_id, day)
);
CREATE INDEX token_usage_daily_day_idx ON token_usage_daily (day);
ALTER TABLE grants ADD COLUMN last_used_at timestamptz;
