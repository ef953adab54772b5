"""IP restrictions through HTTP: validation, lock-out, refusal on /graphql and /auth/check, disabling."""

from __future__ import annotations

import asyncio
import json

from tests.api.conftest import from_address
from tests.conftest import make_config, start_server, store_service_token
from tokengate.core.policy import Grant

SET = """
mutation($enabled: Boolean!, $rules: [IpRuleInput!]!) {
  setIpRestrictions(enabled: $enabled, rules: $rules) { enabled rules { id name type cidrs } }
}
"""
READ = "{ account { ipRestrictions { enabled rules { id name type cidrs } } } }"
VIEWER = "{ viewer { kind } }"
REFUSED_BODY = {"errors": [{"message": "Forbidden: Access denied", "extensions": {"code": "FORBIDDEN"}}]}
OFFICE = "203.0.113.5"
ELSEWHERE = "198.51.100.1"


def allow(name: str, *cidrs: str) -> dict:
    return {"name": name, "type": "ALLOW", "cidrs": list(cidrs)}


def deny(name: str, *cidrs: str) -> dict:
    return {"name": name, "type": "DENY", "cidrs": list(cidrs)}


async def set_rules(server, token, enabled, rules, address=OFFICE):
    return await server.gql(SET, {"enabled": enabled, "rules": rules}, token=token, headers=from_address(address))


async def auth_check(server, token, address, query=""):
    headers = {"Authorization": f"Bearer {token}", **from_address(address)}
    status, text, _ = await server.get("/auth/check" + query, headers=headers)
    return status, text


