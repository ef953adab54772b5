"""The client address behind a trusted proxy, through every door (issue 20): ``X-Forwarded-For`` is read from the
right, the first item not from a trusted proxy is the client, and an item there that is not an address is a 400
— never the proxy's own address. Before, any malformed item voided the whole header and the proxy's address
(here 127.0.0.1, the trusted loopback) decided: a client denied by IP rules put `x, ` in front of its address and
passed, and the proxy's address went to the audit log, ``lastUsedFrom`` and the rate-limit keys."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict

from tests.api import service_token_calls as calls
from tests.api.conftest import from_address
from tests.api.test_overload import freeze, serve
from tests.conftest import Server
from tokengate.core.limits import Limits, Rate

SET = "mutation($rules: [IpRuleInput!]!) { setIpRestrictions(enabled: true, rules: $rules) { enabled } }"
VIEWER = "{ viewer { kind clientAddress } }"
DENIED = "203.0.113.9"
# The same denied client, hidden behind something malformed on its left (each passed with 200 before).
HIDDEN = [
    "x, 203.0.113.9",
    "1.2.3.4:5, 203.0.113.9",
    ", 203.0.113.9",
    ("x", "203.0.113.9"),  # two header lines, read as one list
]
# Where the client's address should be, something else: refused whatever the rules say.
NOT_AN_ADDRESS = ["203.0.113.9, x", "203.0.113.9, ", "198.51.100.1, 1.2.3.4:5", "[::1]:8080", ""]
REFUSED = {
    "errors": [
        {
            "message": "X-Forwarded-For: the client's entry (the right-most one not added by a trusted proxy) is not "
            "an IP address; send addresses only, without ports",
            "extensions": {"code": "BAD_REQUEST"},
        }
    ]
}
DOORS = ("POST /graphql", "GET /graphql", "/auth/check", "/auth/check/<path>")


def forwarded(sent: str | tuple[str, ...], token: str) -> CIMultiDict[str]:
    lines = (sent,) if isinstance(sent, str) else sent
    return CIMultiDict([("Authorization", f"Bearer {token}"), *(("X-Forwarded-For", line) for line in lines)])


async def answers(server: Server, token: str, sent: str | tuple[str, ...]) -> dict[str, tuple[int, dict]]:
    """Each door's status and JSON body for a request with ``sent`` as its X-Forwarded-For line(s)."""
    headers = forwarded(sent, token)
    session, url = server.session, server.url
    requests = {
        "POST /graphql": session.post(url + "/graphql", json={"query": VIEWER}, headers=headers),
        "GET /graphql": session.get(url + "/graphql", params={"query": VIEWER}, headers=headers),
        "/auth/check": session.get(url + "/auth/check", headers=headers),  # the fast door
        "/auth/check/<path>": session.get(url + "/auth/check/jobs/1", headers=headers),  # the application's route
    }
    found = {}
    for door, request in requests.items():
        async with request as response:
            text = await response.text()
            found[door] = (response.status, json.loads(text) if text else {})
    return found


def statuses(found: dict[str, tuple[int, dict]]) -> dict[str, int]:
    return {door: status for door, (status, _) in found.items()}


async def assert_refused_as_not_an_address(server: Server, token: str) -> None:
    for sent in NOT_AN_ADDRESS:
        found = await answers(server, token, sent)
        assert statuses(found) == dict.fromkeys(DOORS, 400), sent
        for door, (_, body) in found.items():
            assert body == REFUSED, door


@pytest.mark.parametrize(
    ("rules", "allowed"),
    [
        ([{"name": "documentation", "type": "DENY", "cidrs": ["203.0.113.0/24"]}], "198.51.100.1"),
        ([{"name": "private", "type": "ALLOW", "cidrs": ["10.0.0.0/8", "127.0.0.1/32"]}], "10.1.2.3"),  # + the proxy
    ],
    ids=["deny", "allow-with-the-proxy"],
)
async def test_a_refused_client_cannot_hide_behind_a_malformed_item_on_its_left(proxied, rules, allowed):
    admin = await proxied.bootstrap()
    service = await calls.created(proxied, admin.token, grants=[calls.grant("ACCOUNT_VIEWER")])
    reply = await proxied.gql(SET, {"rules": rules}, token=admin.token, headers=from_address(allowed))
    assert reply.errors == [], reply.body
    # The precondition: the honest header is refused, while the proxy's own address (what a malformed header fell
    # back to) and an allowed client pass.
    assert statuses(await answers(proxied, service.secret, DENIED)) == dict.fromkeys(DOORS, 403)
    assert statuses(await answers(proxied, service.secret, allowed)) == dict.fromkeys(DOORS, 200)
    viewer = await proxied.gql(VIEWER, token=service.secret)
    assert viewer.status == 200 and viewer.data["viewer"]["clientAddress"] == "127.0.0.1"
    # The attack: each hidden form is the refused client still (they answered 200 before).
    for sent in HIDDEN:
        assert statuses(await answers(proxied, service.secret, sent)) == dict.fromkeys(DOORS, 403), sent
    await assert_refused_as_not_an_address(proxied, service.secret)


async def test_the_client_not_the_proxy_goes_to_the_audit_log_and_last_used_from(proxied):
    admin = await proxied.bootstrap()
    service = await calls.created(proxied, admin.token, grants=[calls.grant("ACCOUNT_VIEWER")])
    reply = await proxied.gql(VIEWER, token=service.secret, headers={"X-Forwarded-For": "junk, 198.51.100.7"})
    assert reply.data["viewer"]["clientAddress"] == "198.51.100.7", reply.body
    await proxied.runtime.gate.usage.flush()
    listing = await proxied.gql("{ account { serviceTokens { id lastUsedFrom } } }", token=admin.token)
    assert {t["id"]: t["lastUsedFrom"] for t in listing.data["account"]["serviceTokens"]} == {
        service.id: ["198.51.100.7"]
    }
    create = 'mutation { createProject(name: "p") { name } }'
    assert (await proxied.gql(create, token=admin.token, headers={"X-Forwarded-For": ", 198.51.100.8"})).errors == []
    event = await proxied.pool.fetchrow("SELECT client_addr FROM audit_events WHERE action = 'project.created'")
    assert str(event["client_addr"]) == "198.51.100.8"
    # Refused, nothing is recorded under the proxy's address either.
    reply = await proxied.gql(create, token=admin.token, headers={"X-Forwarded-For": "198.51.100.8, junk"})
    assert reply.status == 400 and reply.codes == ["BAD_REQUEST"]
    assert await proxied.pool.fetchval("SELECT count(*) FROM audit_events WHERE action = 'project.created'") == 1


async def test_the_rate_limit_of_the_client_is_spent_not_the_proxys(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(address=Rate(1, 2), cost=Rate(0, 1))):
        freeze(server)
        admin = await server.bootstrap()
        hidden = {"X-Forwarded-For": "x, 198.51.100.7"}
        for _ in range(2):
            assert (await server.gql(VIEWER, token=admin.token, headers=hidden)).status == 200
        assert (await server.gql(VIEWER, token=admin.token, headers=hidden)).status == 429
        # The proxy's own key and another client's were not spent by those.
        assert (await server.gql(VIEWER, token=admin.token)).status == 200
        assert (await server.gql(VIEWER, token=admin.token, headers=from_address("198.51.100.8"))).status == 200
