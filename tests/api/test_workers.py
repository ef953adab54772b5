"""`tokengate serve --workers 2` as an operator runs it: one port served by two processes, a deletion refused by
both, a clean stop on SIGTERM; and each worker's share of the limits (``core.limits.divided``)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.api.service_token_calls import CREATE, DELETE, grant
from tests.conftest import CAPTURED_OUTPUT, ISSUED_SECRETS, TEST_SECRET_KEY, free_port
from tokengate.core.limits import Limits, Rate, divided

SERVING = re.compile(r"serving (http://\S+) with (\d+) workers \(pids ([\d ]+)\)")


@dataclass
class Workers:
    url: str
    pids: list[int]
    process: subprocess.Popen
    log: Path


def external(database: str) -> dict[str, str]:
    return {"TOKENGATE_DATABASE_URL": database, "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY}


async def started_workers(database: str, tmp_path: Path, count: int) -> AsyncIterator[Workers]:
    port = free_port()
    log = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "tokengate", "serve", "--port", str(port), "--workers", str(count)]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*argv, "--log-format", "text", "--log-level", "debug"],
            env={**os.environ, **external(database)},
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 120
        while not (found := SERVING.search(log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no serving line in 120 s:\n" + log.read_text()
            await asyncio.sleep(0.1)
        yield Workers(found[1].removesuffix("/graphql"), [int(pid) for pid in found[3].split()], process, log)
    finally:
        if process.poll() is None:
            process.kill()  # only when a test failed before its own stop
            process.wait(timeout=30)
        CAPTURED_OUTPUT.append(log.read_text())  # checked for secrets at the end of the run


@pytest.fixture
async def workers(database: str, tmp_path: Path) -> AsyncIterator[Workers]:
    async for running in started_workers(database, tmp_path, 2):
        yield running


async def on_a_new_connection(method: str, url: str, **kwargs) -> tuple[int, str]:
    """One request on a connection of its own: the kernel picks the worker for each connection."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with session.request(method, url, **kwargs) as response:
            return response.status, await response.text()


async def pid_that_answered(url: str) -> int:
    status, text = await on_a_new_connection("GET", url + "/metrics")
    assert status == 200
    found = re.search(r'^tokengate_process\{pid="(\d+)"\}', text, re.MULTILINE)
    assert found, text
    return int(found[1])


def bootstrap(database: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokengate",
            "bootstrap",
            *("--account-name", "W", "--plan", "enterprise"),
            "--admin-email",
            "w@x.io",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **external(database)},
    )
    assert done.returncode == 0, done.stderr
    token = json.loads(done.stdout)["token"]
    ISSUED_SECRETS.append(token)
    return token


async def gql(url: str, query: str, variables: dict, token: str) -> dict:
    status, text = await on_a_new_connection(
        "POST",
        url + "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 200, text
    return json.loads(text)


async def auth_check(url: str, token: str) -> int:
    status, _ = await on_a_new_connection("GET", url + "/auth/check", headers={"Authorization": f"Bearer {token}"})
    return status


async def test_two_workers_serve_one_port_revoke_together_and_stop_on_sigterm(database, workers):
    # Both processes answer on the one port (the kernel spreads new connections among them).
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while seen != set(workers.pids):
        assert time.monotonic() < deadline, f"only {seen} of {workers.pids} answered"
        seen.add(await pid_that_answered(workers.url))
    admin = bootstrap(database)
    created = await gql(workers.url, CREATE, {"input": {"name": "w", "grants": [grant("JOB_ADMIN")]}}, admin)
    secret = created["data"]["createServiceToken"]["secret"]
    ISSUED_SECRETS.append(secret)
    token_id = created["data"]["createServiceToken"]["serviceToken"]["id"]
    # The token works on every connection, and is remembered by the workers that answered.
    assert [await auth_check(workers.url, secret) for _ in range(20)] == [200] * 20
    deleted = await gql(workers.url, DELETE, {"id": token_id}, admin)
    assert deleted["data"]["deleteServiceToken"]["state"] == "DELETED"
    deadline = time.monotonic() + 30
    while (statuses := [await auth_check(workers.url, secret) for _ in range(20)]) != [401] * 20:
        assert time.monotonic() < deadline, statuses
        await asyncio.sleep(0.1)
    # SIGTERM to the parent stops every worker; the parent exits 0 and leaves no process behind.
    workers.process.send_signal(signal.SIGTERM)
    assert workers.process.wait(timeout=60) == 0, workers.log.read_text()
    assert [pid for pid in workers.pids if Path(f"/proc/{pid}").exists()] == []
    assert "Traceback" not in workers.log.read_text()


async def test_workers_stop_when_their_parent_is_killed(database, workers):
    workers.process.kill()  # SIGKILL: the parent cannot pass anything on
    workers.process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while alive := [pid for pid in workers.pids if Path(f"/proc/{pid}").exists()]:
        assert time.monotonic() < deadline, f"workers {alive} outlived their parent"
        await asyncio.sleep(0.1)


def test_serve_refuses_a_number_of_workers_that_is_not_one(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tokengate", "serve", "--workers", "0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "--workers" in done.stderr and "auto" in done.stderr


def test_workers_together_allow_no_more_than_one_instance():
    limits = Limits(failures=Rate(5, 50), legacy_verifications=4, connections_per_address=100)
    share = divided(limits, 2)
    assert divided(limits, 1) == limits
    assert share.failures == Rate(2.5, 25) and share.address == Rate(500, 1000) and share.principal == Rate(250, 500)
    assert share.legacy_verifications == 2 and share.connections_per_address == 50
    assert share.cost_budget == limits.cost_budget and share.max_tokens_per_account == limits.max_tokens_per_account
    many = divided(limits, 8)  # never below what lets one request through
    assert many.failures.burst == 6.25 and many.anonymous.burst >= 1 and many.legacy_verifications == 1
    assert divided(Limits(cost=Rate(0, 1)), 4).cost.enabled is False  # a limit switched off stays off


def postmasters_of(data_dir: Path) -> list[int]:
    """PostgreSQL servers running on ``data_dir`` (their command line names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"postgres") and str(data_dir).encode() in b" ".join(argv):
            found.append(int(entry.name))
    return found


async def test_workers_share_one_embedded_postgresql_which_stops_with_them(tmp_path):
    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("TOKENGATE_DATABASE_URL", "DATABASE_URL")}
    env.pop("TOKENGATE_SECRET_KEY", None)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tokengate",
                "serve",
                "--port",
                str(port),
                "--workers",
                "2",
                "--data-dir",
                str(data_dir),
                "--log-format",
                "text",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 120
        while not SERVING.search(log.read_text()):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        assert len(postmasters_of(data_dir)) == 1  # one server for the parent and both workers
        statuses = [(await on_a_new_connection("GET", f"http://127.0.0.1:{port}/readyz"))[0] for _ in range(10)]
        assert statuses == [200] * 10
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    assert code == 0, log.read_text()
    deadline = time.monotonic() + 30
    while postmasters_of(data_dir):
        assert time.monotonic() < deadline, "the embedded PostgreSQL outlived serve"
        await asyncio.sleep(0.1)
