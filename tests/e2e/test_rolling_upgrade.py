"""A rolling upgrade: the previous release keeps answering correctly beside the new one on one database.

Migrations are additive for one version (expand now, contract a version later). The previous release here is
the commit of ``main`` before the newest migration arrived (its first parent, found in git's history), its
``src/`` and ``sql/`` extracted with ``git archive`` and run with this venv; the database is migrated by the
new code, as it is once the first new instance has started.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.api.service_token_calls import CREATE, DELETE, grant
from tests.conftest import ISSUED_SECRETS, TEST_SECRET_KEY
from tests.e2e.processes import assert_no_secret_in, tokengate_serve

ROOT = Path(__file__).resolve().parents[2]
VIEWER = "{ viewer { kind account { plan } } }"


def git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=True, timeout=60).stdout


def previous_release() -> tuple[str, str]:
    """The first-parent commit before the one that brought the newest migration; and that migration's name."""
    newest = sorted(path.name for path in (ROOT / "sql").glob("[0-9][0-9][0-9]_*.sql"))[-1]
    brought = git("log", "--first-parent", "--diff-filter=A", "--format=%H", "HEAD", "--", f"sql/{newest}").split()
    assert brought, f"sql/{newest} is not committed yet: commit it to compare with the previous release"
    return git("rev-parse", brought[-1].decode() + "^1").decode().strip(), newest


@pytest.fixture
def old_tree(tmp_path: Path) -> tuple[Path, str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("the rolling-upgrade test needs the git history of the checkout")
    commit, newest = previous_release()
    with tarfile.open(fileobj=BytesIO(git("archive", commit, "src", "sql"))) as archive:
        archive.extractall(tmp_path / "old", filter="data")
    assert not (tmp_path / "old" / "sql" / newest).exists()
    return tmp_path / "old", newest


async def call(session: aiohttp.ClientSession, url: str, query: str, token: str, variables: dict | None = None):
    payload = {"query": query, "variables": variables or {}}
    async with session.post(url + "/graphql", json=payload, headers={"Authorization": f"Bearer {token}"}) as reply:
        assert reply.status == 200, await reply.text()
        body = await reply.json()
        body.pop("extensions", None)  # the new release reports its cost accounting there, the previous one not
        return body


async def auth_check(session: aiohttp.ClientSession, url: str, token: str) -> int:
    async with session.get(url + "/auth/check", headers={"Authorization": f"Bearer {token}"}) as reply:
        return reply.status


@dataclass
class Releases:
    new_url: str
    old_url: str
    admin: str
    session: aiohttp.ClientSession


@asynccontextmanager
async def side_by_side(database: str, old: Path, newest: str, tmp_path: Path) -> AsyncIterator[Releases]:
    """The new release and the previous one serving one database the new code migrated; an admin's token."""
    env = {"TOKENGATE_DATABASE_URL": database, "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY}
    command = [sys.executable, "-m", "tokengate"]
    old_env = {**env, "PYTHONPATH": str(old / "src"), "TOKENGATE_WEBHOOK_ALLOW_PRIVATE": "1"}
    imported = subprocess.run(
        [sys.executable, "-c", "import tokengate; print(tokengate.__file__)"],
        env={**os.environ, **old_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.stdout.strip() == str(old / "src" / "tokengate" / "__init__.py"), "the old code is what runs"
    done = subprocess.run(
        [*command, "bootstrap", "--account-name", "R", "--plan", "enterprise", "--admin-email", "r@x.io"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    admin = json.loads(done.stdout)["token"]
    ISSUED_SECRETS.append(admin)
    conn = await asyncpg.connect(database)
    try:  # the precondition: the database holds the migration the old release does not know
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE name = $1", newest) == 1
    finally:
        await conn.close()
    async with (
        tokengate_serve(command, tmp_path, env, name="new") as new_url,
        tokengate_serve(command, tmp_path, old_env, name="old", cwd=old) as old_url,
        aiohttp.ClientSession() as session,
    ):
        yield Releases(new_url, old_url, admin, session)
    for name in ("new", "old"):
        assert_no_secret_in(tmp_path / f"{name}.log", [admin, *ISSUED_SECRETS[-3:]])
        assert "Traceback" not in (tmp_path / f"{name}.log").read_text(), name


async def test_the_previous_release_serves_correctly_beside_the_new_one(database, old_tree, tmp_path):
    async with side_by_side(database, *old_tree, tmp_path) as releases:
        session, new_url, old_url, admin = releases.session, releases.new_url, releases.old_url, releases.admin
        expected = {"data": {"viewer": {"kind": "USER", "account": {"plan": "ENTERPRISE"}}}}
        assert await call(session, new_url, VIEWER, admin) == expected
        assert await call(session, old_url, VIEWER, admin) == expected
        created = await call(
            session, new_url, CREATE, admin, {"input": {"name": "rolling", "grants": [grant("JOB_ADMIN")]}}
        )
        secret = created["data"]["createServiceToken"]["secret"]
        ISSUED_SECRETS.append(secret)
        token_id = created["data"]["createServiceToken"]["serviceToken"]["id"]
        assert await auth_check(session, old_url, secret) == 200
        assert await auth_check(session, new_url, secret) == 200
        deleted = await call(session, new_url, DELETE, admin, {"id": token_id})
        assert deleted["data"]["deleteServiceToken"]["state"] == "DELETED"
        deadline = time.monotonic() + 30
        while await auth_check(session, old_url, secret) != 401:
            assert time.monotonic() < deadline, "the old instance still accepts the deleted token"
            await asyncio.sleep(0.05)
        assert await auth_check(session, new_url, secret) == 401


CREATE_WEBHOOK = (
    "mutation($url: String!, $events: [String!]!) { createWebhook(url: $url, events: $events) { webhook { id } } }"
)


async def test_a_webhook_made_by_the_previous_release_keeps_its_creator_as_owner(database, old_tree, tmp_path):
    async with side_by_side(database, *old_tree, tmp_path) as releases:
        made = await call(
            releases.session,
            releases.old_url,
            CREATE_WEBHOOK,
            releases.admin,
            {"url": "http://127.0.0.1:9/hook", "events": ["service_token.deleted"]},
        )
        assert "errors" not in made, made
    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow("SELECT created_by, owner_user_id, owner_token_id FROM webhooks")
    finally:
        await conn.close()
    assert row["created_by"].startswith("user:")  # the precondition: a person made it, not the operator
    assert (row["owner_user_id"], row["owner_token_id"]) != (None, None), dict(row)
