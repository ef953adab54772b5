"""Usage insight: lastUsedFrom and usage(days) after traffic from two loopback addresses, Grant.lastUsedAt for
the grant that allowed a check, all written in one statement per flush and never per request."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp

from tests.api import service_token_calls as calls
from tests.api.conftest import from_address
from tests.api.query_log import QueryLog
from tests.conftest import Server, make_config, start_server, store_service_token
from tokengate.core.policy import Grant

USAGE = """{ account { serviceTokens { id lastUsedFrom usage(days: 3) { day count }
  grants { permissionSet lastUsedAt } } } }"""


async def check_from(server: Server, secret: str, local_address: str, resource: str = "JOBS") -> int:
    connector = aiohttp.TCPConnector(local_addr=(local_address, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        url = f"{server.url}/auth/check?resource={resource}&access=READ"
        async with session.get(url, headers={"Authorization": f"Bearer {secret}"}) as response:
            return response.status


async def token_view(server: Server, caller: str, token_id: str) -> dict:
    reply = await server.gql(USAGE, token=caller)
    assert reply.errors == [], reply.body
    (token,) = [t for t in reply.data["account"]["serviceTokens"] if t["id"] == token_id]
    return token


async def test_usage_and_last_addresses_after_traffic_from_two_loopback_addresses(server):
    admin = await server.bootstrap()
    token = await calls.created(server, admin.token, grants=[calls.grant("JOB_ADMIN"), calls.grant("METADATA_ONLY")])
    before = await token_view(server, admin.token, token.id)
    assert before["lastUsedFrom"] == [] and [d["count"] for d in before["usage"]] == [0, 0, 0]
    assert [g["lastUsedAt"] for g in before["grants"]] == [None, None]

    for address in ("127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"):
        assert await check_from(server, token.secret, address) == 200
    assert await check_from(server, token.secret, "127.0.0.1", resource="BILLING") == 403  # counted, allowed nothing
    await server.runtime.gate.usage.flush()

    after = await token_view(server, admin.token, token.id)
    assert after["lastUsedFrom"] == ["127.0.0.1", "127.0.0.2"]  # newest first, distinct
    today = datetime.now(UTC).date().isoformat()
    assert after["usage"][-1] == {"day": today, "count": 6} and [d["count"] for d in after["usage"][:2]] == [0, 0]
    job_admin, metadata_only = after["grants"]
    assert job_admin["permissionSet"] == "JOB_ADMIN" and job_admin["lastUsedAt"] is not None
    assert metadata_only["lastUsedAt"] is None  # nobody's check needed it: a grant to remove

    assert await check_from(server, token.secret, "127.0.0.2") == 200
    await server.runtime.gate.usage.flush()
    again = await token_view(server, admin.token, token.id)
    assert again["lastUsedFrom"] == ["127.0.0.2", "127.0.0.1"] and again["usage"][-1]["count"] == 7
    reply = await server.gql("{ account { serviceTokens { usage(days: 91) { day } } } }", token=admin.token)
    assert reply.codes == ["BAD_USER_INPUT"]


async def test_at_most_five_addresses_are_kept(proxied):
    admin = await proxied.bootstrap()
    token = await calls.created(proxied, admin.token)
    for n in range(1, 8):
        assert (
            await proxied.gql(calls.VIEWER, token=token.secret, headers=from_address(f"203.0.113.{n}"))
        ).status == 200
        if n == 3:
            await proxied.runtime.gate.usage.flush()
    await proxied.runtime.gate.usage.flush()
    reply = await proxied.gql("{ account { serviceTokens { id lastUsedFrom } } }", token=admin.token)
    (listed,) = [t for t in reply.data["account"]["serviceTokens"] if t["id"] == token.id]
    assert listed["lastUsedFrom"] == [f"203.0.113.{n}" for n in (7, 6, 5, 4, 3)]


async def test_requests_write_nothing_until_the_flush_writes_everything_in_one_statement(database, tmp_path):
    log = QueryLog()

    def writes() -> list[str]:
        return [q for q in log.statements if q.lstrip().upper().startswith(("UPDATE", "INSERT", "WITH"))]

    async for server in start_server(database, make_config(tmp_path), pool_setup=log.watch):
        admin = await server.bootstrap()
        token = await calls.created(server, admin.token)
        assert await check_from(server, token.secret, "127.0.0.1") == 200  # the principal is cached from here on
        # The periodic flushes are stopped (flushing what they hold) so that none falls inside the loop below.
        await server.runtime.gate.usage.stop()
        await server.runtime.authenticator.last_used.stop()
        log.statements.clear()
        for n in range(50):
            assert await check_from(server, token.secret, "127.0.0.2" if n % 2 else "127.0.0.1") == 200
            reply = await server.gql("{ check(resource: JOBS, access: WRITE) { allowed } }", token=token.secret)
            assert reply.data["check"]["allowed"]
        assert writes() == [], writes()
        await server.runtime.gate.usage.flush()
        assert len(writes()) == 1 and "token_usage_daily" in writes()[0] and "grants" in writes()[0]
        view = await token_view(server, admin.token, token.id)
        # 1 + 50 checks + 50 queries; the last request was the query, from 127.0.0.1
        assert view["usage"][-1]["count"] == 101 and view["lastUsedFrom"] == ["127.0.0.1", "127.0.0.2"]


PAGE_USAGE = """query($days: Int!) { account {
  serviceTokenConnection(first: 50) { edges { node { id usage(days: $days) { day count } } } }
  serviceTokens { id week: usage(days: 7) { count } } } }"""


async def test_usage_of_a_page_of_tokens_is_one_query_whatever_the_number_of_tokens(database, tmp_path):
    log = QueryLog()

    def usage_reads() -> list[str]:
        return [q for q in log.real() if "token_usage_daily" in q and q.lstrip().upper().startswith("SELECT")]

    async for server in start_server(database, make_config(tmp_path), pool_setup=log.watch):
        admin = await server.bootstrap()
        legacy = await server.import_legacy_token(
            admin.account_id, "old", datetime(2022, 3, 1, tzinfo=UTC), [Grant("JOB_ADMIN")]
        )
        secrets = [legacy] + [
            await store_service_token(server, admin.account_id, [Grant("JOB_RUNNER")]) for _ in range(49)
        ]
        for n, secret in enumerate(secrets[:3]):  # the legacy token and two v2 tokens, 1, 2 and 3 requests
            for _ in range(n + 1):
                assert await check_from(server, secret, "127.0.0.1") == 200
        await server.runtime.gate.usage.flush()
        await server.runtime.gate.usage.stop()  # no flush reads or writes the table while the queries are counted
        log.clear()

        reply = await server.gql(PAGE_USAGE, {"days": 30}, token=admin.token)
        assert reply.errors == [], reply.body
        # One read for the page (30 days) and one for the list (7 days): not one per token.
        assert len(usage_reads()) == 2, usage_reads()
        nodes = [edge["node"] for edge in reply.data["account"]["serviceTokenConnection"]["edges"]]
        assert len(nodes) == 50 and all(len(node["usage"]) == 30 for node in nodes)
        today = datetime.now(UTC).date().isoformat()
        assert all(node["usage"][-1]["day"] == today for node in nodes)
        assert [node["usage"][-1]["count"] for node in nodes] == [1, 2, 3] + [0] * 47  # each its own, in order
        assert [sum(day["count"] for day in token["week"]) for token in reply.data["account"]["serviceTokens"]] == (
            [1, 2, 3] + [0] * 47
        )

        # A token read alone is one read too, with the same answer.
        log.clear()
        reply = await server.gql(
            "query($id: ID!) { node(id: $id) { ... on ServiceToken { usage(days: 30) { count } } } }",
            {"id": nodes[2]["id"]},
            token=admin.token,
        )
        assert [day["count"] for day in reply.data["node"]["usage"]] == [day["count"] for day in nodes[2]["usage"]]
        assert len(usage_reads()) == 1
