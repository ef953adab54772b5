"""The audit log: append-only (a trigger refuses UPDATE and DELETE)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tokengate.store import Executor

# Run by store/webhooks.py inside the statement that also queues the event to subscribed webhooks (the outbox).
INSERT = """
INSERT INTO audit_events (account_id, action, actor, source, client_addr, target_id, details)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
"""
# One statement for every filter: an absent filter is a NULL parameter, the walk newest first down
# (account_id, id DESC), stopping at LIMIT rows. Each filter is a plain comparison an index on
# (account_id, <column or expression>, id DESC) can serve. The actor is compared by its principal, the
# text before " (" (a service token's display prefix), so the listed actor and the bare principal match alike.
PAGE = """
SELECT id, action, actor, source, client_addr, target_id, details::text AS details, occurred_at
FROM audit_events
WHERE account_id = $1 AND id < $2
  AND ($4::text IS NULL OR action = $4)
  AND ($5::text IS NULL OR split_part(actor, ' (', 1) = split_part($5, ' (', 1))
  AND ($6::text IS NULL OR target_id = $6)
  AND ($7::timestamptz IS NULL OR occurred_at >= $7)
  AND ($8::timestamptz IS NULL OR occurred_at < $8)
ORDER BY id DESC LIMIT $3
"""
HAS_EVENT = "SELECT EXISTS (SELECT 1 FROM audit_events WHERE id = $2 AND account_id = $1)"
EVENT = """
SELECT id, action, actor, source, client_addr, target_id, details::text AS details, occurred_at
FROM audit_events WHERE account_id = $1 AND id = $2
"""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened, by whom, from where: never a secret."""

    account_id: str
    action: str
    actor: str
    source: str  # graphql | cli
    client_addr: str | None = None
    target_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which events a page lists; None leaves that side open. ``actor`` matches the recorded actor, or its
    principal alone (``service_token:<id>`` for ``service_token:<id> (<display prefix>)``), in the stored form
    (a token's row key: ``global_ids.stored_actor`` turns the printed ``stk_`` form into it)."""

    action: str | None = None
    actor: str | None = None
    target_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


EVERY_EVENT = AuditFilter()


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    action: str
    actor: str
    source: str
    client_addr: str | None
    target_id: str | None
    details: dict[str, Any]
    occurred_at: datetime


def _row(row: Any) -> AuditRow:
    return AuditRow(**{**dict(row), "details": json.loads(row["details"])})


async def page(
    db: Executor, account_id: str, before_id: int, limit: int, only: AuditFilter = EVERY_EVENT
) -> list[AuditRow]:
    """Events older than ``before_id`` that pass ``only``, newest first."""
    rows = await db.fetch(
        PAGE, account_id, before_id, limit, only.action, only.actor, only.target_id, only.since, only.until
    )
    return [_row(row) for row in rows]


async def event(db: Executor, account_id: str, event_id: int) -> AuditRow | None:
    """One event of this account's log; None for another account's event and a made-up id alike."""
    row = await db.fetchrow(EVENT, account_id, event_id)
    return _row(row) if row else None


async def has_event(db: Executor, account_id: str, event_id: int) -> bool:
    """Whether the event is in this account's log (false for another account's event and a made-up id alike)."""
    return bool(await db.fetchval(HAS_EVENT, account_id, event_id))
