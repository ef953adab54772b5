"""The principal cache and cross-instance invalidation, through HTTP with two instances on one database."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import time

import pytest

from tests.api import service_token_calls as calls
from tests.api.query_log import QueryLog
from tests.conftest import make_config, start_server
from tokengate.core.limits import Limits, Rate

CHECK = "query($p: ID) { check(resource: JOBS, access: WRITE, projectId: $p) { allowed } }"


async def eventually(condition, seconds: float = 10.0) -> None:
    """Poll until ``condition()`` is true; fail if it is not within ``seconds`` (generous: a NOTICE arrives in
    milliseconds, and the caches' TTL is no shorter than that bound, see ``learnt_by_notice``)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await condition():
        assert loop.time() - started < seconds, "not seen in time"
        await asyncio.sleep(0.01)


class learnt_by_notice:  # read as a sentence: `with learnt_by_notice(second):`
    """Around a change made through A: B's principal cache must have dropped an entry because a notice said so
    (its invalidation count), not because the entry aged out (its TTL is longer than ``eventually`` waits)."""

    def __init__(self, server) -> None:
        self.cache = cache_of(server)

    def __enter__(self) -> None:
        assert self.cache.ttl > 10.0
        self.before = self.cache.stats.invalidations

    def __exit__(self, *failure) -> None:
        if failure[0] is None:
            assert self.cache.stats.invalidations > self.before, "B did not learn the change through NOTIFY"


@pytest.fixture
async def second(database, tmp_path):
    """Instance B: another tokengate on the same database, with its own cache and listener."""
    async for server in start_server(database, make_config(tmp_path / "b")):
        yield server


def cache_of(server):
    return server.runtime.authenticator.cache


async def test_warm_requests_are_answered_from_the_cache(server):
    admin = await server.bootstrap()
    created = await calls.created(server, admin.token)
    cache = cache_of(server)
    assert (await server.gql(calls.VIEWER, token=created.secret)).status == 200
    hits, misses = cache.stats.hits, cache.stats.misses
    for _ in range(5):
        assert (await server.gql(calls.VIEWER, token=created.secret)).status == 200
    assert (cache.stats.hits - hits, cache.stats.misses - misses) == (5, 0)


async def test_wrong_secret_for_a_cached_id_is_refused(server):
    admin = await server.bootstrap()
    created = await calls.created(server, admin.token)
    assert (await server.gql(calls.VIEWER, token=created.secret)).status == 200
    from tokengate.core import tokens

    body = created.secret[:20] + tokens.random_base62(32)
    assert (await server.gql(calls.VIEWER, token=body + tokens.checksum(body))).status == 401


async def test_delete_through_a_is_refused_by_b(server, second):
    admin = await server.bootstrap()
    created = await calls.created(server, admin.token)
    assert (await second.gql(calls.VIEWER, token=created.secret)).status == 200  # warm in B's cache
    with learnt_by_notice(second):
        assert (await server.gql(calls.DELETE, {"id": created.id}, token=admin.token)).errors == []

        async def refused() -> bool:
            return (await second.gql(calls.VIEWER, token=created.secret)).status == 401

        await eventually(refused)


async def test_update_through_a_holds_on_b_from_the_next_request(server, second):
    admin = await server.bootstrap()
    project = (await server.gql('mutation { createProject(name: "p") { id } }', token=admin.token)).data
    project_id = project["createProject"]["id"]
    created = await calls.created(server, admin.token, grants=[calls.grant("JOB_ADMIN")])
    reply = await second.gql(CHECK, {"p": project_id}, token=created.secret)
    assert reply.data == {"check": {"allowed": True}}
    with learnt_by_notice(second):
        downgrade = {"id": created.id, "grants": [calls.grant("JOB_VIEWER")]}
        reply = await server.gql(calls.UPDATE, downgrade, token=admin.token)
        assert reply.errors == [], reply.body

        async def downgraded() -> bool:
            reply = await second.gql(CHECK, {"p": project_id}, token=created.secret)
            return reply.data == {"check": {"allowed": False}}

        await eventually(downgraded)


async def test_new_project_through_a_is_known_to_b(server, second):
    admin = await server.bootstrap()
    created = await calls.created(server, admin.token, grants=[calls.grant("JOB_ADMIN")])
    assert (await second.gql(calls.VIEWER, token=created.secret)).status == 200
    with learnt_by_notice(second):
        project = (await server.gql('mutation { createProject(name: "new") { id } }', token=admin.token)).data
        project_id = project["createProject"]["id"]

        async def known() -> bool:
            reply = await second.gql(CHECK, {"p": project_id}, token=created.secret)
            return reply.data == {"check": {"allowed": True}}

        await eventually(known)


async def test_ip_rule_change_through_a_is_applied_by_b(database, tmp_path, second, monkeypatch):
    # A trusts loopback proxies, so its admin can speak from 10.1.1.1; B sees the test client as 127.0.0.1.
    trusting = make_config(tmp_path / "a", trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    async for server in start_server(database, trusting):
        admin = await server.bootstrap()
        created = await calls.created(server, admin.token)
        assert (await second.gql(calls.VIEWER, token=created.secret)).status == 200  # warm in B
        # B's IP rules never age out during the test (its clock stands still): only the notice can drop them.
        monkeypatch.setattr(second.runtime.ip_guard, "_clock", itertools.repeat(time.monotonic()).__next__)
        reply = await server.gql(
            'mutation { setIpRestrictions(enabled: true, rules: [{name: "office", type: ALLOW, cidrs: ["10.0.0.0/8"]}])'
            " { enabled } }",
            token=admin.token,
            headers={"X-Forwarded-For": "10.1.1.1"},
        )
        assert reply.errors == [], reply.body

        async def blocked(secret: str = created.secret) -> bool:
            return (await second.gql(calls.VIEWER, token=secret)).status == 403

        await eventually(blocked)  # the notice: the rules B held could not expire


async def test_killing_the_listener_connection_flushes_the_cache(server):
    admin = await server.bootstrap()
    created = await calls.created(server, admin.token)
    assert (await server.gql(calls.VIEWER, token=created.secret)).status == 200
    services = server.runtime
    cache, listener = services.authenticator.cache, services.listener
    assert len(cache) >= 1 and listener.healthy
    flushes, old_pid = cache.stats.flushes, listener.backend_pid
    assert await server.pool.fetchval("SELECT pg_terminate_backend($1)", old_pid)

    async def flushed() -> bool:
        return cache.stats.flushes > flushes

    await eventually(flushed)
    assert len(cache) == 0 or cache.stats.flushes > flushes

    async def reconnected() -> bool:
        return listener.healthy and listener.backend_pid not in (None, old_pid)

    await eventually(reconnected)
    assert (await server.gql(calls.VIEWER, token=created.secret)).status == 200


async def test_cache_never_holds_more_than_its_size(database, tmp_path):
    async for server in start_server(database, make_config(tmp_path, principal_cache_size=3)):
        admin = await server.bootstrap()
        for _ in range(6):
            created = await calls.created(server, admin.token)
            assert (await server.gql(calls.VIEWER, token=created.secret)).status == 200
        assert len(cache_of(server)) == 3


async def test_expiry_is_checked_on_every_cached_use(server):
    from datetime import UTC, datetime, timedelta

    admin = await server.bootstrap()
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()  # time enough to be used once before
    created = await calls.created(server, admin.token, expiresAt=soon)
    assert (await server.gql(calls.VIEWER, token=created.secret)).status == 200

    async def expired() -> bool:
        return (await server.gql(calls.VIEWER, token=created.secret)).status == 401

    await eventually(expired)


async def test_listing_costs_the_same_number_of_queries_for_10_and_100_tokens(database, tmp_path):
    log = QueryLog()
    query = "{ account { serviceTokens { id grants { permissionSet allProjects projects { id name } } } } }"
    # Listing after each of 100 creations costs far more cost points than a principal earns (limits.py).
    unmetered = Limits(cost=Rate(0, 1))
    async for server in start_server(database, make_config(tmp_path, limits=unmetered), pool_setup=log.watch):
        admin = await server.bootstrap()
        projects = []
        for name in ("a", "b", "c"):
            reply = await server.gql(f'mutation {{ createProject(name: "{name}") {{ id }} }}', token=admin.token)
            projects.append(reply.data["createProject"]["id"])
        costs = {}
        for total in (10, 100):
            while len(await calls.listed(server, admin.token)) < total:
                await calls.created(
                    server, admin.token, grants=[calls.grant("JOB_ADMIN", *projects), calls.grant("METADATA_ONLY")]
                )
            await server.gql(calls.VIEWER, token=admin.token)  # principal cached before counting
            log.statements.clear()
            reply = await server.gql(query, token=admin.token)
            assert reply.errors == [] and len(reply.data["account"]["serviceTokens"]) == total
            assert all(len(t["grants"]) == 2 for t in reply.data["account"]["serviceTokens"])
            # of_requests would drop the listing too: it selects last_used_at, as the last-used flush does
            background = (
                "token_usage_daily",
                "webhook_deliveries",
                "token_notices",
                "advisory",
                "SET last_used_at",
                "heartbeat",
            )
            costs[total] = len([q for q in log.real() if not any(word in q for word in background)])
        # the tokens with their grants, the granted projects and the grants' last use: one query whatever the length
        assert costs[10] == costs[100] == 1, (costs, log.real())
