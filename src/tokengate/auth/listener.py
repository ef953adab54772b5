"""Cross-instance invalidation: one LISTEN connection per process, applied to the in-process caches.

Writers publish typed notices (notices.py) inside their transaction, so a notification is delivered
only when the change commits. When the listening connection drops, the listener reconnects by itself;
until it is back, caches are not trusted (authentication asks the database) but kept: if the database
itself is down, principals already validated keep working from them. Every cache is flushed when the
listener is back, since what was published meanwhile is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from tokengate.auth.ip_guard import IpGuard
from tokengate.auth.principal_cache import PrincipalCache
from tokengate.core import invalidations as notices
from tokengate.core.invalidations import AccountChanged, IpRulesChanged, Notice, TokenChanged, UserChanged
from tokengate.store.notify import CHANNEL

log = logging.getLogger("tokengate.auth.listener")

Handler = Callable[[Notice], None]
Flush = Callable[[], None]


class CacheInvalidator:
    """Applies notices to this instance's caches: for changes made here (right after their commit) and for
    changes other instances made (from the listener). One handler, so both forget the same things."""

    def __init__(self, cache: PrincipalCache, ip_guard: IpGuard):
        self.cache = cache
        self.ip_guard = ip_guard

    def apply(self, notice: Notice) -> None:
        if isinstance(notice, TokenChanged):
            self.cache.invalidate_token(notice.token_id)
        elif isinstance(notice, UserChanged):
            self.cache.invalidate_user(notice.user_id)
        elif isinstance(notice, AccountChanged):
            self.cache.invalidate_account(notice.account_id)
            self.ip_guard.invalidate(notice.account_id)
        elif isinstance(notice, IpRulesChanged):
            self.ip_guard.invalidate(notice.account_id)

    def flush(self) -> None:
        """Forget everything (a notice this version cannot read, or notices missed while disconnected)."""
        self.cache.clear()
        self.ip_guard.clear()


class InvalidationListener:
    """Keeps a LISTEN connection open and dispatches notifications to the registered handlers."""

    def __init__(self, dsn: str, *, retry_seconds: float = 0.5, max_retry_seconds: float = 5.0):
        self.dsn = dsn
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.handlers: list[Handler] = []
        self.flushes: list[Flush] = []
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self.connected.is_set()

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend serving the LISTEN connection (for operators and tests)."""
        return self._connection.get_server_pid() if self._connection is not None else None

    def subscribe(self, handler: Handler, flush: Flush) -> None:
        self.handlers.append(handler)
        self.flushes.append(flush)

    async def start(self, wait: float | None = 10.0) -> None:
        self._task = asyncio.create_task(self._run(), name="tokengate-invalidation")
        if wait:
            try:
                async with asyncio.timeout(wait):
                    await self.connected.wait()
            except TimeoutError:
                log.warning("invalidation listener not connected yet; caches stay untrusted until it is")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    def _flush_all(self) -> None:
        for flush in self.flushes:
            flush()

    def _on_notification(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        notice = notices.decode(payload)
        if notice is None:  # from a newer version, or garbage: forgetting everything is always safe
            log.warning("unreadable invalidation notice; flushing caches")
            self._flush_all()
            return
        for handler in self.handlers:
            try:
                handler(notice)
            except Exception:
                log.exception("invalidation handler failed; flushing caches")
                self._flush_all()

    def _on_lost(self, connection: Any) -> None:
        if self.connected.is_set():
            log.warning("invalidation listener lost its connection; caches untrusted until it reconnects")
        self.connected.clear()
        self._lost.set()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        self.connected.clear()
        if connection is not None and not connection.is_closed():
            try:
                async with asyncio.timeout(2):
                    await connection.close()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                connection.terminate()

    async def _run(self) -> None:
        delay = self.retry_seconds
        while True:
            try:
                self._lost.clear()
                connection = await asyncpg.connect(self.dsn, timeout=5)
                connection.add_termination_listener(self._on_lost)
                await connection.add_listener(CHANNEL, self._on_notification)
                self._connection = connection
                # Anything published while we were away is unknown: start from an empty cache.
                self._flush_all()
                self.connected.set()
                delay = self.retry_seconds
                await self._watch(connection)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:
                log.warning("invalidation listener cannot connect (%s); retrying", type(problem).__name__)
            self.connected.clear()
            await self._close()
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry_seconds)

    async def _watch(self, connection: asyncpg.Connection) -> None:
        """Return when the connection is lost; a cheap query every few seconds detects silent drops.

        ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` swallows a cancellation that arrives
        as the inner query completes, and ``stop()`` would then wait for this loop forever."""
        while not self._lost.is_set():
            try:
                async with asyncio.timeout(5):
                    await self._lost.wait()
                return
            except TimeoutError:
                pass
            try:
                async with asyncio.timeout(3):
                    await connection.fetchval("SELECT 1")
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return
