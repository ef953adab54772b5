"""One expiry rule on every path that answers from memory (issue 21; contract of 2026-12-06: "While the database
is unreachable, cached principals keep serving for a bounded, documented time only").

A token whose end (its expiry, or the end of its rotation window) comes after its principal was cached is refused
on each path that could answer from memory: the remembered text (``Authenticator.remembered``), the cache by id
(``from_memory``), the rate limits' look before a body is read (``cached_principal``, ``Gate.before_body``), the
fast door (``/auth/check``), and the fallback while the database is unreachable. That fallback serves a principal
only up to ``TOKENGATE_STALE_PRINCIPAL_SECONDS`` after its validation.

The database is made unreachable by cutting the TCP proxy the server reaches it through (tests/api/pg_proxy.py).
No timing is asserted: the tests wait past a token's end, and deadlines are generous.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.api.pg_proxy import HoldingProxy
from tests.conftest import TEST_SECRET_KEY, Seeded, Server, make_config, start_server, store_service_token
from tokengate.config import ConfigError, load_config
from tokengate.core.limits import Limits, Rate
from tokengate.core.policy import Grant
from tokengate.services import service_tokens
from tokengate.services.unit_of_work import OPERATOR
from tokengate.store import tokens as token_store

ENDS_IN = 2  # seconds from now: a token's expiry, or its rotation window
DEADLINE = 20.0  # generous, for a busy machine
# Two requests per token, then next to nothing: the third is refused before its body is read.
LIMITS = Limits(cost=Rate(0, 1), principal=Rate(0.01, 2))
ENDINGS = ("expiry", "rotation window")
WHO = "{ viewer { kind } }"


STALE = 5.0  # TOKENGATE_STALE_PRINCIPAL_SECONDS where it is tested: room for the requests made before it passes


async def proxied(database: str, tmp_path: Path, **config: object) -> AsyncIterator[tuple[Server, HoldingProxy]]:
    async with HoldingProxy(database) as proxy:
        async for server in start_server(proxy.dsn, make_config(tmp_path, **config)):
            yield server, proxy
            await proxy.restore()  # the server stops with its database reachable


@pytest.fixture
async def behind_proxy(database: str, tmp_path: Path) -> AsyncIterator[tuple[Server, HoldingProxy]]:
    async for running in proxied(database, tmp_path, limits=LIMITS):
        yield running


@pytest.fixture
async def short_stale_bound(database: str, tmp_path: Path) -> AsyncIterator[tuple[Server, HoldingProxy]]:
    async for running in proxied(database, tmp_path, stale_principal_seconds=STALE):
        yield running


async def check(server: Server, token: str) -> int:
    status, _, _ = await server.get(
        "/auth/check", params={"resource": "JOBS", "access": "READ"}, headers={"Authorization": f"Bearer {token}"}
    )
    return status


async def ending_soon(server: Server, admin: Seeded, ending: str) -> tuple[str, datetime]:
    """A token that works now and stops working in ``ENDS_IN`` seconds, and when it ends (as stored)."""
    if ending == "expiry":
        expires_at = datetime.now(UTC) + timedelta(seconds=ENDS_IN)
        secret = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")], expires_at=expires_at)
        return secret, expires_at
    secret = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    rotated = await service_tokens.rotate(
        server.runtime.backend, OPERATOR, admin.account_id, secret[4:20], revoke_old_in_seconds=ENDS_IN
    )
    server.issued.append(rotated.secret)
    ends = rotated.replaced.expires_at if rotated.replaced is not None else None
    assert ends is not None
    return secret, ends


async def cached(server: Server, *secrets: str) -> None:
    """Each token validated through the fast door, so its principal is held in memory."""
    authenticator = server.runtime.authenticator
    for secret in secrets:
        assert await check(server, secret) == 200
        assert authenticator.remembered(secret) is not None  # served from memory from now on
        assert authenticator.cached_principal(secret) is not None


async def past(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.2)


async def eventually(condition, seconds: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await condition():
        assert loop.time() - started < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.05)


async def cut(server: Server, proxy: HoldingProxy) -> None:
    """The database unreachable: the listener notices, the cache is no longer trusted."""
    await proxy.cut()

    async def deaf() -> bool:
        return not server.runtime.listener.healthy

    await eventually(deaf)


async def exhaust_principal_budget(server: Server, secret: str) -> None:
    """Spend the token's principal budget: its next request is refused 429 before its body is read."""
    assert await check(server, secret) == 200  # the second of two
    assert (await server.gql(WHO, token=secret)).status == 429


