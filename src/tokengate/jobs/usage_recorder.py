"""Usage insight collected in memory and written in batches: requests per token and day, the last client
addresses of each token, and when each grant last decided an allowed check.

This is on the hot path of every admitted request: ``note`` and ``note_grant`` are one dictionary update each.
``flush`` (every few seconds, and at shutdown) writes everything collected in one statement (store/usage.py).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import asyncpg

from tokengate.jobs.batching import PeriodicFlush
from tokengate.store import usage as usage_store
from tokengate.store.usage import MAX_ADDRESSES, TokenUse

log = logging.getLogger("tokengate.jobs.usage_recorder")

MAX_PENDING = 100_000  # (token, address) pairs kept across failed flushes


class UsageRecorder(PeriodicFlush):
    """Counts (token, client address) uses and remembers the grants that allowed something.

    ``requests`` is ordered by last use (a key is moved to the end on every use), so the newest addresses of a
    token are found from the end. Requests are counted on the UTC day of the flush that writes them (at most
    ``interval`` seconds late). On a failed flush everything is kept for the next one.
    """

    def __init__(self, pool: asyncpg.Pool, interval: float = 5.0):
        self.pool = pool
        self.interval = interval
        self.task_name = "usage-flush"
        self.requests: dict[tuple[str, str | None], int] = {}
        self.grants: dict[int, float] = {}  # grant id -> unix time of its last allowed decision

    def note(self, token_id: str, client_addr: str | None) -> None:
        """One authenticated request of this token from this address."""
        requests = self.requests
        key = (token_id, client_addr)
        requests[key] = requests.pop(key, 0) + 1

    def note_grant(self, grant_id: int | None) -> None:
        """The grant decided an allowed check (None: a grant not stored, nothing to record)."""
        if grant_id is not None:
            self.grants[grant_id] = time.time()

    async def flush(self) -> int:
        """Write what was collected; returns for how many tokens."""
        if not self.requests and not self.grants:
            return 0
        requests, self.requests = self.requests, {}
        grants, self.grants = self.grants, {}
        uses = token_uses(requests)
        try:
            await usage_store.flush(
                self.pool, uses, {grant_id: datetime.fromtimestamp(at, UTC) for grant_id, at in grants.items()}
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:
            log.warning("could not record usage of %d tokens, retrying later: %s", len(uses), type(problem).__name__)
            self._keep(requests, grants)
            return 0
        return len(uses)

    def _keep(self, requests: dict[tuple[str, str | None], int], grants: dict[int, float]) -> None:
        """Put a batch that could not be written back, behind what was collected since (which is newer). While
        the database stays away, past ``MAX_PENDING`` (token, address) pairs only the counts are kept."""
        merged = dict(requests)
        for key, count in self.requests.items():
            merged[key] = merged.pop(key, 0) + count
        if len(merged) > MAX_PENDING:
            folded: dict[tuple[str, str | None], int] = {}
            for (token_id, _), count in merged.items():
                folded[(token_id, None)] = folded.get((token_id, None), 0) + count
            merged = folded
        self.requests = merged
        for grant_id, at in grants.items():
            self.grants[grant_id] = max(at, self.grants.get(grant_id, at))


def token_uses(requests: dict[tuple[str, str | None], int]) -> list[TokenUse]:
    """Per token: its requests, and its distinct addresses newest first (at most ``MAX_ADDRESSES``)."""
    counts: dict[str, int] = {}
    addresses: dict[str, list[str]] = {}
    for (token_id, client_addr), count in reversed(requests.items()):
        counts[token_id] = counts.get(token_id, 0) + count
        newest = addresses.setdefault(token_id, [])
        if client_addr is not None and len(newest) < MAX_ADDRESSES:
            newest.append(client_addr)
    return [TokenUse(token_id, count, tuple(addresses[token_id])) for token_id, count in sorted(counts.items())]
