"""Webhooks and their outbox of deliveries (which is also the delivery log); the token notices queued to them are
store/token_notices.py's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokengate.store import Executor, audit
from tokengate.store.audit import AuditEntry

WEBHOOK_COLUMNS = """id, account_id, url, description, events, created_at, created_by, failing_since,
owner_user_id, owner_token_id,
CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END AS previous_secret_expires_at"""

# The audit event and, in the same statement, one outbox row per webhook of the account subscribed to its
# action: an account without webhooks pays an index probe inside the audit insert, not another round trip.
AUDIT_WITH_OUTBOX = (
    "WITH event AS ("
    + audit.INSERT
    + """ RETURNING id, occurred_at)
INSERT INTO webhook_deliveries (webhook_id, account_id, event_id, event_type, subject, occurred_at, data)
SELECT w.id, $1, 'audit-' || e.id, $2, $6, e.occurred_at,
       jsonb_build_object('account_id', $1::text, 'actor', $3::text, 'source', $4::text, 'client_address', $5::text,
                          'target_id', $6::text, 'details', $7::jsonb)
FROM event e JOIN webhooks w ON w.account_id = $1 AND w.events && webhook_event_patterns($2)
"""
)
INSERT_WEBHOOK = (
    """
INSERT INTO webhooks (id, account_id, url, description, events, sealed_secret, secret_key_id, created_by,
                      owner_user_id, owner_token_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING """
    + WEBHOOK_COLUMNS
)
OF_ACCOUNT = "SELECT " + WEBHOOK_COLUMNS + " FROM webhooks WHERE account_id = $1 ORDER BY created_at, id"
COUNT_OF_ACCOUNT = "SELECT count(*) FROM webhooks WHERE account_id = $1"
# The row lock serialises updates and deletions of one webhook.
FOR_UPDATE = "SELECT " + WEBHOOK_COLUMNS + " FROM webhooks WHERE account_id = $1 AND id = $2 FOR UPDATE"
UPDATE_WEBHOOK = (
    "UPDATE webhooks SET url = $2, description = $3, events = $4, owner_user_id = $5, owner_token_id = $6 "
    "WHERE id = $1 RETURNING " + WEBHOOK_COLUMNS
)
# The new secret signs from now on; the one it replaces also signs until $5 (NULL: from now on it does not).
ROTATE_SECRET = (
    """
UPDATE webhooks SET previous_sealed_secret = CASE WHEN $5::timestamptz IS NOT NULL THEN sealed_secret END,
                    previous_secret_key_id = CASE WHEN $5::timestamptz IS NOT NULL THEN secret_key_id END,
                    previous_secret_expires_at = $5::timestamptz,
                    sealed_secret = $3, secret_key_id = $4
WHERE account_id = $1 AND id = $2 RETURNING """
    + WEBHOOK_COLUMNS
)
DELETE_WEBHOOK = "DELETE FROM webhooks WHERE account_id = $1 AND id = $2 RETURNING " + WEBHOOK_COLUMNS
SET_FAILING = "UPDATE webhooks SET failing_since = now() WHERE id = $1 AND failing_since IS NULL RETURNING account_id"
CLEAR_FAILING = (
    "UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL RETURNING account_id"
)
SEALED_UNDER_OLDER_KEYS = "SELECT id, sealed_secret, secret_key_id FROM webhooks WHERE secret_key_id <> $1 LIMIT 1000"
# Rotated-out secrets still signing, likewise.
PREVIOUS_UNDER_OLDER_KEYS = """
SELECT id, previous_sealed_secret, previous_secret_key_id FROM webhooks
WHERE previous_secret_key_id <> $1 AND previous_secret_expires_at > now() LIMIT 1000
"""
# Compare-and-set: of two instances re-sealing one secret, one writes.
RESEAL = "UPDATE webhooks SET sealed_secret = $3, secret_key_id = $4 WHERE id = $1 AND sealed_secret = $2"
RESEAL_PREVIOUS = """
UPDATE webhooks SET previous_sealed_secret = $3, previous_secret_key_id = $4
WHERE id = $1 AND previous_sealed_secret = $2
"""

DELIVERY_COLUMNS = """
id, webhook_id, event_id, event_type, status, attempts, response_status, latency_ms, last_error, created_at,
last_attempt_at, next_attempt_at, locked_until, delivered_at
"""
DELIVERY_PAGE = (
    "SELECT "
    + DELIVERY_COLUMNS
    + " FROM webhook_deliveries WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
)
HAS_DELIVERY = "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE webhook_id = $1 AND id = $2)"
# sendTestWebhookEvent: a webhook.test event queued to this webhook only, whatever it subscribes to.
QUEUE_TEST = (
    """
INSERT INTO webhook_deliveries (webhook_id, account_id, event_id, event_type, subject, occurred_at, data)
VALUES ($1, $2, $3, $4, $1, now(), $5::jsonb) RETURNING """
    + DELIVERY_COLUMNS
)
# A new pending row for the same event (the same CloudEvents id, so receivers can tell it is a repeat).
REDELIVER = (
    """
INSERT INTO webhook_deliveries (webhook_id, account_id, event_id, event_type, subject, occurred_at, data)
SELECT webhook_id, account_id, event_id, event_type, subject, occurred_at, data
FROM webhook_deliveries WHERE account_id = $1 AND id = $2 RETURNING """
    + DELIVERY_COLUMNS
)

# Due rows, claimed for lease_seconds. SKIP LOCKED: concurrent claimers take different rows; the lease, not a
# transaction, holds a row while it is sent, so a sender that dies only delays its rows until the lease ends.
CLAIM = """
UPDATE webhook_deliveries AS d
SET locked_until = now() + make_interval(secs => $2), attempts = d.attempts + 1, last_attempt_at = now()
FROM (SELECT id FROM webhook_deliveries
      WHERE status = 'pending' AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until <= now())
      ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) AS due,
     webhooks AS w
