"""When each token was last used: collected in memory on every authenticated request, written in batches."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg

from tokengate.jobs.batching import PeriodicFlush
from tokengate.store import tokens as token_store

log = logging.getLogger("tokengate.jobs.last_used")


class LastUsedRecorder(PeriodicFlush):
    """Collects token id -> latest use in memory; ``flush`` writes them all in one statement.

    Requests only assign into a dict; the database sees one UPDATE every ``interval`` seconds and one at
    shutdown. ``last_used_at`` never moves backwards (``greatest`` in SQL), whichever process flushes.
    """

    def __init__(self, pool: asyncpg.Pool, interval: float = 5.0):
        self.pool = pool
        self.interval = interval
        self.task_name = "last-used-flush"
        self.pending: dict[str, float] = {}  # token id -> seconds since the epoch (a datetime only when written)

    def note(self, token_id: str, when: float) -> None:
        self.pending[token_id] = when

    async def flush(self) -> int:
        """Write what was collected; on failure keep it for the next flush. Returns how many tokens."""
        if not self.pending:
            return 0
        batch, self.pending = self.pending, {}
        try:
            await token_store.flush_last_used(
                self.pool, {token_id: datetime.fromtimestamp(when, UTC) for token_id, when in batch.items()}
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:
            log.warning(
                "could not record last use of %d tokens, retrying later: %s", len(batch), type(problem).__name__
            )
            for token_id, when in batch.items():
                newer = self.pending.get(token_id)
                if newer is None or newer < when:
                    self.pending[token_id] = when
            return 0
        return len(batch)
