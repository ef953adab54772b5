"""``tokengate serve --workers N``: N processes serving one port, each with its own caches and listener.

The parent serves nothing itself. It finds the database (starting the embedded PostgreSQL, which then lives as
long as the parent), applies the migrations once, and starts N workers: ``python -m tokengate serve`` with the
same options, plus ``--worker-of N`` (each worker divides the limits by N: ``core.limits.divided``) and the
database URL in ``WORKER_DATABASE_URL``. They listen with ``SO_REUSEPORT`` and tell the parent through a pipe
when they do; the parent prints the "serving" line once all of them have. SIGTERM or SIGINT to the parent is
passed on to every worker; the parent waits for them and exits 0. A worker that exits by itself stops the others
and the parent exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from tokengate.config import Config
from tokengate.store import database as db
from tokengate.store.migrations import migrate

log = logging.getLogger("tokengate.workers")

# The database every worker uses, set by the parent for its workers only (never read elsewhere).
WORKER_DATABASE_URL = "TOKENGATE_WORKER_DATABASE_URL"
POLL_SECONDS = 0.2


class WorkersFailed(Exception):
    """A worker exited before it was asked to (its own log says why)."""


async def migrated(dsn: str) -> None:
    pool = await db.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    finally:
        await pool.close()


def database_of(config: Config) -> str:
    """The external database's URL, or the embedded one's (started here: it lives as long as this process)."""
    return config.database_url or db.embedded_dsn(config.data_dir)


def supervise(config: Config, count: int, worker_argv: Sequence[str], url: str) -> None:
    """Run ``count`` workers (``worker_argv``: the ``serve`` arguments they take) until SIGTERM or SIGINT."""
    dsn = database_of(config)
    asyncio.run(migrated(dsn))
    ready_read, ready_write = os.pipe()
    environment = {**os.environ, WORKER_DATABASE_URL: dsn}
    argv = [sys.executable, "-m", "tokengate", *worker_argv, "--worker-of", str(count), "--ready-fd", str(ready_write)]
    alive: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop_all(signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = stopping or frame is not None  # asked from outside (a signal), not after a worker's failure
        for pid in list(alive):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGTERM, signal.SIGINT)}
    failed: list[str] = []
    try:
        for _ in range(count):
            worker = subprocess.Popen(argv, env=environment, pass_fds=(ready_write,))  # noqa: S603 (this interpreter, our own arguments)
            alive[worker.pid] = worker
        os.close(ready_write)
        ready = 0
        while alive:
            if ready < count:  # one byte per worker once it listens (end of file: they all closed the pipe)
                readable, _, _ = select.select([ready_read], [], [], POLL_SECONDS)
                got = os.read(ready_read, count - ready) if readable else b""
                ready = count if readable and not got else ready + len(got)
                if got and ready == count and not stopping:
                    log.info("serving %s with %d workers (pids %s)", url, count, " ".join(map(str, sorted(alive))))
            else:
                time.sleep(POLL_SECONDS)
            for pid, worker in list(alive.items()):
                if worker.poll() is None:
                    continue
                del alive[pid]
                if not stopping and not failed:
                    failed.append(f"worker {pid} exited with {worker.returncode}")
                    stop_all()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_all()
        for worker in alive.values():
            worker.wait()
        os.close(ready_read)
    if failed:
        raise WorkersFailed(f"{failed[0]}; the other workers were stopped")