WHERE d.id = due.id AND w.id = d.webhook_id
RETURNING d.id, d.webhook_id, d.account_id, d.event_id, d.event_type, d.subject, d.occurred_at, d.data::text AS data,
          d.attempts, d.created_at, w.url, w.sealed_secret, w.secret_key_id, w.failing_since IS NOT NULL AS failing,
          w.owner_user_id, w.owner_token_id,
          CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_sealed_secret END AS previous_sealed_secret,
          CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret_key_id END AS previous_secret_key_id
"""
# An event the webhook's owner may not read is not sent (webhook_events.delivery_refusal): recorded as skipped,
# with no attempt counted.
SKIPPED = """
UPDATE webhook_deliveries SET status = 'skipped', locked_until = NULL, attempts = attempts - 1,
       last_attempt_at = NULL, last_error = $3
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
# What the owner of a webhook may read, as of now: an active user's license and grants, with the account's
# projects (a service token owner is read like a token being authenticated: store/tokens.CREDENTIAL_SELECT).
OWNER_USER = """
SELECT u.account_id, a.name AS account_name, a.plan AS account_plan, u.license,
       ARRAY(SELECT p.id FROM projects p WHERE p.account_id = u.account_id) AS project_ids,
       (SELECT json_agg(json_build_array(g.permission_set, g.all_projects, g.project_ids, g.id)
                        ORDER BY g.position, g.id)::text
          FROM grants g WHERE g.user_id = u.id) AS grants
FROM users u JOIN accounts a ON a.id = u.account_id
WHERE u.id = $1 AND u.state = 'active'
"""
# Every result is written only by the claim that made this attempt (attempts is the fencing token).
DELIVERED = """
UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), locked_until = NULL,
       response_status = $3, latency_ms = $4, last_error = NULL
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
RETRY = """
UPDATE webhook_deliveries SET locked_until = NULL, next_attempt_at = now() + make_interval(secs => $6),
       response_status = $3, latency_ms = $4, last_error = $5
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
GAVE_UP = """
UPDATE webhook_deliveries SET status = 'failed', locked_until = NULL, response_status = $3, latency_ms = $4,
       last_error = $5
WHERE id = $1 AND attempts = $2 AND status = 'pending'
"""
# A stopping instance hands back what it claimed but did not finish: due again at once, elsewhere.
RELEASE = """
UPDATE webhook_deliveries AS d SET locked_until = NULL
FROM unnest($1::bigint[], $2::int[]) AS c (id, attempts)
WHERE d.id = c.id AND d.attempts = c.attempts AND d.status = 'pending'
"""
PRUNE_DELIVERIES = (
    "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1)"
)


