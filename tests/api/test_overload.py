"""Fair limits in the gate, through HTTP: rates per address and per principal (429 with Retry-After), the
budget of failed authentications, the ids known not to authenticate, and argon2id kept off the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import LOOPBACK, from_address
from tests.api.query_log import QueryLog
from tests.api.service_token_calls import DELETE, VIEWER, created, grant
from tests.conftest import Server, make_config, start_server, store_service_token
from tokengate.core import tokens
from tokengate.core.limits import Buckets, Limits, Rate
from tokengate.core.policy import Grant

INTROSPECTION = "{ __schema { queryType { name } } }"


class FrozenClock:
    """Stands in for time.monotonic in the server's buckets: a test moves time instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def freeze(server: Server) -> FrozenClock:
    clock = FrozenClock()
    throttle = server.runtime.gate.throttle
    for buckets in vars(throttle).values():
        if isinstance(buckets, Buckets):
            buckets.clock = clock
    return clock


async def serve(database: str, tmp_path: Path, limits: Limits, **options: Any) -> AsyncIterator[Server]:
    config = make_config(tmp_path, trusted_proxies=LOOPBACK, limits=limits)
    async for server in start_server(database, config, **options):
        yield server


async def check(server: Server, token: str | None, address: str) -> tuple[int, dict[str, str], str]:
    headers = from_address(address)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with server.session.get(server.url + "/auth/check", headers=headers) as response:
        return response.status, dict(response.headers), await response.text()


async def refused_with_argon2id(server: Server, verifier: Any, text: str) -> int:
    """How many argon2id verifications a refused token cost."""
    before = verifier.verifications
    assert (await check(server, text, "10.0.0.1"))[0] == 401
    return verifier.verifications - before


