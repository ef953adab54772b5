"""The pool's bounded wait for a connection rests on asyncpg's private ``Pool._acquire``: the installed asyncpg
has it (else the guard is off and requests would wait unbounded), and without it the pool still works."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tokengate.store import database as store_database


def test_the_installed_asyncpg_keeps_the_seam_the_bounded_wait_uses():
    assert store_database.BOUNDED_ACQUIRE, "asyncpg renamed Pool._acquire: the bounded wait is off"


async def test_a_pool_of_one_answers_pool_exhausted_within_its_bound(database):
    pool = await store_database.create_pool(database, min_size=1, max_size=1, acquire_timeout=0.2)
    try:
        async with pool.acquire():
            with pytest.raises(store_database.PoolExhausted):
                await pool.fetchval("SELECT 1")  # asyncpg's shortcut gives no timeout of its own
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_without_the_seam_the_pool_is_asyncpgs_own_and_works(database, monkeypatch):
    monkeypatch.setattr(store_database, "BOUNDED_ACQUIRE", False)
    pool = await store_database.create_pool(database, min_size=1, max_size=1, acquire_timeout=0.2)
    try:
        assert type(pool) is asyncpg.Pool
        assert await asyncio.wait_for(pool.fetchval("SELECT 1"), 30) == 1
    finally:
        await pool.close()
