"""One way to make a change: the same change made through GraphQL and through the command line states the same
notices, and leaves the caches of two instances on one database equal (nothing forgotten by hand)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from tests.api import service_token_calls as calls
from tests.api.test_cli import external, tokengate
from tests.conftest import Server, make_config, start_server
from tokengate.core import invalidations as notices
from tokengate.store.notify import CHANNEL

IP_RULES = """mutation($enabled: Boolean!) { setIpRestrictions(enabled: $enabled, rules: [
  {name: "everyone", type: ALLOW, cidrs: ["0.0.0.0/0", "::/0"]}]) { enabled } }"""


@pytest.fixture
async def second(database, tmp_path) -> AsyncIterator[Server]:
    async for server in start_server(database, make_config(tmp_path / "b")):
        yield server


MARKER = "tests/api/test_changes.py: end of batch"  # published by the test itself, after the changes it reads
END = object()


@dataclass
class Heard:
    """Every notice published on the database, as a listener on another connection receives it."""

    queue: asyncio.Queue[object]
    connection: asyncpg.Connection

    async def next_batch(self) -> list[notices.Notice | None]:
        """The notices of every change committed so far: those before a marker the test publishes now, since
        PostgreSQL delivers notifications in the order their transactions committed."""
        await self.connection.execute("SELECT pg_notify($1, $2)", CHANNEL, MARKER)
        batch: list[notices.Notice | None] = []
        while (notice := await asyncio.wait_for(self.queue.get(), 10)) is not END:
            assert notice is None or isinstance(notice, notices.Notice)
            batch.append(notice)
        return batch


@pytest.fixture
async def heard(database) -> AsyncIterator[Heard]:
    connection = await asyncpg.connect(database)
    queue: asyncio.Queue[object] = asyncio.Queue()

    def hear(*args: object) -> None:
        payload = str(args[-1])
        queue.put_nowait(END if payload == MARKER else notices.decode(payload))

    await connection.add_listener(CHANNEL, hear)
    yield Heard(queue, connection)
    await connection.close()


def shape(batch: list[notices.Notice | None], ids: dict[str, str]) -> list[str]:
    """The notices with their ids named by role, so that two changes of different objects compare equal."""
    names = {value: role for role, value in ids.items()}
    described = []
    for notice in batch:
        assert notice is not None, "a notice this version cannot read"
        ((field, value),) = ((k, getattr(notice, k)) for k in notice.__slots__)
        described.append(f"{type(notice).__name__}({field}={names.get(value, value)})")
    return described


WATCHED: set[str] = set()  # the service tokens the test follows (the admin's own token only calls A)


def cached(server: Server) -> tuple[frozenset[str], frozenset[str]]:
    runtime = server.runtime
    return runtime.authenticator.cache.token_ids() & WATCHED, runtime.ip_guard.account_ids()


async def warm(servers: tuple[Server, ...], secrets: list[str]) -> None:
    for server in servers:
        for secret in secrets:
            assert (await server.gql(calls.VIEWER, token=secret)).status == 200


async def settled(a: Server, b: Server) -> tuple[frozenset[str], frozenset[str]]:
    """Both instances' caches once B has applied what A published (polling; at most 10 s)."""
    for _ in range(1000):
        if cached(a) == cached(b):
            return cached(a)
        await asyncio.sleep(0.01)
    raise AssertionError(f"caches differ: A={cached(a)} B={cached(b)}")


async def cli(database: str, *args: str) -> dict:
    result = await asyncio.to_thread(tokengate, *args, env=external(database))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_graphql_and_cli_changes_state_the_same_notices_and_leave_caches_equal(database, server, second, heard):
    admin = await server.bootstrap()
    account = admin.account_id
    by_graphql = await calls.created(server, admin.token, name="by graphql")
    by_cli = await calls.created(server, admin.token, name="by cli")
    ids = {"account": account, "graphql token": by_graphql.key, "cli token": by_cli.key}
    WATCHED.update({by_graphql.key, by_cli.key})
    both = (server, second)
    await warm(both, [by_graphql.secret, by_cli.secret])
    assert heard.queue.empty()  # creating a token makes nothing stale
    assert cached(server) == cached(second) and {by_graphql.key, by_cli.key} <= cached(server)[0]

    # Delete a service token.
    reply = await server.gql(calls.DELETE, {"id": by_graphql.key}, token=admin.token)
    assert reply.errors == [], reply.body
    graphql_notices = shape(await heard.next_batch(), ids)
    await cli(database, "delete-service-token", "--account-id", account, "--id", by_cli.key)
    cli_notices = shape(await heard.next_batch(), ids)
    assert graphql_notices == ["TokenChanged(token_id=graphql token)"]
    assert cli_notices == ["TokenChanged(token_id=cli token)"]
    tokens_a, _ = await settled(server, second)
    assert by_graphql.key not in tokens_a and by_cli.key not in tokens_a  # forgotten here and there

    # Create a project: every principal of the account carries its projects.
    survivor = await calls.created(server, admin.token, name="survivor")
    WATCHED.add(survivor.id)
    await warm(both, [survivor.secret])
    reply = await server.gql('mutation { createProject(name: "by graphql") { id } }', token=admin.token)
    assert reply.errors == [], reply.body
    graphql_notices = shape(await heard.next_batch(), ids)
    assert cached(server)[0].isdisjoint({survivor.id})  # this instance forgot at once, after the commit
    await settled(server, second)
    await warm(both, [survivor.secret])
    await cli(database, "create-project", "--account-id", account, "--name", "by cli")
    cli_notices = shape(await heard.next_batch(), ids)
    assert graphql_notices == cli_notices == ["AccountChanged(account_id=account)"]
    assert survivor.id not in (await settled(server, second))[0]

    # IP restrictions off (keeping the rules), after switching them on through GraphQL.
    reply = await server.gql(IP_RULES, {"enabled": True}, token=admin.token)
    assert reply.errors == [], reply.body
    await heard.next_batch()
    await warm(both, [survivor.secret])
    assert account in cached(server)[1] and account in cached(second)[1]
    reply = await server.gql(IP_RULES, {"enabled": False}, token=admin.token)
    assert reply.errors == [], reply.body
    graphql_notices = shape(await heard.next_batch(), ids)
    assert account not in (await settled(server, second))[1]
    await warm(both, [survivor.secret])
    await cli(database, "disable-ip-restrictions", "--account-id", account)
    cli_notices = shape(await heard.next_batch(), ids)
    assert graphql_notices == cli_notices == ["IpRulesChanged(account_id=account)"]
    assert account not in (await settled(server, second))[1]
