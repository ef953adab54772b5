"""LISTEN/NOTIFY invalidation against a real PostgreSQL."""

from __future__ import annotations

import asyncio

from tokengate.auth.listener import InvalidationListener
from tokengate.core.invalidations import AccountChanged, TokenChanged
from tokengate.store.notify import publish


async def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_notifications_reach_handlers_only_on_commit(database, pool):
    received: list = []
    listener = InvalidationListener(database)
    listener.subscribe(received.append, lambda: None)
    await listener.start()
    try:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await publish(conn, TokenChanged("rolled-back"))
            await transaction.rollback()
            async with conn.transaction():
                await publish(conn, TokenChanged("t1"))
        await wait_for(lambda: received)
        assert received == [TokenChanged("t1")]
    finally:
        await listener.stop()


async def test_killed_listener_backend_flushes_and_reconnects(database, pool):
    flushed: list[int] = []
    received: list = []
    listener = InvalidationListener(database, retry_seconds=0.05)
    listener.subscribe(received.append, lambda: flushed.append(1))
    await listener.start()
    try:
        before, old_pid = len(flushed), listener.backend_pid
        assert old_pid is not None
        # Kill the listener's backend from another session, as a restart or network failure would.
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        await wait_for(lambda: len(flushed) > before)
        await wait_for(lambda: listener.healthy and listener.backend_pid not in (None, old_pid))
        assert listener.reconnects >= 1
        await publish(pool, AccountChanged("acc_1"))
        await wait_for(lambda: received)
        assert received[-1] == AccountChanged("acc_1")
    finally:
        await listener.stop()