@dataclass(frozen=True, slots=True)
class WebhookRow:
    id: str
    account_id: str
    url: str
    description: str
    events: tuple[str, ...]
    created_at: datetime
    created_by: str
    failing_since: datetime | None
    owner_user_id: str | None = None  # the owner whose reading the webhook carries; both None: the operator
    owner_token_id: str | None = None
    previous_secret_expires_at: datetime | None = None  # the previous signing secret signs too until then


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    webhook_id: str
    event_id: str
    event_type: str
    status: str  # pending | delivered | failed | skipped
    attempts: int
    response_status: int | None
    latency_ms: int | None
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime
    locked_until: datetime | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A due delivery this instance holds the lease of, with what sending it needs."""

    id: int
    webhook_id: str
    account_id: str
    event_id: str
    event_type: str
    subject: str | None
    occurred_at: datetime
    data: dict[str, Any]
    attempts: int  # including this one
    created_at: datetime
    url: str
    sealed_secret: bytes
    secret_key_id: str
    failing: bool
    owner_user_id: str | None = None
    owner_token_id: str | None = None
    previous_sealed_secret: bytes | None = None  # while a rotated-out secret still signs
    previous_secret_key_id: str | None = None

    def __repr__(self) -> str:  # the URL's path may hold a secret; the sealed secret is no one's business
        return f"ClaimedDelivery(id={self.id!r}, webhook_id={self.webhook_id!r}, attempts={self.attempts!r})"


def _webhook(row: Any) -> WebhookRow:
    return WebhookRow(**{**dict(row), "events": tuple(row["events"])})


def _delivery(row: Any) -> DeliveryRow:
    return DeliveryRow(**dict(row))


async def record_audit_with_outbox(db: Executor, entry: AuditEntry) -> int:
    """Record the audit event and queue it to the subscribed webhooks; how many deliveries were queued."""
    status = await db.execute(
        AUDIT_WITH_OUTBOX,
        entry.account_id,
        entry.action,
        entry.actor,
        entry.source,
        entry.client_addr,
        entry.target_id,
        json.dumps(entry.details),
    )
    return int(status.rsplit(" ", 1)[-1])


async def insert_webhook(
    db: Executor,
    webhook_id: str,
    account_id: str,
    url: str,
    description: str,
    events: tuple[str, ...],
    sealed_secret: bytes,
    secret_key_id: str,
    created_by: str,
    owner: tuple[str | None, str | None] = (None, None),
) -> WebhookRow:
    row = await db.fetchrow(
        INSERT_WEBHOOK,
        webhook_id,
        account_id,
        url,
        description,
        list(events),
        sealed_secret,
        secret_key_id,
        created_by,
        *owner,
    )
    return _webhook(row)


async def webhooks_of_account(db: Executor, account_id: str) -> list[WebhookRow]:
    return [_webhook(row) for row in await db.fetch(OF_ACCOUNT, account_id)]


async def count_of_account(db: Executor, account_id: str) -> int:
    return int(await db.fetchval(COUNT_OF_ACCOUNT, account_id))


async def lock_webhook(db: Executor, account_id: str, webhook_id: str) -> WebhookRow | None:
    """The account's webhook, locked until the transaction ends; None for unknown and foreign ids alike."""
    row = await db.fetchrow(FOR_UPDATE, account_id, webhook_id)
    return _webhook(row) if row else None


async def update_webhook(
    db: Executor,
    webhook_id: str,
    url: str,
    description: str,
    events: tuple[str, ...],
    owner: tuple[str | None, str | None],
) -> WebhookRow:
    return _webhook(await db.fetchrow(UPDATE_WEBHOOK, webhook_id, url, description, list(events), *owner))


async def rotate_secret(
    db: Executor, account_id: str, webhook_id: str, sealed: bytes, key_id: str, previous_until: datetime | None
) -> WebhookRow | None:
    """The webhook signs with the new sealed secret; the current one keeps signing until ``previous_until``
    (None: not at all). None for unknown and foreign ids alike."""
    row = await db.fetchrow(ROTATE_SECRET, account_id, webhook_id, sealed, key_id, previous_until)
    return _webhook(row) if row else None


async def queue_test_event(
    db: Executor, webhook: WebhookRow, event_id: str, event_type: str, data: dict[str, Any]
) -> DeliveryRow:
    row = await db.fetchrow(QUEUE_TEST, webhook.id, webhook.account_id, event_id, event_type, json.dumps(data))
    return _delivery(row)


