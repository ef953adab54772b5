"""Data access: plain SQL constants with $n parameters, one module per aggregate."""

from __future__ import annotations

import asyncpg

# Store functions accept a pool or a connection (inside a transaction when the caller needs one).
Executor = asyncpg.Pool | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
