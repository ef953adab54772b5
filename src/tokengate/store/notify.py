"""Invalidation notices: published inside the writer's transaction, delivered to listeners on commit."""

from __future__ import annotations

import json

from tokengate.store import Executor

CHANNEL = "tokengate_invalidate"
PUBLISH = "SELECT pg_notify($1, $2)"


async def publish(db: Executor, kind: str, **ids: str) -> None:
    """Tell every instance that cached state about a token, user or account is stale.

    kind: "token" (token_id), "user" (user_id), "account" (account_id) or "ip_rules" (account_id).
    """
    await db.execute(PUBLISH, CHANNEL, json.dumps({"kind": kind, **ids}))
