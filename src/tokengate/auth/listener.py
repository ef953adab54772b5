"""Cross-instance invalidation: one LISTEN connection per process, applied to the in-process caches.

Writers publish typed notices (notices.py) inside their transaction, so a notification is delivered
only when the change commits. When the listening connection drops, the listener reconnects by itself;
until it is back, caches are not trusted (authentication asks the database) but kept: if the database
itself is down, principals already validated keep working from them. Every cache is flushed when the
listener is back, since what was published meanwhile is unknown.

A connected LISTEN is not proof of hearing: behind a transaction-mode pooler (PgBouncer) the LISTEN lands on a
server connection that goes back to the pool, and notifications are lost without an error. So the instance
NOTIFYs itself, through the request pool as writers do, on a channel of its own every ``heartbeat_seconds``;
the caches are trusted only while a heartbeat sent within the last two intervals has come back, and flushed
when one comes back after a gap (notices of the gap may have been lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from tokengate.auth.ip_guard import IpGuard
from tokengate.auth.principal_cache import PrincipalCache
from tokengate.core import invalidations as notices
from tokengate.core.invalidations import AccountChanged, IpRulesChanged, Notice, TokenChanged, UserChanged
from tokengate.store import database
from tokengate.store.database import explain
from tokengate.store.notify import CHANNEL

log = logging.getLogger("tokengate.auth.listener")

Handler = Callable[[Notice], None]
Flush = Callable[[], None]
Beat = Callable[[str, str], Awaitable[object]]  # (channel, payload): NOTIFY through the request pool
HEARTBEAT_CHANNEL_PREFIX = "tokengate_heartbeat_"
APPLICATION_NAME = "tokengate-listener"  # in pg_stat_activity: the one connection per instance that LISTENs
HEARTBEAT = "SELECT pg_notify($1, $2) /* heartbeat */"  # named: statement logs tell it from writers' notices
DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class ListenerDeaf(Exception):
    """At start, this instance cannot hear its own heartbeat: it would miss revocations; it must not serve."""


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

    def __init__(
        self,
        dsn: str,
        *,
        retry_seconds: float = 0.5,
        max_retry_seconds: float = 5.0,
        beat: Beat | None = None,
        heartbeat_seconds: float = 1.0,
    ):
        """``beat``: how to NOTIFY (the request pool's ``execute``); without it there is no heartbeat and the
        listener counts as hearing while it is connected."""
        self.dsn = dsn
        self.retry_seconds = retry_seconds
        self.max_retry_seconds = max_retry_seconds
        self.handlers: list[Handler] = []
        self.flushes: list[Flush] = []
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.beat = beat
        self.heartbeat_seconds = heartbeat_seconds
        self.heartbeat_channel = HEARTBEAT_CHANNEL_PREFIX + secrets.token_hex(8)
        self.heartbeats_sent = 0
        self.heartbeats_heard = 0
        self.last_error: str | None = None  # why the last connection attempt failed (no secret: a type and text)
        self._sent: dict[int, float] = {}  # heartbeat number -> when it was sent (monotonic)
        self._heard_sent_at: float | None = None  # when the newest heartbeat heard on this connection was sent
        self._heard = asyncio.Event()
        self._beat_now = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._beating: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        """Whether this instance hears its invalidations now: the principal cache is trusted only then (``problem``
        is None; asked on every request, so its conditions without its messages)."""
        if not self.connected.is_set():
            return False
        return self.beat is None or self._fresh(time.monotonic())

    @property
    def problem(self) -> str | None:
        """Why this instance cannot be sure to hear invalidations now (``/readyz`` says it), or None."""
        if not self.connected.is_set():
            return "the invalidation listener has no database connection"
        if self.beat is None:
            return None
        if not self._fresh(time.monotonic()):
            return f"no heartbeat came back through LISTEN within {2 * self.heartbeat_seconds:g}s"
        return None

    def _fresh(self, now: float) -> bool:
        return self._heard_sent_at is not None and now - self._heard_sent_at <= 2 * self.heartbeat_seconds

    async def wait_heard(self, seconds: float) -> bool:
        """Wait until a heartbeat comes back (True), or ``seconds`` (False)."""
        if self.beat is None:
            return self.connected.is_set()
        try:
            async with asyncio.timeout(seconds):
                while not self.healthy:
                    self._heard.clear()
                    await self._heard.wait()
        except TimeoutError:
            return False
        return True

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend serving the LISTEN connection (for operators and tests)."""
        return self._connection.get_server_pid() if self._connection is not None else None

    def subscribe(self, handler: Handler, flush: Flush) -> None:
        self.handlers.append(handler)
        self.flushes.append(flush)

    async def start(self, wait: float | None = 10.0) -> None:
        self._task = asyncio.create_task(self._run(), name="tokengate-invalidation")
        if self.beat is not None:
            self._beating = asyncio.create_task(self._heartbeats(), name="tokengate-heartbeat")
        if wait:
            try:
                async with asyncio.timeout(wait):
                    await self.connected.wait()
            except TimeoutError:
                log.warning("invalidation listener not connected yet; caches stay untrusted until it is")

    async def stop(self) -> None:
        for task in (self._beating, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._close()

    async def _heartbeats(self) -> None:
        """NOTIFY this instance's own channel every ``heartbeat_seconds``, and at once after a (re)connect."""
        assert self.beat is not None
        number = 0
        while True:
            number += 1
            self._sent[number] = time.monotonic()
            self._sent.pop(number - 100, None)  # a heartbeat 100 intervals late proves nothing any more
            try:
                await self.beat(self.heartbeat_channel, str(number))
                self.heartbeats_sent += 1
            except asyncio.CancelledError:
                raise
            except DATABASE_ERRORS as problem:
                log.debug("heartbeat not sent (%s)", type(problem).__name__)
            try:
                async with asyncio.timeout(self.heartbeat_seconds):
                    await self._beat_now.wait()
            except TimeoutError:
                pass
            self._beat_now.clear()

    def _on_heartbeat(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        try:
            sent_at = self._sent.get(int(payload))
        except ValueError:
            sent_at = None
        if sent_at is None or connection is not self._connection:
            return
        self.heartbeats_heard += 1
        now = time.monotonic()
        if self._heard_sent_at is not None and sent_at <= self._heard_sent_at:
            return
        if not self._fresh(now) and self._heard_sent_at is not None:
            # Heard again after a gap: what was published meanwhile may be lost (the connect flushed already).
            log.warning("heartbeat back after a gap; flushing caches")
            self._flush_all()
        self._heard_sent_at = sent_at
        self._heard.set()

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
        self._heard_sent_at = None
        self._lost.set()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        self.connected.clear()
        self._heard_sent_at = None
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
                connection = await asyncpg.connect(
                    self.dsn, timeout=5, server_settings={"application_name": APPLICATION_NAME}
                )
                connection.add_termination_listener(self._on_lost)
                self._connection = connection
                self._heard_sent_at = None
                await connection.add_listener(CHANNEL, self._on_notification)
                if self.beat is not None:
                    await connection.add_listener(self.heartbeat_channel, self._on_heartbeat)
                # Anything published while we were away is unknown: start from an empty cache.
                self._flush_all()
                self.connected.set()
                self.last_error = None
                self._beat_now.set()
                delay = self.retry_seconds
                await self._watch(connection)
            except asyncio.CancelledError:
                raise
            except DATABASE_ERRORS as problem:
                self.last_error = explain(problem, self.dsn)
                log.warning("invalidation listener cannot connect (%s); retrying", self.last_error)
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


def heartbeat(pool: Any) -> Beat:
    """NOTIFY through the request pool, the way writers publish (so a pooler that loses them is caught)."""

    async def beat(channel: str, payload: str) -> object:
        return await pool.execute(HEARTBEAT, channel, payload)

    return beat


START_SECONDS = 5.0  # at start, how long an instance waits for its first heartbeat (plus two intervals)


async def must_hear(listener: InvalidationListener, direct_listen_url: bool) -> None:
    """Raise ``ListenerDeaf`` naming the likely cause and the fix when no heartbeat comes back at start."""
    if await listener.wait_heard(START_SECONDS + 2 * listener.heartbeat_seconds):
        return
    where = f"database {database.where(listener.dsn)}"
    if not listener.connected.is_set():
        raise ListenerDeaf(f"the invalidation listener cannot connect to {where}: {listener.last_error or 'no answer'}")
    if direct_listen_url:
        raise ListenerDeaf(
            f"this instance cannot hear its own heartbeat on TOKENGATE_LISTEN_DATABASE_URL ({where}): it must be "
            "a direct connection (no transaction pooler) to the same database as TOKENGATE_DATABASE_URL"
        )
    raise ListenerDeaf(
        f"this instance cannot hear its own heartbeat through LISTEN on {where}, so it would miss revocations: "
        "TOKENGATE_DATABASE_URL likely goes through a pooler in transaction pooling mode (PgBouncer "
        "pool_mode=transaction), where LISTEN does not work. Set TOKENGATE_LISTEN_DATABASE_URL to a direct "
        "connection to the same database (it carries LISTEN and migrations), or use session pooling"
    )
