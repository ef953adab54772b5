"""Invalidation notices on the wire: published inside the writer's transaction, delivered on commit."""

from __future__ import annotations

from tokengate.core import invalidations as notices
from tokengate.store import Executor

CHANNEL = "tokengate_invalidate"
PUBLISH = "SELECT pg_notify($1, $2)"


async def publish(db: Executor, notice: notices.Notice) -> None:
    """Tell every instance (this one included, through its listener) what the change makes stale."""
    await db.execute(PUBLISH, CHANNEL, notices.encode(notice))
