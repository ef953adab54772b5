"""``viewer.clientAddress``: the caller's address as tokengate sees it, the same address IP restrictions and
their lock-out rule judge (the IP restrictions page shows it and predicts the lock-out from it)."""

from __future__ import annotations

import pytest

from tests.api.conftest import from_address
from tests.conftest import store_service_token
from tokengate.core.policy import Grant

ADDRESS = "{ viewer { kind clientAddress } }"
SET_RULES = """mutation($rules: [IpRuleInput!]!) {
  setIpRestrictions(enabled: true, rules: $rules) { enabled } }"""


@pytest.mark.parametrize(
    ("sent", "seen"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:DB8:0:0::1", "2001:db8::1"),  # canonical text, as rules are written
        ("::ffff:198.51.100.7", "198.51.100.7"),  # an IPv4-mapped address is that IPv4 address
        ("10.0.0.1, 198.51.100.8", "198.51.100.8"),  # the right-most hop that is not a trusted proxy
    ],
)
async def test_the_address_behind_a_trusted_proxy(proxied, sent, seen):
    admin = await proxied.bootstrap()
    reply = await proxied.gql(ADDRESS, token=admin.token, headers=from_address(sent))
    assert reply.errors == [], reply.body
    assert reply.data["viewer"] == {"kind": "USER", "clientAddress": seen}


async def test_an_untrusted_forwarded_for_is_not_believed_and_service_tokens_see_it_too(server):
    admin = await server.bootstrap()
    service = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    for token, kind in ((admin.token, "USER"), (service, "SERVICE_TOKEN")):
        reply = await server.gql(ADDRESS, token=token, headers=from_address("203.0.113.1"))
        assert reply.data["viewer"] == {"kind": kind, "clientAddress": "127.0.0.1"}, reply.body


async def test_it_is_the_address_the_lock_out_rule_judges(proxied):
    admin = await proxied.bootstrap()
    office = from_address("198.51.100.7")
    seen = (await proxied.gql(ADDRESS, token=admin.token, headers=office)).data["viewer"]["clientAddress"]
    # Rules that leave the shown address out are refused, naming it ...
    elsewhere = [{"name": "elsewhere", "type": "ALLOW", "cidrs": ["192.0.2.0/24"]}]
    reply = await proxied.gql(SET_RULES, {"rules": elsewhere}, token=admin.token, headers=office)
    assert reply.codes == ["BAD_USER_INPUT"]
    assert f"would refuse your own address {seen}:" in reply.errors[0]["message"]
    # ... and rules allowing exactly the shown address are accepted.
    just_me = [{"name": "me", "type": "ALLOW", "cidrs": [f"{seen}/32"]}]
    reply = await proxied.gql(SET_RULES, {"rules": just_me}, token=admin.token, headers=office)
    assert reply.errors == [] and reply.data == {"setIpRestrictions": {"enabled": True}}, reply.body
    reply = await proxied.gql(ADDRESS, token=admin.token, headers=from_address("198.51.100.8"))
    assert reply.status == 403  # from the next address over, the rules hold