class HeldArgon2id:
    """``tokens.legacy_matches`` that waits, in its worker thread, until the test sets ``release``."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.matches = tokens.legacy_matches

    def __call__(self, text: str, stored: bytes) -> bool:
        self.entered.set()
        self.release.wait(60)
        return self.matches(text, stored)


def argon2id_parameters(encoded: bytes) -> bytes:
    """``$argon2id$v=19$m=…,t=…,p=…``: what an argon2id verification against this hash costs."""
    return b"$".join(encoded.split(b"$")[:4])


def unknown_token() -> str:
    """A well-formed v2 token (its checksum holds) whose id was never issued."""
    return tokens.issue_token("service").text


async def test_past_its_address_limit_a_client_gets_429_with_retry_after_and_other_clients_do_not(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(address=Rate(1, 3))):
        clock = freeze(server)
        seeded = await server.bootstrap()
        for _ in range(3):
            assert (await check(server, seeded.token, "10.0.0.1"))[0] == 200
        status, headers, body = await check(server, seeded.token, "10.0.0.1")
        assert status == 429
        assert headers["Retry-After"] == "1"
        assert headers["RateLimit-Policy"] == '"address";q=3;w=3'
        assert headers["RateLimit"] == '"address";r=0;t=1'
        assert '"code":"RATE_LIMITED"' in body and "address rate limit" in body
        reply = await server.gql(VIEWER, token=seeded.token, headers=from_address("10.0.0.1"))
        assert reply.status == 429 and reply.codes == ["RATE_LIMITED"] and reply.headers["Retry-After"] == "1"
        # The same token from another address, and the first address once Retry-After has passed, get through.
        assert (await check(server, seeded.token, "10.0.0.2"))[0] == 200
        clock.now += 1
        assert (await check(server, seeded.token, "10.0.0.1"))[0] == 200
        metrics = (await server.get("/metrics"))[1]
        assert 'tokengate_refusals_total{limit="address"} 2.0' in metrics


async def test_each_principal_has_its_own_budget_wherever_it_calls_from(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(principal=Rate(1, 2))):
        freeze(server)
        greedy = await server.bootstrap("Greedy")
        quiet = await server.bootstrap("Quiet")
        assert (await check(server, greedy.token, "10.0.0.1"))[0] == 200
        assert (await check(server, greedy.token, "10.0.0.2"))[0] == 200
        status, headers, _ = await check(server, greedy.token, "10.0.0.3")
        assert status == 429 and headers["RateLimit-Policy"] == '"principal";q=2;w=2'
        assert (await server.gql(VIEWER, token=greedy.token)).status == 429
        assert (await check(server, quiet.token, "10.0.0.1"))[0] == 200
        assert (await server.gql(VIEWER, token=quiet.token)).status == 200


async def test_requests_without_credentials_are_limited_before_their_document_is_parsed(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(anonymous=Rate(1, 2))):
        freeze(server)
        documents = server.runtime.documents
        for i in range(2):
            reply = await server.gql(f"# {i}\n" + INTROSPECTION, headers=from_address("10.0.0.1"))
            assert reply.status == 200 and reply.data == {"__schema": {"queryType": {"name": "Query"}}}
        parsed_before = len(documents)
        reply = await server.gql("# new text\n" + INTROSPECTION, headers=from_address("10.0.0.1"))
        assert reply.status == 429 and reply.codes == ["RATE_LIMITED"] and reply.headers["Retry-After"] == "1"
        assert len(documents) == parsed_before  # refused before the parse: the text was never seen
        # Another address, and anyone with credentials, still get the schema.
        assert (await server.gql(INTROSPECTION, headers=from_address("10.0.0.2"))).status == 200
        seeded = await server.bootstrap()
        assert (await server.gql(INTROSPECTION, token=seeded.token, headers=from_address("10.0.0.1"))).status == 200


async def test_past_the_failure_budget_unknown_tokens_cost_no_query_and_cached_valid_tokens_pass(database, tmp_path):
    queries = QueryLog()
    async for server in serve(database, tmp_path, Limits(failures=Rate(1, 3)), pool_setup=queries.watch):
        clock = freeze(server)
        seeded = await server.bootstrap()
        cached = await store_service_token(server, seeded.account_id, [Grant("JOB_VIEWER")])
        not_cached = await store_service_token(server, seeded.account_id, [Grant("JOB_VIEWER")])
        assert (await check(server, cached, "10.0.0.1"))[0] == 200  # cached now (a valid token costs no failure)
        # The attack costs the database something: each unknown id is a query.
        for _ in range(3):
            queries.clear()
            assert (await check(server, unknown_token(), "10.0.0.1"))[0] == 401
            assert len(queries.of_requests()) >= 1
        queries.clear()
        status, headers, body = await check(server, unknown_token(), "10.0.0.1")
        assert status == 429 and headers["Retry-After"] == "1" and '"RATE_LIMITED"' in body
        assert headers["RateLimit-Policy"] == '"failures";q=3;w=3'
        assert len(queries.of_requests()) == 0  # refused without asking the database
        # A token already in the cache still passes from that address; one not cached waits like the attacker.
        assert (await check(server, cached, "10.0.0.1"))[0] == 200
        assert (await check(server, not_cached, "10.0.0.1"))[0] == 429
        assert len(queries.of_requests()) == 0
        # The same token from another address is checked, and passes.
        assert (await check(server, not_cached, "10.0.0.2"))[0] == 200
        clock.now += 1
        assert (await check(server, not_cached, "10.0.0.1"))[0] == 200


async def test_an_unknown_id_asked_twice_costs_one_query(database, tmp_path):
    queries = QueryLog()
    async for server in serve(database, tmp_path, Limits(), pool_setup=queries.watch):
        token = unknown_token()
        counts = []
        for _ in range(3):
            queries.clear()
            assert (await check(server, token, "10.0.0.1"))[0] == 401
            counts.append(len(queries.of_requests()))
        assert counts == [1, 0, 0]


async def test_a_deleted_token_is_refused_from_memory_after_one_query(database, tmp_path):
    queries = QueryLog()
    async for server in serve(database, tmp_path, Limits(), pool_setup=queries.watch):
        admin = await server.bootstrap()
        token = await created(server, admin.token, grants=[grant("JOB_VIEWER")])
        assert (await check(server, token.secret, "10.0.0.1"))[0] == 200
        assert (await server.gql(DELETE, {"id": token.id}, token=admin.token)).errors == []
        counts = []
        for _ in range(2):
            queries.clear()
            assert (await check(server, token.secret, "10.0.0.1"))[0] == 401
            counts.append(len(queries.of_requests()))
        assert counts == [1, 0]


async def test_a_wrong_secret_for_a_live_tokens_id_does_not_lock_that_token_out(database, tmp_path):
    # Token ids are not secret (audit log, X-Tokengate-Principal): remembering "this id failed" for a live token
    # would let anyone who saw its id refuse it. The text that failed is remembered, not the id.
    queries = QueryLog()
    async for server in serve(database, tmp_path, Limits(), pool_setup=queries.watch):
        admin = await server.bootstrap()
        real = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
        forged = with_other_secret(real)
        counts = []
        for _ in range(2):
            queries.clear()
            assert (await check(server, forged, "10.0.0.1"))[0] == 401
            counts.append(len(queries.of_requests()))
        assert counts == [1, 0]  # as for an unknown id: one query, then answered from memory
        assert (await check(server, real, "10.0.0.1"))[0] == 200


def with_other_secret(text: str) -> str:
    """A well-formed token with the id of ``text`` and another secret."""
    body = text[: len(tokens.SERVICE_PREFIX) + tokens.ID_LENGTH] + tokens.random_base62(tokens.SECRET_LENGTH)
    return body + tokens.checksum(body)


async def test_a_legacy_tokens_second_use_runs_no_argon2id(database, tmp_path):
    async for server in serve(database, tmp_path, Limits()):
        admin = await server.bootstrap()
        legacy = await server.import_legacy_token(
            admin.account_id, "old", datetime(2022, 1, 1, tzinfo=UTC), [Grant("JOB_VIEWER")]
        )
        verifier = server.runtime.authenticator.verify_legacy.__self__  # the app's LegacyVerifier
        runs = []
        for _ in range(3):
            before = verifier.verifications
            assert (await check(server, legacy, "10.0.0.1"))[0] == 200
            runs.append(verifier.verifications - before)
        assert runs == [1, 0, 0]  # argon2id on the first use only: the second is answered from the cache
        # The cache holds the keyed hash of the text, never the text.
        cache = server.runtime.authenticator.cache
        assert all(legacy.encode() not in alias for alias in cache._aliases)
        # Deleting it refuses it at once, though its principal was cached through the alias.
        token_id = next(iter(cache._aliases.values()))
        assert (await server.gql(DELETE, {"id": token_id}, token=admin.token)).errors == []
        assert (await check(server, legacy, "10.0.0.1"))[0] == 401


async def test_a_legacy_hint_that_matches_nothing_costs_an_argon2id_as_a_match_does(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(failures=Rate(100, 100))):
        admin = await server.bootstrap()
        legacy = await server.import_legacy_token(
            admin.account_id, "old", datetime(2022, 1, 1, tzinfo=UTC), [Grant("JOB_VIEWER")]
        )
        verifier = server.runtime.authenticator.verify_legacy.__self__
        stored_hint_wrong_secret = legacy[:8] + tokens.new_legacy_secret()[8:]
        unknown_hint = next(t for t in iter(tokens.new_legacy_secret, None) if t[:8] != legacy[:8])

        match = [await refused_with_argon2id(server, verifier, stored_hint_wrong_secret) for _ in range(3)]
        miss = [await refused_with_argon2id(server, verifier, unknown_hint) for _ in range(3)]
        assert match + miss == [1] * 6  # one argon2id either way
        # And the same argon2id: the miss is verified against a hash of the stored hashes' cost (memory,
        # iterations, lanes), so its answer takes what a match's takes. Without it a miss answered in ~1.5 ms
        # and a match in ~100 ms (timings belong to bench/, the cost parameters are what decide them).
        stored = await server.pool.fetchval("SELECT hash FROM tokens WHERE format = 'legacy'")
        assert verifier._dummy is not None and argon2id_parameters(verifier._dummy) == argon2id_parameters(stored)
        assert argon2id_parameters(stored).startswith(b"$argon2id$v=19$m=")


async def test_past_the_argon2id_cap_legacy_tokens_get_503_at_once(database, tmp_path, monkeypatch):
    async for server in serve(database, tmp_path, Limits(failures=Rate(100, 100), legacy_verifications=1)):
        admin = await server.bootstrap()
        legacy = await server.import_legacy_token(
            admin.account_id, "old", datetime(2022, 1, 1, tzinfo=UTC), [Grant("JOB_VIEWER")]
        )
        verifier = server.runtime.authenticator.verify_legacy.__self__
        # argon2id itself held until the test lets it go (in its worker thread): the pool of one stays full
        # for as long as the test needs, whatever the machine's speed.
        held = HeldArgon2id()
        monkeypatch.setattr(tokens, "legacy_matches", held)
        probes = [legacy[:8] + tokens.new_legacy_secret()[8:] for _ in range(3)]
        try:
            first = asyncio.ensure_future(check(server, probes[0], "10.0.0.1"))
            assert await asyncio.to_thread(held.entered.wait, 30), "the first probe never reached argon2id"
            assert verifier.pending == verifier.max_pending == 1  # the pool is full
            for probe in probes[1:]:
                status, headers, body = await asyncio.wait_for(check(server, probe, "10.0.0.1"), 30)
                assert status == 503 and headers["Retry-After"] == "1" and "legacy token verifications" in body
                assert not first.done()  # answered while the pool's one verification still runs
            assert verifier.verifications == 1  # the refused ones cost no argon2id
        finally:
            held.release.set()
        assert (await first)[0] == 401
        monkeypatch.undo()
        # The pool free again: the real token works.
        assert (await check(server, legacy, "10.0.0.2"))[0] == 200
        metrics = (await server.get("/metrics"))[1]
        assert 'tokengate_refusals_total{limit="legacy_verifications"} 2.0' in metrics


@pytest.mark.parametrize("route", ["/auth/check", "/graphql"])
async def test_limits_are_off_when_their_rate_is_zero(database, tmp_path, route):
    off = Rate(0, 1)
    async for server in serve(database, tmp_path, Limits(address=off, principal=off, failures=off, cost=off)):
        seeded = await server.bootstrap()
        for _ in range(30):
            if route == "/auth/check":
                assert (await check(server, seeded.token, "10.0.0.1"))[0] == 200
                assert (await check(server, unknown_token(), "10.0.0.1"))[0] == 401
            else:
                assert (await server.gql(VIEWER, token=seeded.token)).status == 200


async def test_concurrent_first_uses_of_a_legacy_token_share_one_argon2id(database, tmp_path):
    queries = QueryLog()
    async for server in serve(database, tmp_path, Limits(legacy_verifications=1), pool_setup=queries.watch):
        admin = await server.bootstrap()
        legacy = await server.import_legacy_token(
            admin.account_id, "old", datetime(2022, 1, 1, tzinfo=UTC), [Grant("JOB_VIEWER")]
        )
        verifier = server.runtime.authenticator.verify_legacy.__self__
        assert (await check(server, admin.token, "10.0.0.1"))[0] == 200  # the account's IP rules loaded
        queries.clear()
        answers = await asyncio.gather(*(check(server, legacy, "10.0.0.1") for _ in range(8)))
        assert [status for status, _, _ in answers] == [200] * 8  # none refused by the pool of one
        assert verifier.verifications == 1 and len(queries.of_requests()) == 1


async def test_the_event_loop_lag_is_measured(server):
    def measured(metrics: str) -> float:
        count = next(line for line in metrics.splitlines() if line.startswith("tokengate_event_loop_lag_seconds_count"))
        return float(count.split()[-1])

    for _ in range(100):  # the monitor sleeps 0.1 s at a time: two measures come within seconds
        metrics = (await server.get("/metrics"))[1]
        if measured(metrics) >= 2:
            break
        await asyncio.sleep(0.1)
    assert measured(metrics) >= 2
    assert "# TYPE tokengate_refusals_total counter" in metrics
    assert 'tokengate_legacy_verifications{stat="pending"} 0.0' in metrics
