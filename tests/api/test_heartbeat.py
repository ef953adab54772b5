"""Issue 22: an instance trusts its principal cache only while it hears its own heartbeat through LISTEN, says
so on /readyz and in a metric, and refuses to start deaf; a request waits a bounded time for a connection."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.api import service_token_calls as calls
from tests.conftest import make_config, start_server, with_database
from tokengate.auth.listener import ListenerDeaf
from tokengate.config import DatabaseSettings
from tokengate.core import global_ids

HEARTBEAT = 0.2  # seconds: the tests' interval; /readyz must follow within two of them
DEADLINE = 10.0  # seconds: generous "eventually"
# Deleted in the database without the notice a deletion publishes: only an untrusted cache asks again.
SILENT_DELETE = "UPDATE tokens SET state = 'deleted', deleted_at = now() WHERE id = $1"


async def eventually(condition: Any, seconds: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await condition():
        assert loop.time() - started < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.02)


async def readyz(server: Any) -> tuple[int, str]:
    status, text, _ = await server.get("/readyz")
    return status, text


async def check(server: Any, secret: str) -> int:
    status, _, _ = await server.get(
        "/auth/check", params={"resource": "JOBS"}, headers={"Authorization": f"Bearer {secret}"}
    )
    return status


def heard_metric(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("tokengate_invalidations_heard{"))


@pytest.fixture
async def beating(database, tmp_path):
    config = make_config(tmp_path, database=DatabaseSettings(heartbeat_seconds=HEARTBEAT))
    async for server in start_server(database, config):
        yield server


async def test_a_cut_listener_makes_readyz_503_and_the_cache_untrusted_until_it_hears_again(beating):
    server = beating
    listener = server.runtime.listener
    admin = await server.bootstrap()
    assert await readyz(server) == (200, '{"status":"ready"}')
    for _ in range(3):  # cut again and again
        created = await calls.created(server, admin.token)
        key = global_ids.token_key(created.id, global_ids.SERVICE_TOKEN)
        assert await check(server, created.secret) == 200  # now in the cache
        # The precondition: a deletion nobody announces is not seen while the cache is trusted.
        await server.pool.execute(SILENT_DELETE, key)
        assert await check(server, created.secret) == 200
        await server.pool.execute("UPDATE tokens SET state = 'active', deleted_at = NULL WHERE id = $1", key)

        assert await server.pool.fetchval("SELECT pg_terminate_backend($1)", listener.backend_pid)

        async def not_ready() -> bool:
            return (await readyz(server))[0] == 503

        await eventually(not_ready)
        status, text = await readyz(server)
        assert status == 503 and "not heard" in text and "listener" in text, text
        await server.pool.execute(SILENT_DELETE, key)
        assert await check(server, created.secret) == 401  # the cache is not trusted, or was flushed

        async def ready() -> bool:
            return (await readyz(server))[0] == 200

        await eventually(ready)
        assert await check(server, created.secret) == 401
    _, metrics, _ = await server.get("/metrics")
    assert heard_metric(metrics).endswith(" 1.0")
    assert listener.heartbeats_heard > 0 and listener.reconnects >= 3


async def test_without_heartbeats_coming_back_readyz_says_so_and_the_metric_too(beating):
    """Connected but deaf (as behind a transaction pooler): the heartbeat stops coming back."""
    server = beating
    listener = server.runtime.listener
    admin = await server.bootstrap()
    created = await calls.created(server, admin.token)
    key = global_ids.token_key(created.id, global_ids.SERVICE_TOKEN)
    assert await check(server, created.secret) == 200
    # The heartbeat goes to a channel nobody listens on: the LISTEN connection stays up, nothing comes back.
    listener.heartbeat_channel = "tokengate_heartbeat_elsewhere"

    async def deaf() -> bool:
        return (await readyz(server))[0] == 503

    await eventually(deaf)
    assert listener.connected.is_set()
    status, text = await readyz(server)
    assert status == 503 and "no heartbeat came back" in text, text
    _, metrics, _ = await server.get("/metrics")
    assert heard_metric(metrics).endswith(" 0.0")
    await server.pool.execute(SILENT_DELETE, key)
    assert await check(server, created.secret) == 401  # asked the database


async def test_an_instance_that_cannot_hear_its_heartbeat_at_start_refuses_to_serve(database, admin_dsn, tmp_path):
    # A "direct" LISTEN URL to another database than the pool's: the heartbeats never arrive there.
    elsewhere = with_database(admin_dsn, "postgres")
    config = make_config(tmp_path, database=DatabaseSettings(listen_url=elsewhere, heartbeat_seconds=HEARTBEAT))
    with pytest.raises(ListenerDeaf) as refused:
        async for _ in start_server(database, config):
            pytest.fail("served without hearing its own heartbeat")
    message = str(refused.value)
    assert "TOKENGATE_LISTEN_DATABASE_URL" in message and "/postgres" in message, message


async def test_an_exhausted_pool_answers_503_with_retry_after_within_the_bounded_wait(
    database, tmp_path, caplog: pytest.LogCaptureFixture
):
    settings = DatabaseSettings(pool_size=1, acquire_timeout_seconds=0.5, heartbeat_seconds=HEARTBEAT)
    async for server in start_server(database, make_config(tmp_path, database=settings)):
        admin = await server.bootstrap()
        first = await calls.created(server, admin.token, "first")
        second = await calls.created(server, admin.token, "second")
        holder = await asyncpg.connect(database)
        try:
            async with holder.transaction():
                await holder.execute("LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE")
                blocked = asyncio.create_task(check(server, first.secret))

                async def held(
                    holder: Any = holder,
                ) -> bool:  # the precondition: the pool's one connection waits on the lock
                    waiting = await holder.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    )
                    return waiting >= 1

                await eventually(held)
                with caplog.at_level(logging.WARNING, logger="tokengate.store.database"):
                    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE)) as session:
                        async with session.get(
                            server.url + "/auth/check",
                            params={"resource": "JOBS"},
                            headers={"Authorization": f"Bearer {second.secret}"},
                        ) as response:
                            body = await response.json()
                            assert response.status == 503, body
                            assert response.headers["Retry-After"] == "1"
                            assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            assert await blocked == 200  # served once the lock is gone
        finally:
            await holder.close()
        logged = [r.getMessage() for r in caplog.records if r.name == "tokengate.store.database"]
        assert any("pool exhausted" in line for line in logged), logged


def test_the_pool_settings_come_from_the_environment():
    from tokengate.config import ConfigError, database_settings

    assert database_settings({}) == DatabaseSettings()
    read = database_settings(
        {
            "TOKENGATE_LISTEN_DATABASE_URL": "postgresql://u:pw@db:5432/tg",
            "TOKENGATE_DB_POOL_SIZE": "4",
            "TOKENGATE_DB_ACQUIRE_TIMEOUT_SECONDS": "2.5",
            "TOKENGATE_HEARTBEAT_SECONDS": "0.5",
        }
    )
    assert read == replace(
        DatabaseSettings(),
        listen_url="postgresql://u:pw@db:5432/tg",
        pool_size=4,
        acquire_timeout_seconds=2.5,
        heartbeat_seconds=0.5,
    )
    for name, bad in (
        ("TOKENGATE_DB_POOL_SIZE", "0"),
        ("TOKENGATE_DB_POOL_SIZE", "1.5"),
        ("TOKENGATE_HEARTBEAT_SECONDS", "nan"),
        ("TOKENGATE_DB_ACQUIRE_TIMEOUT_SECONDS", "-1"),
    ):
        with pytest.raises(ConfigError, match=name):
            database_settings({name: bad})