async def delete_webhook(db: Executor, account_id: str, webhook_id: str) -> WebhookRow | None:
    """Removes the webhook with its delivery log (pending deliveries included)."""
    row = await db.fetchrow(DELETE_WEBHOOK, account_id, webhook_id)
    return _webhook(row) if row else None


async def set_failing(db: Executor, webhook_id: str) -> str | None:
    """Mark the webhook failing; its account id when this call did it (None: already failing, or gone)."""
    return await db.fetchval(SET_FAILING, webhook_id)


async def clear_failing(db: Executor, webhook_id: str) -> str | None:
    """Clear the failing mark; its account id when this call did it."""
    return await db.fetchval(CLEAR_FAILING, webhook_id)


async def sealed_under_older_keys(
    db: Executor, newest_key_id: str, previous: bool = False
) -> list[tuple[str, bytes, str]]:
    """Signing secrets (``previous``: rotated-out ones still signing) sealed under an older server key."""
    query = PREVIOUS_UNDER_OLDER_KEYS if previous else SEALED_UNDER_OLDER_KEYS
    return [(row[0], row[1], row[2]) for row in await db.fetch(query, newest_key_id)]


async def reseal(db: Executor, webhook_id: str, old: bytes, sealed: bytes, key_id: str, previous: bool = False) -> bool:
    return await db.execute(RESEAL_PREVIOUS if previous else RESEAL, webhook_id, old, sealed, key_id) == "UPDATE 1"


async def deliveries_page(db: Executor, webhook_id: str, before_id: int, limit: int) -> list[DeliveryRow]:
    """Deliveries of the webhook older than ``before_id``, newest first."""
    return [_delivery(row) for row in await db.fetch(DELIVERY_PAGE, webhook_id, before_id, limit)]


async def has_delivery(db: Executor, webhook_id: str, delivery_id: int) -> bool:
    return bool(await db.fetchval(HAS_DELIVERY, webhook_id, delivery_id))


async def redeliver(db: Executor, account_id: str, delivery_id: int) -> DeliveryRow | None:
    """A new pending delivery of the same event to the same webhook; None for unknown and foreign ids alike."""
    row = await db.fetchrow(REDELIVER, account_id, delivery_id)
    return _delivery(row) if row else None


async def claim_due(db: Executor, limit: int, lease_seconds: float) -> list[ClaimedDelivery]:
    rows = await db.fetch(CLAIM, limit, lease_seconds)
    return [ClaimedDelivery(**{**dict(row), "data": json.loads(row["data"])}) for row in rows]


async def mark_delivered(db: Executor, claimed: ClaimedDelivery, response_status: int, latency_ms: int) -> bool:
    return await db.execute(DELIVERED, claimed.id, claimed.attempts, response_status, latency_ms) == "UPDATE 1"


async def mark_skipped(db: Executor, claimed: ClaimedDelivery, reason: str) -> bool:
    return await db.execute(SKIPPED, claimed.id, claimed.attempts, reason) == "UPDATE 1"


async def owner_user(db: Executor, user_id: str) -> Any:
    """The row OWNER_USER reads for an active user; None for a deactivated (or unknown) one."""
    return await db.fetchrow(OWNER_USER, user_id)


async def schedule_retry(
    db: Executor,
    claimed: ClaimedDelivery,
    response_status: int | None,
    latency_ms: int | None,
    error: str,
    delay_seconds: float,
) -> bool:
    status = await db.execute(RETRY, claimed.id, claimed.attempts, response_status, latency_ms, error, delay_seconds)
    return status == "UPDATE 1"


async def mark_failed(
    db: Executor, claimed: ClaimedDelivery, response_status: int | None, latency_ms: int | None, error: str
) -> bool:
    status = await db.execute(GAVE_UP, claimed.id, claimed.attempts, response_status, latency_ms, error)
    return status == "UPDATE 1"


async def release(db: Executor, claims: list[ClaimedDelivery]) -> None:
    await db.execute(RELEASE, [c.id for c in claims], [c.attempts for c in claims])


async def prune_deliveries(db: Executor, keep_days: int) -> None:
    await db.execute(PRUNE_DELIVERIES, keep_days)
