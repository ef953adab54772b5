"""The scheduled token notices (jobs/token_notices.py): expiry and disuse, each recorded once per token and
queued to the webhooks subscribed to its event."""

from __future__ import annotations

from tokengate.store import Executor
from tokengate.store.tokens import USABLE

# One instance at a time runs the scheduled notices; the lock ends with its transaction.
NOTICE_LOCK_KEY = 0x746F6B6E  # "tokn"
TRY_NOTICE_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
# Token notices: each (token, notice) once, recorded whether or not the account has webhooks, and queued to the
# webhooks subscribed to its event, in one statement. $3 holds the expiry thresholds in days
# (webhook_events.EXPIRY_NOTICE_DAYS); the nearest one not yet passed is the notice: a token found 6 days before
# expiry gets the 7-day notice only. A token that expired more than 30 days ago gets no expiry notice.
QUEUE_NOTICES = (
    """
WITH candidates AS (
    SELECT t.id AS token_id, t.account_id, t.kind, t.name, t.expires_at, t.last_used_at,
           CASE WHEN t.expires_at <= now() THEN 'expired'
                ELSE 'expiring:' || (SELECT min(threshold) FROM unnest($3::int[]) AS threshold
                                     WHERE t.expires_at <= now() + make_interval(days => threshold)) END AS notice
    FROM tokens t
    WHERE t.state = 'active' AND t.expires_at IS NOT NULL
      AND t.expires_at <= now() + make_interval(days => (SELECT max(threshold) FROM unnest($3::int[]) AS threshold))
      AND t.expires_at > now() - interval '30 days'
    UNION ALL
    SELECT t.id, t.account_id, t.kind, t.name, t.expires_at, t.last_used_at,
           'unused:' || floor(extract(epoch FROM coalesce(t.last_used_at, t.created_at)))::bigint
    FROM tokens t
    WHERE t.kind = 'service' AND """
    + USABLE
    + """
      AND coalesce(t.last_used_at, t.created_at) <= now() - make_interval(days => $2)
), due AS (
    SELECT c.*, CASE WHEN c.notice = 'expired' THEN 'service_token.expired'
                     WHEN c.notice LIKE 'unused:%' THEN 'service_token.unused'
                     WHEN c.kind = 'service' THEN 'service_token.expiring'
                     ELSE 'user_token.expiring' END AS event_type
    FROM candidates c
    WHERE NOT (c.kind = 'user' AND c.notice = 'expired')
      AND NOT EXISTS (SELECT 1 FROM token_notices n WHERE n.token_id = c.token_id AND n.notice = c.notice)
    ORDER BY c.token_id, c.notice LIMIT $1
), noted AS (
    INSERT INTO token_notices (token_id, notice) SELECT token_id, notice FROM due
    ON CONFLICT (token_id, notice) DO NOTHING
    RETURNING id, token_id, notice, sent_at
), queued AS (
    INSERT INTO webhook_deliveries (webhook_id, account_id, event_id, event_type, subject, occurred_at, data)
    SELECT w.id, d.account_id, 'notice-' || n.id, d.event_type, d.token_id, n.sent_at,
           jsonb_build_object(
               'account_id', d.account_id, 'actor', 'tokengate', 'source', 'system', 'client_address', NULL,
               'target_id', d.token_id,
               'details', jsonb_strip_nulls(jsonb_build_object(
                   'name', d.name, 'expires_at', d.expires_at, 'last_used_at', d.last_used_at,
                   'days_before', CASE WHEN d.notice LIKE 'expiring:%' THEN split_part(d.notice, ':', 2)::int END,
                   'unused_days', CASE WHEN d.notice LIKE 'unused:%' THEN $2 END)))
    FROM noted n
    JOIN due d ON d.token_id = n.token_id AND d.notice = n.notice
    JOIN webhooks w ON w.account_id = d.account_id AND w.events && webhook_event_patterns(d.event_type)
    RETURNING 1
)
SELECT (SELECT count(*) FROM noted) AS noted, (SELECT count(*) FROM queued) AS queued
"""
)


async def try_notice_lock(db: Executor) -> bool:
    """In a transaction: True when this one may run the notices now (no other instance is running them)."""
    return bool(await db.fetchval(TRY_NOTICE_LOCK, NOTICE_LOCK_KEY))


async def queue_notices(db: Executor, limit: int, unused_days: int, expiry_days: tuple[int, ...]) -> tuple[int, int]:
    """Record up to ``limit`` notices now due and queue them to subscribed webhooks: (noted, queued). A token
    gets an expiry notice at each of ``expiry_days`` before it expires, and when it has expired."""
    row = await db.fetchrow(QUEUE_NOTICES, limit, unused_days, list(expiry_days))
    return int(row["noted"]), int(row["queued"])
