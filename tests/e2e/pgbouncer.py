"""A PgBouncer (Debian's `pgbouncer`) in front of a PostgreSQL cluster the tests own (Debian's `postgresql`,
`initdb` into a temporary directory), both on loopback, as an operator runs them.

The cluster trusts loopback connections (it is the tests' own, on a port of its own) and has the superuser
`postgres`, so tests can also act on it directly (`pg_terminate_backend`, a direct LISTEN connection). PgBouncer
runs in the pool mode asked (``session`` or ``transaction``) with `auth_type = trust` and a generated auth file.
Both refuse to run as root: as root (CI) they run as the `postgres` account, in directories given to it.

The fixtures in tests/e2e/conftest.py hand these out: ``postgres_cluster`` (one per run) and ``pgbouncer``
(``await pgbouncer("transaction")`` gives a ``Bouncer`` whose ``dsn`` goes through the pooler to a fresh
database of the test, and ``direct_dsn`` to the same database without it).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.conftest import free_port
from tests.e2e.processes import LOOPBACK, as_service_user, give_to_service_user, running

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
POOL_MODES = ("session", "transaction")
SUPERUSER = "postgres"


def postgres_bin() -> Path:
    """The newest Debian PostgreSQL's bin directory (`make e2e` installs the package postgresql)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda path: int(path.parts[-3]))
    assert found, "no /usr/lib/postgresql/*/bin/postgres: `make e2e` installs the Debian package postgresql"
    return found[-1].parent


def owned_directory(prefix: str) -> Path:
    """A new directory outside pytest's (which the service user cannot enter), given to the service user."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    give_to_service_user(path)
    return path


@dataclass(frozen=True)
class Cluster:
    directory: Path
    port: int

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    async def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return name

    async def drop_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


@asynccontextmanager
async def postgres_cluster() -> AsyncIterator[Cluster]:
    """A fresh cluster (initdb) served by `postgres` on a free loopback port until the block ends."""
    directory = owned_directory("tokengate-e2e-postgres-")
    bin_dir = postgres_bin()
    data = directory / "data"
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "--no-locale", "-E", "UTF8"]
    done = subprocess.run(
        [*initdb, "--no-sync"], capture_output=True, text=True, timeout=120, cwd=directory, **as_service_user()
    )
    assert done.returncode == 0, f"initdb failed:\n{done.stdout}\n{done.stderr}"
    port = free_port()
    argv = [str(bin_dir / "postgres"), "-D", str(data), "-h", LOOPBACK, "-p", str(port), "-k", str(directory)]
    # Room for several instances' pools; no fsync: the tests' data is thrown away.
    argv += ["-c", "max_connections=300", "-c", "fsync=off", "-c", "full_page_writes=off"]
    try:
        # SIGINT: PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
        async with running(
            "postgres",
            argv,
            port=port,
            log=directory / "postgres.log",
            stop_signal=signal.SIGINT,
            cwd=directory,
            **as_service_user(),
        ):
            yield Cluster(directory, port)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass(frozen=True)
class Bouncer:
    mode: str
    port: int
    database: str
    dsn: str  # through PgBouncer
    direct_dsn: str  # the same database, straight to PostgreSQL
    log: Path


def pgbouncer_ini(directory: Path, cluster: Cluster, *, mode: str, port: int, pool_size: int) -> str:
    return "\n".join(
        [
            "[databases]",
            # Every database name a client asks for, on the tests' cluster.
            f"* = host={LOOPBACK} port={cluster.port}",
            "",
            "[pgbouncer]",
            f"listen_addr = {LOOPBACK}",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {directory / 'userlist.txt'}",
            f"admin_users = {SUPERUSER}",
            f"pool_mode = {mode}",
            "max_client_conn = 500",
            f"default_pool_size = {pool_size}",
            "",
        ]
    )


@asynccontextmanager
async def pgbouncer(cluster: Cluster, database: str, mode: str, *, pool_size: int = 40) -> AsyncIterator[Bouncer]:
    """PgBouncer in ``mode`` in front of ``cluster`` on a free loopback port until the block ends."""
    assert mode in POOL_MODES, f"pool mode {mode!r}: expected one of {POOL_MODES}"
    directory = owned_directory(f"tokengate-e2e-pgbouncer-{mode}-")
    try:
        port = free_port()
        (directory / "userlist.txt").write_text(f'"{SUPERUSER}" ""\n', encoding="utf-8")
        ini = directory / "pgbouncer.ini"
        ini.write_text(pgbouncer_ini(directory, cluster, mode=mode, port=port, pool_size=pool_size), encoding="utf-8")
        log = directory / "pgbouncer.log"
        async with running("pgbouncer", [PGBOUNCER, str(ini)], port=port, log=log, cwd=directory, **as_service_user()):
            yield Bouncer(
                mode,
                port,
                database,
                f"postgresql://{SUPERUSER}@{LOOPBACK}:{port}/{database}",
                cluster.dsn(database),
                log,
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