async def test_rules_are_saved_normalised_and_read_back(proxied):
    admin = await proxied.bootstrap()
    reply = await set_rules(
        proxied,
        admin.token,
        True,
        [allow("office", " 203.0.113.0/24", "2001:DB8::/32", "198.51.100.7"), deny("guests", "203.0.113.128/25")],
    )
    assert reply.errors == [], reply.body
    saved = reply.data["setIpRestrictions"]
    assert saved["enabled"] is True
    assert [(r["name"], r["type"], r["cidrs"]) for r in saved["rules"]] == [
        ("office", "ALLOW", ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"]),
        ("guests", "DENY", ["203.0.113.128/25"]),
    ]
    assert all(r["id"].startswith("ipr_") for r in saved["rules"])
    read = await proxied.gql(READ, token=admin.token, headers=from_address(OFFICE))
    assert read.data["account"]["ipRestrictions"] == saved
    event = await proxied.pool.fetchrow("SELECT * FROM audit_events WHERE action = 'ip_restrictions.updated'")
    assert event["actor"] == f"user:{admin.user_id}" and event["client_addr"] == OFFICE
    assert json.loads(event["details"])["rules"][1] == {"name": "guests", "type": "DENY", "cidrs": ["203.0.113.128/25"]}


async def test_an_account_without_rules_reads_disabled_and_empty(server):
    admin = await server.bootstrap()
    reply = await server.gql(READ, token=admin.token)
    assert reply.data["account"]["ipRestrictions"] == {"enabled": False, "rules": []}


async def test_invalid_and_duplicate_cidrs_and_bad_names_are_refused(proxied):
    admin = await proxied.bootstrap()
    for rules, message in [
        ([allow("office", "203.0.113.0/33")], "is not a CIDR"),
        ([allow("office", "not-an-ip")], "is not a CIDR"),
        ([allow("office", "")], "is not a CIDR"),
        ([allow("office", "203.0.113.5/24")], "host bits set"),
        ([allow("office", "203.0.113.0/24"), deny("bad", "203.0.113.0/24")], "in the ALLOW rule 'office'"),
        ([allow("office", "2001:db8::/32"), deny("bad", "2001:DB8:0::/32")], "2001:db8::/32 is in the ALLOW"),
        ([allow("", "203.0.113.0/24")], "name must be 1 to 255"),
        ([allow("x" * 256, "203.0.113.0/24")], "name must be 1 to 255"),
        ([allow("office")], "at least one CIDR"),
    ]:
        reply = await set_rules(proxied, admin.token, False, rules)
        assert reply.status == 200
        assert reply.codes == ["BAD_USER_INPUT"], (rules, reply.body)
        assert message in reply.errors[0]["message"], (message, reply.errors)
        assert reply.data is None or reply.data["setIpRestrictions"] is None
    read = await proxied.gql(READ, token=admin.token, headers=from_address(OFFICE))
    assert read.data["account"]["ipRestrictions"] == {"enabled": False, "rules": []}
    assert await proxied.pool.fetchval("SELECT count(*) FROM audit_events WHERE action LIKE 'ip_%'") == 0


async def test_rules_that_would_lock_the_caller_out_are_refused(proxied):
    admin = await proxied.bootstrap()
    for rules in [
        [allow("office", "203.0.113.0/24")],  # the caller is not in the only ALLOW rule
        [deny("everyone", "0.0.0.0/0")],
        [allow("wide", "198.51.0.0/16"), deny("narrow", "198.51.100.0/24")],  # most specific is DENY
    ]:
        reply = await set_rules(proxied, admin.token, True, rules, address=ELSEWHERE)
        assert reply.codes == ["BAD_USER_INPUT"], reply.body
        assert f"would refuse your own address {ELSEWHERE}" in reply.errors[0]["message"]
        # Saved disabled, the same rules are fine: nobody is refused yet.
        assert (await set_rules(proxied, admin.token, False, rules, address=ELSEWHERE)).errors == []
    read = await proxied.gql(READ, token=admin.token, headers=from_address(ELSEWHERE))
    assert read.data["account"]["ipRestrictions"]["enabled"] is False
    assert (await proxied.gql(VIEWER, token=admin.token, headers=from_address(ELSEWHERE))).status == 200


async def test_service_token_from_a_refused_address_gets_403_until_restrictions_are_disabled(proxied):
    admin = await proxied.bootstrap()
    service = await store_service_token(proxied, admin.account_id, [Grant("ACCOUNT_VIEWER")])
    other = await proxied.bootstrap("Other")
    assert (await set_rules(proxied, admin.token, True, [allow("office", "203.0.113.0/24")])).errors == []

    for token in (service, admin.token):  # service and user tokens alike
        refused = await proxied.gql(VIEWER, token=token, headers=from_address(ELSEWHERE))
        assert refused.status == 403 and refused.body == REFUSED_BODY
        status, text = await auth_check(proxied, token, ELSEWHERE)
        assert status == 403 and json.loads(text) == REFUSED_BODY
        status, text = await auth_check(proxied, token, ELSEWHERE, "?resource=ACCOUNT_SETTINGS&access=READ")
        assert status == 403 and json.loads(text) == REFUSED_BODY
        assert (await proxied.gql(VIEWER, token=token, headers=from_address("203.0.113.77"))).status == 200
        assert (await auth_check(proxied, token, "203.0.113.77"))[0] == 200
    # Another account's tokens are not affected.
    assert (await proxied.gql(VIEWER, token=other.token, headers=from_address(ELSEWHERE))).status == 200
    # A bad token is still a 401, never a hint about IP rules.
    assert (await proxied.gql(VIEWER, token="tgs_nope", headers=from_address(ELSEWHERE))).status == 401

    assert (await set_rules(proxied, admin.token, False, [allow("office", "203.0.113.0/24")])).errors == []
    assert (await proxied.gql(VIEWER, token=service, headers=from_address(ELSEWHERE))).status == 200
    assert (await auth_check(proxied, service, ELSEWHERE))[0] == 200


async def test_ipv6_clients_and_several_proxy_hops(proxied):
    admin = await proxied.bootstrap()
    service = await store_service_token(proxied, admin.account_id, [Grant("ACCOUNT_VIEWER")])
    rules = [allow("v6", "2001:db8::/32"), deny("lab", "2001:db8:dead::/48"), allow("office", "203.0.113.0/24")]
    assert (await set_rules(proxied, admin.token, True, rules)).errors == []
    for forwarded_for, status in [
        ("2001:db8:1::5", 200),
        ("2001:db8:dead::5", 403),
        ("2001:db9::5", 403),
        ("6.6.6.6, 203.0.113.9, 127.0.0.5", 200),  # right-most untrusted hop is the client
        ("203.0.113.9, 198.51.100.1", 403),  # a client cannot hide behind a forged left-most entry
        ("203.0.113.9, garbage", 400),  # not an address where the client should be: refused, not the peer's
    ]:
        reply = await proxied.gql(VIEWER, token=service, headers={"X-Forwarded-For": forwarded_for})
        assert reply.status == status, forwarded_for


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(proxied, database, tmp_path):
    admin = await proxied.bootstrap()
    service = await store_service_token(proxied, admin.account_id, [Grant("ACCOUNT_VIEWER")])
    assert (await set_rules(proxied, admin.token, True, [allow("office", "203.0.113.0/24")])).errors == []
    # An instance that trusts no proxy: the socket peer (127.0.0.1) is the client whatever the header says.
    async for direct in start_server(database, make_config(tmp_path)):
        refused = await direct.gql(VIEWER, token=service, headers=from_address(OFFICE))
        assert refused.status == 403 and refused.body == REFUSED_BODY
        reply = await direct.gql(
            SET,
            {"enabled": True, "rules": [allow("office", "203.0.113.0/24")]},
            token=admin.token,
            headers=from_address(OFFICE),
        )
        assert reply.status == 403  # claiming an office address in a header does not get the admin in either


async def test_setting_and_reading_need_ip_restrictions_access(proxied):
    admin = await proxied.bootstrap()
    viewer = await store_service_token(proxied, admin.account_id, [Grant("ACCOUNT_VIEWER")])
    jobs = await store_service_token(proxied, admin.account_id, [Grant("JOB_VIEWER")])
    reply = await set_rules(proxied, viewer, False, [allow("office", "203.0.113.0/24")])
    assert reply.codes == ["FORBIDDEN"] and "requires IP_RESTRICTIONS:WRITE" in reply.errors[0]["message"]
    assert (await proxied.gql(READ, token=viewer, headers=from_address(OFFICE))).errors == []
    reply = await proxied.gql(READ, token=jobs, headers=from_address(OFFICE))
    assert reply.data["account"]["ipRestrictions"] is None and reply.codes == ["FORBIDDEN"]


async def test_another_instance_sees_the_change_within_seconds(proxied, database, tmp_path):
    admin = await proxied.bootstrap()
    service = await store_service_token(proxied, admin.account_id, [Grant("ACCOUNT_VIEWER")])
    async for second in start_server(database, make_config(tmp_path, trusted_proxies=proxied.config.trusted_proxies)):
        assert (await second.gql(VIEWER, token=service, headers=from_address(ELSEWHERE))).status == 200
        assert (await set_rules(proxied, admin.token, True, [allow("office", "203.0.113.0/24")])).errors == []
        assert (await proxied.gql(VIEWER, token=service, headers=from_address(ELSEWHERE))).status == 403
        status = 200
        for _ in range(70):  # the cache's TTL (5 s) bounds how long the other instance may lag
            status = (await second.gql(VIEWER, token=service, headers=from_address(ELSEWHERE))).status
            if status == 403:
                break
            await asyncio.sleep(0.1)
        assert status == 403


async def test_an_ipv4_mapped_cidr_is_stored_and_matched_as_ipv4(proxied):
    admin = await proxied.bootstrap()
    service = await store_service_token(proxied, admin.account_id, [Grant("ACCOUNT_VIEWER")])
    # Saved as typed it was an IPv6 network that no address ever matched (addresses are matched as IPv4).
    reply = await set_rules(
        proxied, admin.token, False, [deny("mapped", "::ffff:198.51.100.1/128", "::ffff:10.0.0.0/104")]
    )
    assert reply.errors == [], reply.body
    assert reply.data["setIpRestrictions"]["rules"][0]["cidrs"] == ["198.51.100.1/32", "10.0.0.0/8"]
    assert (await proxied.gql(VIEWER, token=service, headers=from_address(ELSEWHERE))).status == 200
    reply = await set_rules(
        proxied, admin.token, True, [deny("mapped", "::ffff:198.51.100.1/128", "::ffff:10.0.0.0/104")]
    )
    assert reply.errors == [], reply.body
    for address in (ELSEWHERE, "::ffff:198.51.100.1", "10.1.2.3"):
        assert (await proxied.gql(VIEWER, token=service, headers=from_address(address))).status == 403, address
    assert (await proxied.gql(VIEWER, token=service, headers=from_address(OFFICE))).status == 200
