"""A revocation that commits while an instance is reading a token's first use wins over that read: the principal
read before it is not cached, so the next request is refused (issue 20, "revocation race").

Deterministic, no timing: the server's pool reaches PostgreSQL through a proxy (tests/api/pg_proxy.py) that holds
the reply to the credential read on the wire. PostgreSQL has answered (the token active, its old grants) before the
change is made through the same instance, whose notice is applied right after the commit, before the change's
answer; only then is the old reply let through.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.api import service_token_calls as calls
from tests.api.pg_proxy import HoldingProxy
from tests.api.test_cache_and_invalidation import CHECK, cache_of
from tests.api.test_graphql import CREATE_USER, create_project
from tests.conftest import Reply, Server, make_config, start_server

DEACTIVATE = "mutation($id: ID!) { deactivateUser(id: $id) { id state } }"
SET = "mutation($id: ID!, $grants: [GrantInput!]!) { setServiceTokenGrants(id: $id, grants: $grants) { id } }"
DEADLINE = 10.0  # seconds, generous: only a hang fails on it


@pytest.fixture
async def behind_holding_proxy(database, tmp_path) -> AsyncIterator[tuple[Server, HoldingProxy]]:
    async with HoldingProxy(database) as proxy:
        async for server in start_server(proxy.dsn, make_config(tmp_path)):
            yield server, proxy


@pytest.fixture
async def elsewhere(database, tmp_path) -> AsyncIterator[Server]:
    """Another instance on the same database, reaching it directly."""
    async for server in start_server(database, make_config(tmp_path / "elsewhere")):
        yield server


async def first_use_racing(
    server: Server,
    proxy: HoldingProxy,
    key: str,
    use: Callable[[], Awaitable[Reply]],
    change: Callable[[], Awaitable[None]],
) -> Reply:
    """The token's first use on this instance, its credential read answered by PostgreSQL before ``change`` commits
    (and is applied here) and read by the server only after."""
    assert key not in cache_of(server).token_ids()
    held = proxy.hold_reply_to(key.encode())
    first = asyncio.ensure_future(use())
    async with asyncio.timeout(DEADLINE):
        await held.answered.wait()  # the read is done in PostgreSQL: it saw the token as it was
    assert not first.done()
    await change()  # committed, and its notice applied on this instance
    held.release()
    async with asyncio.timeout(DEADLINE):
        return await first


async def test_a_token_deleted_while_its_first_use_is_read_is_refused_from_then_on(behind_holding_proxy):
    server, proxy = behind_holding_proxy
    admin = await server.bootstrap()
    # Control: the held read, released with nothing changed, validates and caches the token as usual.
    control = await calls.created(server, admin.token, "control")

    async def nothing() -> None:
        pass

    reply = await first_use_racing(
        server, proxy, control.key, lambda: server.gql(calls.VIEWER, token=control.secret), nothing
    )
    assert reply.status == 200 and control.key in cache_of(server).token_ids()

    token = await calls.created(server, admin.token, "deleted meanwhile")

    async def delete() -> None:
        reply = await server.gql(calls.DELETE, {"id": token.id}, token=admin.token)
        assert reply.errors == [] and reply.data["deleteServiceToken"]["state"] == "DELETED", reply.body

    await first_use_racing(server, proxy, token.key, lambda: server.gql(calls.VIEWER, token=token.secret), delete)
    assert token.key not in cache_of(server).token_ids()
    assert (await server.gql(calls.VIEWER, token=token.secret)).status == 401


async def test_a_token_deleted_through_another_instance_while_its_first_use_is_read_is_refused_from_then_on(
    behind_holding_proxy, elsewhere
):
    server, proxy = behind_holding_proxy
    admin = await server.bootstrap()
    token = await calls.created(server, admin.token, "deleted elsewhere")
    # Notices reach an instance in commit order on its one LISTEN connection: once the canary, deleted after the
    # token, is gone from this instance's cache, the token's notice has been applied here too.
    canary = await calls.created(server, admin.token, "canary")
    assert await calls.works(server, canary.secret) and canary.key in cache_of(server).token_ids()

    async def delete_elsewhere() -> None:
        for deleted in (token, canary):
            reply = await elsewhere.gql(calls.DELETE, {"id": deleted.id}, token=admin.token)
            assert reply.errors == [], reply.body
        async with asyncio.timeout(DEADLINE):
            while canary.key in cache_of(server).token_ids():
                await asyncio.sleep(0.01)

    def use() -> Awaitable[Reply]:
        return server.gql(calls.VIEWER, token=token.secret)

    await first_use_racing(server, proxy, token.key, use, delete_elsewhere)
    assert (await use()).status == 401


async def test_a_user_deactivated_while_their_tokens_first_use_is_read_is_refused_from_then_on(behind_holding_proxy):
    server, proxy = behind_holding_proxy
    admin = await server.bootstrap()
    variables = {"email": "leaver@acme.test", "license": "DEVELOPER", "grants": [calls.grant("JOB_VIEWER")]}
    reply = await server.gql(CREATE_USER, variables, token=admin.token)
    user_id = reply.data["createUser"]["id"]
    personal = await server.issue_user_token(user_id)

    async def deactivate() -> None:
        reply = await server.gql(DEACTIVATE, {"id": user_id}, token=admin.token)
        assert reply.errors == [] and reply.data["deactivateUser"]["state"] == "DEACTIVATED", reply.body

    await first_use_racing(server, proxy, personal[4:20], lambda: server.gql(calls.VIEWER, token=personal), deactivate)
    assert (await server.gql(calls.VIEWER, token=personal)).status == 401


async def test_grants_taken_away_while_a_tokens_first_use_is_read_hold_from_then_on(behind_holding_proxy):
    server, proxy = behind_holding_proxy
    admin = await server.bootstrap()
    project = await create_project(server, admin.token, "p")
    token = await calls.created(server, admin.token, "narrowed meanwhile", grants=[calls.grant("JOB_ADMIN")])

    async def narrow() -> None:
        reply = await server.gql(SET, {"id": token.id, "grants": [calls.grant("JOB_VIEWER")]}, token=admin.token)
        assert reply.errors == [], reply.body

    def check() -> Awaitable[Reply]:
        return server.gql(CHECK, {"p": project}, token=token.secret)

    await first_use_racing(server, proxy, token.key, check, narrow)
    assert (await check()).data == {"check": {"allowed": False}}
