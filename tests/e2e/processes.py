"""Real programs the end-to-end tests run beside tokengate (nginx, Caddy, PostgreSQL, PgBouncer, `tokengate
serve` from a venv): started on loopback, awaited until they answer, and always stopped (by their own pid).

Their output goes to a log file of the test, shown whole when a program exits or never answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port, secret_parts

LOOPBACK = "127.0.0.1"
# The Node programs of the tests (GraphQL clients, the OpenID provider) and the lock `make e2e` installs them from.
NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_LOCK = NODE_DIR / "package-lock.json"
NODE_INSTALLED = NODE_DIR / "node_modules" / ".package-lock.json"  # npm writes it when it installs the lock
# PostgreSQL and PgBouncer refuse to run as root (CI runs as root): they run as this account then.
SERVICE_USER = "postgres"


def as_service_user() -> dict[str, Any]:
    """Popen arguments that drop root for the daemons that refuse it; nothing when not root."""
    if os.geteuid() != 0:
        return {}
    account = pwd.getpwnam(SERVICE_USER)
    return {"user": account.pw_uid, "group": account.pw_gid}


def give_to_service_user(path: Path) -> None:
    """Lets the service user write ``path`` (a directory of this test's own) when running as root."""
    if os.geteuid() == 0:
        account = pwd.getpwnam(SERVICE_USER)
        os.chown(path, account.pw_uid, account.pw_gid)


# Settings of this process a tokengate child must not inherit: the developer's own database and keys, and
# anything that would make a venv's python import another tree than its own.
NOT_INHERITED = ("DATABASE_URL", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without TOKENGATE_* and ``NOT_INHERITED``, plus ``extra``."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TOKENGATE_") and name not in NOT_INHERITED
    }
    return {**kept, **extra}


def log_text(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""


async def accepts_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(LOOPBACK, port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def answers_ok(url: str) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            async with session.get(url) as response:
                return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def wait_ready(
    name: str, process: subprocess.Popen, log: Path, *, port: int, ready_url: str | None, seconds: float
) -> None:
    """Until ``port`` accepts connections (or ``ready_url`` answers 200); fails at once if the program exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{log_text(log)}")
        if await (answers_ok(ready_url) if ready_url else accepts_connections(port)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} did not answer within {seconds:.0f} s:\n{log_text(log)}")


def stop(process: subprocess.Popen, stop_signal: int = signal.SIGTERM, seconds: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(stop_signal)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=seconds)


@asynccontextmanager
async def running(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    log: Path,
    ready_url: str | None = None,
    stop_signal: int = signal.SIGTERM,
    seconds: float = 30,
    **popen: Any,
) -> AsyncIterator[subprocess.Popen]:
    """Runs ``argv`` (output appended to ``log``) until the block ends; ready when ``port`` accepts."""
    with log.open("ab") as out:
        process = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, **popen)
    try:
        await wait_ready(name, process, log, port=port, ready_url=ready_url, seconds=seconds)
        yield process
    finally:
        stop(process, stop_signal)


@asynccontextmanager
async def tokengate_serve(
    command: Sequence[str],
    workdir: Path,
    env: Mapping[str, str],
    *,
    name: str = "tokengate",
    data_dir: Path | None = None,
    **popen: Any,
) -> AsyncIterator[str]:
    """``<command> serve`` on a loopback port of its own (``command``: the ``tokengate`` script, or ``python -m
    tokengate``), its log at DEBUG in ``workdir/<name>.log``; yields its URL once ``/readyz`` answers 200.
    ``data_dir`` (default ``workdir/<name>-data``) holds the embedded database when ``env`` names none."""
    port = free_port()
    data_dir = data_dir or workdir / f"{name}-data"
    argv = [*command, "serve", "--host", LOOPBACK, "--port", str(port), "--data-dir", str(data_dir)]
    url = f"http://{LOOPBACK}:{port}"
    log = workdir / f"{name}.log"
    async with running(
        name,
        [*argv, "--log-level", "debug"],
        port=port,
        log=log,
        ready_url=url + "/readyz",
        stop_signal=signal.SIGTERM,
        seconds=120,
        env=child_environment(env),
        **popen,
    ):
        yield url


def assert_no_secret_in(log: Path, secrets: Sequence[str]) -> None:
    """No token ``secrets`` (nor their secret parts) in a program's log: the suite's log check for subprocesses."""
    text = log_text(log)
    leaked = [secret[:8] for secret in secrets if any(part in text for part in secret_parts(secret))]
    assert not leaked, f"token secrets found in {log.name} (prefixes): {leaked}"


def tokengate_cli(command: Sequence[str], *args: str, env: Mapping[str, str], cwd: Path | None = None) -> Any:
    """One ``tokengate`` command (``command``: the script, or ``python -m tokengate``); its JSON answer."""
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, env=child_environment(env), cwd=cwd
    )
    assert done.returncode == 0, f"tokengate {args[0]} exited with {done.returncode}:\n{done.stderr}"
    return json.loads(done.stdout)


def install_node_packages() -> Path:
    """tests/e2e/node/node_modules as the committed lock has it (npm ci, only when the lock changed)."""
    assert shutil.which("node") and shutil.which("npm"), "node and npm are missing: `make e2e` installs them"
    if not NODE_INSTALLED.exists() or NODE_INSTALLED.stat().st_mtime < NODE_LOCK.stat().st_mtime:
        argv = ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"]
        done = subprocess.run(argv, cwd=NODE_DIR, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return NODE_DIR
