"""The scheduled job every instance runs: token expiry and disuse notices, and the outbox's housekeeping.

Once per interval, on one instance at a time (a transaction-scoped advisory lock; the others skip that round),
it records the notices now due and queues them to the subscribed webhooks, in one statement per batch:
``service_token.expiring`` (30, 7 and 1 days before ``expiresAt``), ``service_token.expired``,
``user_token.expiring`` and ``service_token.unused`` (no use for 90 days). Each notice is sent once per token
(once per stretch of disuse): ``token_notices`` is unique on (token, notice), so running the job twice, or on
two instances at once, sends nothing twice. The same round drops finished deliveries older than 30 days and
usage older than 90, and re-seals webhook signing secrets still under an older server key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import asyncpg

from tokengate.core import tokens
from tokengate.core.webhook_events import EXPIRY_NOTICE_DAYS, UNUSED_NOTICE_DAYS, seal_secret, unseal_secret
from tokengate.jobs.batching import stop_task
from tokengate.store import DATABASE_UNAVAILABLE
from tokengate.store import token_notices as notice_store
from tokengate.store import usage as usage_store
from tokengate.store import webhooks as webhook_store

log = logging.getLogger("tokengate.core.invalidations")

BATCH: Final = 1000  # notices per statement
MAX_BATCHES: Final = 20  # per round; what is left waits for the next round
KEEP_DELIVERIES_DAYS: Final = 30


@dataclass(frozen=True, slots=True)
class NoticeRound:
    noted: int  # notices recorded
    queued: int  # deliveries queued for them


class NoticeJob:
    def __init__(self, pool: asyncpg.Pool, keys: tuple[bytes, ...], interval: float, events_queued: Callable[[], None]):
        self.pool = pool
        self.keys = keys
        self.interval = interval
        self.events_queued = events_queued
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> NoticeRound | None:
        """One round; None when another instance is running one."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await notice_store.try_notice_lock(conn):
                return None
            noted = queued = 0
            for _ in range(MAX_BATCHES):
                batch_noted, batch_queued = await notice_store.queue_notices(
                    conn, BATCH, UNUSED_NOTICE_DAYS, EXPIRY_NOTICE_DAYS
                )
                noted, queued = noted + batch_noted, queued + batch_queued
                if batch_noted < BATCH:
                    break
            await webhook_store.prune_deliveries(conn, KEEP_DELIVERIES_DAYS)
            await usage_store.prune(conn)
            await self._reseal(conn)
        if queued:
            self.events_queued()
        return NoticeRound(noted, queued)

    async def _reseal(self, conn: asyncpg.Connection) -> None:
        """Signing secrets sealed under an older server key move to the newest (see "Rotating the server key"),
        and so do rotated-out secrets still signing, so that they keep signing after the older key is gone."""
        newest = self.keys[0]
        for previous in (False, True):
            older = await webhook_store.sealed_under_older_keys(conn, tokens.key_id(newest), previous)
            for webhook_id, sealed, key_id in older:
                secret = unseal_secret(sealed, key_id, self.keys)
                if secret is None:
                    continue  # under a key no longer configured: its deliveries say so
                resealed, new_key_id = seal_secret(secret, newest)
                await webhook_store.reseal(conn, webhook_id, sealed, resealed, new_key_id, previous)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduled-notices")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as problem:
                log.warning("scheduled notices skipped this round: %s", type(problem).__name__)
            except Exception:  # the next round tries again
                log.exception("scheduled notices failed")
