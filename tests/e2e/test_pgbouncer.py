"""Two `tokengate serve` processes on one database behind a real PgBouncer (Debian's), as issue 22 measured:
a token deleted through one instance must be refused by the other, with no HTTP 500 on the way.

In session mode the pool and the listener all go through PgBouncer. In transaction mode the instances set
TOKENGATE_LISTEN_DATABASE_URL (a direct connection for LISTEN and migrations, contract of 2026-12-06); without
it, `serve` refuses to start and names transaction pooling. The measured delay is printed and written to
e2e-artifacts/.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import TEST_SECRET_KEY, free_port
from tests.e2e.processes import assert_no_secret_in, child_environment, log_text, tokengate_cli, tokengate_serve

TOKENGATE = [sys.executable, "-m", "tokengate"]
CREATE = (
    "mutation($input: CreateServiceTokenInput!) { createServiceToken(input: $input) { serviceToken { id } secret } }"
)
DELETE = "mutation($id: ID!) { deleteServiceToken(id: $id) { state } }"
CHECK = "/auth/check?resource=JOBS&access=READ"
COMPLAINT = re.compile(r'"level": ?"(warning|error|critical)"')
REFUSAL_DEADLINE = 10.0  # seconds: generous; the 100 ms target is `make bench-revocation`'s to measure


class Client:
    """Calls the instances and keeps every status they answered."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.statuses: Counter[int] = Counter()

    async def check(self, url: str, token: str) -> int:
        async with self.session.get(url + CHECK, headers={"Authorization": f"Bearer {token}"}) as response:
            await response.read()
            self.statuses[response.status] += 1
            return response.status

    async def graphql(self, url: str, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        payload = {"query": query, "variables": variables}
        async with self.session.post(
            url + "/graphql", json=payload, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            body = await response.json(content_type=None)
            self.statuses[response.status] += 1
            assert response.status == 200 and not body.get("errors"), body
            return body["data"]


async def refused_after(client: Client, url: str, token: str) -> float | None:
    """Milliseconds until ``url`` first answers 401 for ``token`` (asked back to back), None past the deadline."""
    started = time.perf_counter()
    while time.perf_counter() - started < REFUSAL_DEADLINE:
        if await client.check(url, token) == 401:
            return (time.perf_counter() - started) * 1000
    return None


@pytest.mark.parametrize("mode", ["session", "transaction"])
async def test_a_token_deleted_on_one_instance_is_refused_on_the_other(mode, pgbouncer, tmp_path: Path, artifacts):
    bouncer = await pgbouncer(mode)
    # Setting up is not under test: the account is made over the direct connection (which migrates it).
    direct = {"TOKENGATE_DATABASE_URL": bouncer.direct_dsn, "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY}
    admin = tokengate_cli(
        TOKENGATE,
        "bootstrap",
        "--account-name",
        "Pooled",
        "--plan",
        "enterprise",
        "--admin-email",
        "a@x.io",
        env=direct,
    )["token"]
    pooled = {"TOKENGATE_DATABASE_URL": bouncer.dsn, "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY}
    if mode == "transaction":
        pooled["TOKENGATE_LISTEN_DATABASE_URL"] = bouncer.direct_dsn  # issue 22's way through transaction pooling
    secrets = [admin]
    outcome: dict[str, Any] = {"mode": mode}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            client = Client(session)
            outcome["statuses"] = client.statuses
            async with (
                tokengate_serve(TOKENGATE, tmp_path, pooled, name="a") as a,
                tokengate_serve(TOKENGATE, tmp_path, pooled, name="b") as b,
            ):
                outcome["started"] = "a and b"
                grants = [{"permissionSet": "JOB_VIEWER", "allProjects": True}]
                variables = {"input": {"name": "pooled", "grants": grants}}
                created = (await client.graphql(a, admin, CREATE, variables))["createServiceToken"]
                token, token_id = created["secret"], created["serviceToken"]["id"]
                secrets.append(token)
                for _ in range(3):  # B validates it and keeps it in its cache
                    assert await client.check(b, token) == 200

                deleted = await client.graphql(a, admin, DELETE, {"id": token_id})
                assert deleted == {"deleteServiceToken": {"state": "DELETED"}}
                outcome["refused_on_b_ms"] = await refused_after(client, b, token)
                outcome["refused_on_a_ms"] = await refused_after(client, a, token)
                for _ in range(20):  # both keep serving the tokens that are still good
                    assert await client.check(a, admin) == 200 and await client.check(b, admin) == 200
                for _ in range(5):  # concurrent requests: the pooler hands each transaction to any connection
                    answers = await asyncio.gather(*(client.check(url, admin) for url in (a, b) * 16))
                    assert set(answers) == {200}, answers
    finally:
        print(f"PgBouncer {mode} mode: {json.dumps(outcome)}")
        (artifacts / f"pgbouncer-{mode}-revocation.json").write_text(json.dumps(outcome, indent=2), encoding="utf-8")
    assert outcome["refused_on_b_ms"] is not None, f"B accepted the deleted token {REFUSAL_DEADLINE:.0f} s on"
    assert outcome["refused_on_a_ms"] is not None
    assert not [status for status in client.statuses if status >= 500], client.statuses
    for name in ("a", "b"):
        assert_no_secret_in(tmp_path / f"{name}.log", secrets)
        complaints = [line for line in log_text(tmp_path / f"{name}.log").splitlines() if COMPLAINT.search(line)]
        assert not complaints, complaints[:5]  # e.g. "could not record usage", a prepared statement error


async def test_without_a_direct_listen_url_serve_refuses_a_transaction_pooler_and_names_it(pgbouncer, tmp_path: Path):
    bouncer = await pgbouncer("transaction")
    env = {"TOKENGATE_DATABASE_URL": bouncer.dsn, "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY}
    port = str(free_port())
    argv = [*TOKENGATE, "serve", "--host", "127.0.0.1", "--port", port, "--data-dir", str(tmp_path / "data")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=child_environment(env))
    assert done.returncode != 0, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("tokengate: error:") and "transaction pooling" in last, done.stderr
    assert "TOKENGATE_LISTEN_DATABASE_URL" in last and f"{bouncer.port}/{bouncer.database}" in last, last


LISTENERS = "SELECT pid FROM pg_stat_activity WHERE application_name = 'tokengate-listener' AND datname = $1"
SILENT_DELETE = "UPDATE tokens SET state = 'deleted', deleted_at = now() WHERE id = $1"


async def test_with_the_listener_cut_again_and_again_readyz_is_503_and_a_token_deleted_meanwhile_is_refused(
    pgbouncer, tmp_path: Path
):
    bouncer = await pgbouncer("transaction")
    direct = {"TOKENGATE_DATABASE_URL": bouncer.direct_dsn, "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY}
    bootstrap = ["bootstrap", "--account-name", "Cut", "--plan", "enterprise", "--admin-email", "c@x.io"]
    admin = tokengate_cli(TOKENGATE, *bootstrap, env=direct)["token"]
    env = {
        "TOKENGATE_DATABASE_URL": bouncer.dsn,
        "TOKENGATE_LISTEN_DATABASE_URL": bouncer.direct_dsn,
        "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY,
        "TOKENGATE_HEARTBEAT_SECONDS": "0.25",
    }
    conn = await asyncpg.connect(bouncer.direct_dsn)
    secrets = [admin]
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            tokengate_serve(TOKENGATE, tmp_path, env, name="cut") as url,
        ):
            client = Client(session)

            async def readyz() -> int:
                async with session.get(url + "/readyz") as response:
                    await response.read()
                    return response.status

            async def until(status: int) -> None:
                started = time.perf_counter()
                while await readyz() != status:
                    assert time.perf_counter() - started < REFUSAL_DEADLINE, f"/readyz never {status}"
                    await asyncio.sleep(0.02)

            grants = [{"permissionSet": "JOB_VIEWER", "allProjects": True}]
            for round_ in range(3):
                variables = {"input": {"name": f"cut {round_}", "grants": grants}}
                created = (await client.graphql(url, admin, CREATE, variables))["createServiceToken"]
                token = created["secret"]
                secrets.append(token)
                assert await client.check(url, token) == 200  # cached
                killed = await conn.fetch(
                    "SELECT pg_terminate_backend(pid) FROM (" + LISTENERS + ") AS l", bouncer.database
                )
                assert killed, "no listener connection to cut"
                await until(503)
                # Deleted without the notice a deletion publishes: refused only because the cache is not trusted
                # (or was flushed on reconnecting), never served from it.
                key = await conn.fetchval("SELECT id FROM tokens WHERE name = $1", f"cut {round_}")
                await conn.execute(SILENT_DELETE, key)
                assert await client.check(url, token) == 401
                await until(200)
                assert await client.check(url, token) == 401 and await client.check(url, admin) == 200
            assert not [status for status in client.statuses if status >= 500], client.statuses
    finally:
        await conn.close()
    assert_no_secret_in(tmp_path / "cut.log", secrets)