@pytest.mark.parametrize("ending", ENDINGS)
async def test_a_token_that_ends_after_it_was_cached_is_refused_on_every_path(behind_proxy, ending):
    server, _ = behind_proxy
    authenticator = server.runtime.authenticator
    admin = await server.bootstrap()
    made = [await ending_soon(server, admin, ending) for _ in range(5)]
    by_remembered, by_memory, by_peek, by_door, by_rate = (secret for secret, _ in made)
    await cached(server, by_remembered, by_memory, by_peek, by_door, by_rate)
    await exhaust_principal_budget(server, by_rate)

    await past(max(ends for _, ends in made))

    assert authenticator.remembered(by_remembered) is None
    assert authenticator.from_memory(by_memory)[1] is None
    assert authenticator.cached_principal(by_peek) is None
    assert await check(server, by_door) == 401
    # The rate limits' look before the body no longer finds the principal: the token is refused as one that
    # ended (401), not charged to the budget of a principal it no longer is (429).
    reply = await server.gql(WHO, token=by_rate)
    assert reply.status == 401, reply.body


@pytest.mark.parametrize("ending", ENDINGS)
async def test_while_the_database_is_unreachable_a_token_that_ended_is_refused_on_every_path(
    behind_proxy, ending, monkeypatch
):
    server, proxy = behind_proxy
    authenticator = server.runtime.authenticator
    admin = await server.bootstrap()
    live, still_live = [await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")]) for _ in "ab"]
    made = [await ending_soon(server, admin, ending) for _ in range(3)]
    by_fallback, in_memory, by_rate = (secret for secret, _ in made)
    await cached(server, live, still_live, by_fallback, in_memory, by_rate)
    await exhaust_principal_budget(server, by_rate)

    await cut(server, proxy)
    assert await check(server, live) == 200  # the fallback serves what was validated (the precondition)
    assert await check(server, by_fallback) == 200  # not ended yet

    await past(max(ends for _, ends in made))

    assert await check(server, by_fallback) == 503
    assert authenticator.cached_principal(in_memory) is None
    reply = await server.gql(WHO, token=by_rate)  # not refused 429 as the principal it was: it cannot be checked
    assert reply.status == 503, reply.body
    # The moment before the listener notices an outage, the cache is still trusted: the rule holds there too.
    monkeypatch.setattr(authenticator, "cache_trusted", lambda: True)
    assert authenticator.remembered(in_memory) is None
    assert authenticator.cached_principal(in_memory) is None
    assert authenticator.from_memory(in_memory)[1] is None
    monkeypatch.undo()
    assert await check(server, still_live) == 200  # within the stale bound, a token that did not end still serves


async def test_while_the_database_is_unreachable_cached_principals_serve_up_to_the_stale_bound_only(
    short_stale_bound,
):
    server, proxy = short_stale_bound
    authenticator = server.runtime.authenticator
    admin = await server.bootstrap()
    token = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    await cached(server, token)
    await cut(server, proxy)
    assert await check(server, token) == 200  # served from the cache: validated less than STALE s ago
    assert (await server.gql(WHO, token=token)).status == 200

    async def refused() -> bool:
        return await check(server, token) == 503

    await eventually(refused, STALE + DEADLINE)
    assert authenticator.cached_principal(token) is None
    reply = await server.gql(WHO, token=token)
    assert reply.status == 503 and reply.codes == ["SERVICE_UNAVAILABLE"], reply.body

    await proxy.restore()

    async def served() -> bool:
        return await check(server, token) == 200

    await eventually(served)  # validated again once the database is back


async def test_the_rotation_window_ends_when_the_application_says(server):
    """One clock: the end of a rotation window is computed by the application (whose clock authentication
    compares it with) and stored as given, never moved later."""
    admin = await server.bootstrap()
    secret = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    token_id = secret[4:20]
    moment = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert (await token_store.expire_by(server.pool, token_id, moment)).expires_at == moment
    later = moment + timedelta(days=1)
    assert (await token_store.expire_by(server.pool, token_id, later)).expires_at == moment


def test_the_stale_bound_is_set_from_the_environment(tmp_path):
    def stale(**env: str) -> float:
        base = {"TOKENGATE_SECRET_KEY": TEST_SECRET_KEY, "TOKENGATE_DATABASE_URL": "postgresql://unused"}
        return load_config(tmp_path, {**base, **env}).stale_principal_seconds

    assert stale() == 300
    assert stale(TOKENGATE_STALE_PRINCIPAL_SECONDS="30") == 30
    assert stale(TOKENGATE_STALE_PRINCIPAL_SECONDS="0") == 0  # nothing served while the database is unreachable
    for wrong in ("-1", "nan", "inf", "soon", "86401"):
        with pytest.raises(ConfigError, match="TOKENGATE_STALE_PRINCIPAL_SECONDS"):
            stale(TOKENGATE_STALE_PRINCIPAL_SECONDS=wrong)
