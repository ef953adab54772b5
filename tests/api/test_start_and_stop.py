"""Start and stop: a start that fails half-way stops what had started (no task, thread or database connection
left behind), `tokengate serve` fails with one line, and its "serving" line means the port accepts connections."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time

import asyncpg
import pytest

from tests.conftest import TEST_SECRET_KEY, CapturedStream, free_port, make_config
from tokengate.app import create_app
from tokengate.http import serving
from tokengate.http.observability import AccessLog
from tokengate.runtime import RUNTIME
from tokengate.store.database import DatabaseProblem
from tokengate.store.migrations import MigrationError


async def backends(dsn: str) -> int:
    """Connections open to the database of ``dsn``, besides the one asking."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()


def threads() -> set[str]:
    return {thread.name for thread in threading.enumerate()}


def of_tokengate(task: asyncio.Task) -> str:
    """The qualified name of a task's coroutine when tokengate's code runs it, else "": the suite's loop is shared,
    so a task another test's client or server starts meanwhile is not this start's."""
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    filename = code.co_filename if code is not None else ""
    return getattr(coro, "__qualname__", "?") if "/tokengate/" in filename.replace("\\", "/") else ""


async def left_behind(dsn: str, tasks: set[asyncio.Task], names: set[str], connections: int) -> list[str]:
    """What a failed start left running, once given a few seconds to go (empty: nothing)."""
    deadline = time.monotonic() + 10
    while True:
        started = asyncio.all_tasks() - tasks - {asyncio.current_task()}
        extra_tasks = [f"{task.get_name()} {of_tokengate(task)}" for task in started if of_tokengate(task)]
        extra = [*extra_tasks, *sorted(threads() - names)]
        if await backends(dsn) > connections:
            extra.append(f"{await backends(dsn) - connections} database connection(s)")
        if not extra or time.monotonic() > deadline:
            return extra
        await asyncio.sleep(0.1)


def app_for(tmp_path, dsn: str, *, migrate_on_start: bool = False):
    config = make_config(tmp_path)
    app = create_app(config, dsn=dsn, migrate_on_start=migrate_on_start, access_log=AccessLog(stream=CapturedStream()))
    return app, config


async def test_a_listen_that_fails_after_every_resource_started_stops_them_all(database, tmp_path):
    tasks, names, connections = set(asyncio.all_tasks()), threads(), await backends(database)
    app, config = app_for(tmp_path, database)
    with socket.socket() as taken:  # the port is another program's
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(serving.ListenFailed, match=r"cannot listen on 127\.0\.0\.1"):
            await serving.start(app, config, "127.0.0.1", taken.getsockname()[1])
    assert RUNTIME in app, "the precondition: every resource had started before the listen failed"
    assert await left_behind(database, tasks, names, connections) == []


async def test_a_migration_refused_after_the_pool_opened_closes_the_pool(database, tmp_path):
    conn = await asyncpg.connect(database)
    try:  # the database says a migration was edited after it ran: start must refuse, once its pool is open
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE name = '001_core.sql'")
    finally:
        await conn.close()
    tasks, names, connections = set(asyncio.all_tasks()), threads(), await backends(database)
    app, config = app_for(tmp_path, database, migrate_on_start=True)
    with pytest.raises(MigrationError):
        await serving.start(app, config, "127.0.0.1", free_port())
    assert await left_behind(database, tasks, names, connections) == []


async def test_postgresql_unreachable_at_start_leaves_nothing_behind(database, tmp_path):
    closed = free_port()  # nothing listens there
    tasks, names = set(asyncio.all_tasks()), threads()
    app, config = app_for(tmp_path, f"postgresql://tokengate@127.0.0.1:{closed}/tokengate")
    with pytest.raises(DatabaseProblem, match="ConnectionRefusedError"):
        await serving.start(app, config, "127.0.0.1", free_port())
    assert await left_behind(database, tasks, names, await backends(database)) == []


def serve(port: int, env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tokengate", "serve", "--port", str(port), "--log-format", "text", *extra],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_without_its_database_exits_with_one_line_and_no_serving_line(tmp_path):
    env = {
        "TOKENGATE_DATABASE_URL": f"postgresql://x@127.0.0.1:{free_port()}/db",
        "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY,
    }
    process = serve(free_port(), env)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stderr
    assert "serving" not in stderr and "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, stderr  # one line that names the cause, the host and the database
    assert errors[0].startswith("tokengate: error: cannot open the database pool: ConnectionRefusedError"), stderr
    assert errors[0].endswith(f"[database {env['TOKENGATE_DATABASE_URL'].split('@')[1]}]"), stderr


def test_the_serving_line_means_the_port_accepts_connections(database):
    port = free_port()
    process = serve(port, {"TOKENGATE_DATABASE_URL": database, "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY})
    try:
        assert process.stderr is not None
        read = []
        for line in process.stderr:  # ends when serve exits
            read.append(line)
            if "serving http://" in line:
                break
        assert "serving http://" in "".join(read), "".join(read)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # at once: no wait, no retry
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert process.returncode == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_taken_port_says_so_in_one_line(database, workers):
    with socket.socket() as taken:  # another program's port (without SO_REUSEPORT: workers cannot share it)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"TOKENGATE_DATABASE_URL": database, "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY}
        process = serve(port, env, "--workers", workers, "--log-level", "warning")
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr and "database" not in stderr, stderr
    assert f"tokengate: error: cannot listen on 127.0.0.1:{port}: Address already in use" in stderr.splitlines()
    if workers == "2":  # the parent names the worker that failed, and stopped the other
        assert stderr.splitlines()[-1].endswith("exited with 1; the other workers were stopped"), stderr
