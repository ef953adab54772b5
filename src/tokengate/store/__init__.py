"""Data access: plain SQL constants with $n parameters, one module per aggregate."""

from __future__ import annotations

import asyncpg

# Store functions accept a pool or a connection (inside a transaction when the caller needs one).
Executor = asyncpg.Pool | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

# What a lost or restarting database raises; other PostgreSQL errors are bugs or bad input, not outages.
DATABASE_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)


class DatabaseUnavailable(Exception):
    """A question only the database can answer, asked while it cannot be reached (one of
    ``DATABASE_UNAVAILABLE`` was raised and nothing else could answer): served as 503."""
