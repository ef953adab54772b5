"""Every statement a server's pool sends, for tests that count queries (pass ``log.watch`` as ``pool_setup``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class QueryLog:
    statements: list[str] = field(default_factory=list)
    watched: set[int] = field(default_factory=set)

    async def watch(self, conn: Any) -> None:
        raw = conn._con  # the pooled connection behind the proxy
        if id(raw) not in self.watched:
            self.watched.add(id(raw))
            raw.add_query_logger(lambda record: self.statements.append(record.query))

    def real(self) -> list[str]:
        """Without asyncpg's own type introspection (once per new pooled connection, not per item)."""
        return [q for q in self.statements if "current_setting('jit')" not in q and "pg_catalog.pg_type" not in q]

    def of_requests(self) -> list[str]:
        """What requests sent: without the type introspection, nor the background work every instance runs on
        its own clock (the last-used and usage flushes, the delivery worker, the notice job, the heartbeat)."""
        background = (
            "last_used_at",
            "token_usage_daily",
            "webhook_deliveries",
            "token_notices",
            "advisory",
            "heartbeat",
        )
        return [q for q in self.real() if not any(word in q for word in background)]

    def clear(self) -> None:
        self.statements.clear()
