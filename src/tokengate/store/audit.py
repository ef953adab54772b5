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
PAGE = """
SELECT id, action, actor, source, client_addr, target_id, details::text AS details, occurred_at
FROM audit_events WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3
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


async def page(db: Executor, account_id: str, before_id: int, limit: int) -> list[AuditRow]:
    """Events older than ``before_id``, newest first."""
    return [_row(row) for row in await db.fetch(PAGE, account_id, before_id, limit)]


async def event(db: Executor, account_id: str, event_id: int) -> AuditRow | None:
    """One event of this account's log; None for another account's event and a made-up id alike."""
    row = await db.fetchrow(EVENT, account_id, event_id)
    return _row(row) if row else None


async def has_event(db: Executor, account_id: str, event_id: int) -> bool:
    """Whether the event is in this account's log (false for another account's event and a made-up id alike)."""
    return bool(await db.fetchval(HAS_EVENT, account_id, event_id))
