"""Webhooks show only what their owner may read (issue 20): checked when a webhook subscribes, and again, against
the owner's grants of the moment, before every delivery. A DEVELOPER on one project holds WEBHOOKS:WRITE but may
not read the audit log, the IP restrictions, the token policy or the service tokens: its webhooks do not receive
them either, nor the actors' client addresses."""

from __future__ import annotations

import asyncio

from tests.api import service_token_calls as calls
from tests.api import webhook_calls as hooks
from tests.api.conftest import LOOPBACK, from_address
from tests.api.webhook_calls import Receiver, events_server, receiving
from tests.conftest import Seeded, Server

PROJECT = "mutation($name: String!) { createProject(name: $name) { id } }"
IP_RULES = """mutation { setIpRestrictions(enabled: true,
  rules: [{name: "blocked", type: DENY, cidrs: ["192.0.2.0/24"]}]) { enabled } }"""
TOKEN_POLICY = """mutation { setTokenPolicy(input: {requireServiceTokenExpiry: false,
  userTokenMaxLifetimeDays: 60}) { userTokenMaxLifetimeDays } }"""
CREATE_USER = """mutation($email: String!) {
  createUser(email: $email, license: DEVELOPER, grants: [{permissionSet: JOB_VIEWER}]) { id } }"""
SET_GRANTS = "mutation($id: ID!, $grants: [GrantInput!]!) { setServiceTokenGrants(id: $id, grants: $grants) { id } }"
READS = """{ account { auditLog(first: 1) { edges { cursor } } ipRestrictions { enabled }
  tokenPolicy { userTokenMaxLifetimeDays } serviceTokens { id } } }"""
HIDDEN = ("ip_restrictions.updated", "token_policy.updated", "service_token.created", "service_token.updated")


async def project(server: Server, caller: str, name: str) -> str:
    reply = await server.gql(PROJECT, {"name": name}, token=caller)
    assert reply.errors == [], reply.body
    return reply.data["createProject"]["id"]


async def developer_on_one_project(server: Server, admin: Seeded) -> tuple[str, calls.Created]:
    p1 = await project(server, admin.token, "p1")
    return p1, await calls.created(server, admin.token, "dev", grants=[calls.grant("DEVELOPER", p1)])


async def every_hidden_change(server: Server, admin: Seeded) -> None:
    """What the audit log shows an ACCOUNT_ADMIN, made from a client address of the documentation range."""
    at = from_address("198.51.100.23")
    for mutation, variables in ((IP_RULES, None), (TOKEN_POLICY, None), (CREATE_USER, {"email": "eve@example.com"})):
        reply = await server.gql(mutation, variables, token=admin.token, headers=at)
        assert reply.errors == [], reply.body
    reply = await server.gql(
        calls.CREATE, {"input": {"name": "etl", "grants": [calls.grant("JOB_ADMIN")]}}, admin.token
    )
    calls.remember(server, reply, "createServiceToken")
    await project(server, admin.token, "p2")


def types(receiver: Receiver) -> set[str]:
    return {r.event["type"] for r in receiver.received}


async def test_a_developer_on_one_project_receives_only_what_it_may_read(database, tmp_path):
    async with (
        receiving() as everything,
        receiving() as developers,
        events_server(database, tmp_path, trusted_proxies=LOOPBACK) as server,
    ):
        admin = await server.bootstrap()
        _, developer = await developer_on_one_project(server, admin)
        # Precondition: the token may manage webhooks, and may not read the audit log, the IP restrictions, the
        # token policy or the service tokens.
        reply = await server.gql(READS, token=developer.secret)
        assert sorted(reply.codes) == ["FORBIDDEN"] * 4, reply.body
        assert reply.data["account"] == {
            "auditLog": None,
            "ipRestrictions": None,
            "tokenPolicy": None,
            "serviceTokens": None,
        }
        mine = await hooks.created(server, developer.secret, developers.url, ["*"])
        await hooks.created(server, admin.token, everything.url, ["*"])

        # Explicitly, what it may not read is refused, naming the event and what reading it needs.
        for events, needed in (
            (["ip_restrictions.updated"], "IP_RESTRICTIONS:READ"),
            (["user.*", "token_policy.updated"], "ACCOUNT_SETTINGS:READ"),
            (["service_token.*"], "SERVICE_TOKENS:READ"),
            (["service_token.expiring"], "SERVICE_TOKENS:READ"),
            (["some_later.action"], "AUDIT_LOG:READ"),
        ):
            reply = await hooks.create(server, developer.secret, developers.url, events)
            assert reply.codes == ["FORBIDDEN"], events
            assert events[-1] in reply.errors[0]["message"] and needed in reply.errors[0]["message"]
            reply = await server.gql(hooks.UPDATE, {"id": mine.id, "events": events}, token=developer.secret)
            assert reply.codes == ["FORBIDDEN"], events
        for events in (["user.*"], ["webhook.created", "project.created"]):  # MEMBERS, WEBHOOKS, PROJECTS on p1
            reply = await hooks.create(server, developer.secret, developers.url, events)
            assert reply.errors == [], reply.body
            await server.gql(hooks.DELETE, {"id": reply.data["createWebhook"]["webhook"]["id"]}, token=admin.token)

        await every_hidden_change(server, admin)

        # The account admin's webhook receives every change, addresses included.
        await everything.wait_for(1, "service_token.created")
        assert set(HIDDEN[:3]) | {"user.created", "project.created"} <= types(everything)
        (rules,) = everything.of_type("ip_restrictions.updated")
        assert rules.event["data"]["details"]["rules"][0]["cidrs"] == ["192.0.2.0/24"]
        assert rules.event["data"]["client_address"] == "198.51.100.23"

        # The developer's `*` webhook: what MEMBERS:READ shows, without the address; none of the rest.
        (created_user,) = await developers.wait_for(1, "user.created")
        assert created_user.event["data"]["client_address"] is None and created_user.signed_by(mine.secret)
        await asyncio.sleep(1.0)
        assert not set(HIDDEN) & types(developers), types(developers)
        assert "project.created" not in types(developers)  # p2 is not the developer's project
        assert all(r.event["data"]["client_address"] is None for r in developers.received)

        # The delivery log says what was not sent, and why.
        async def all_settled() -> bool:
            logged = await hooks.deliveries(server, admin.token, mine.id)
            return all(d["status"] != "PENDING" for d in logged)

        await hooks.eventually(all_settled)
        skipped = {
            d["eventType"]: d for d in await hooks.deliveries(server, admin.token, mine.id) if d["status"] == "SKIPPED"
        }
        assert set(HIDDEN[:3]) | {"project.created"} <= set(skipped)
        assert "IP_RESTRICTIONS:READ" in skipped["ip_restrictions.updated"]["error"]
        assert (
            skipped["token_policy.updated"]["attempts"] == 0 and skipped["token_policy.updated"]["deliveredAt"] is None
        )


async def test_an_owner_whose_grants_shrink_after_subscribing_no_longer_receives(database, tmp_path):
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        p1 = await project(server, admin.token, "p1")
        viewer_and_developer = [calls.grant("ACCOUNT_VIEWER"), calls.grant("DEVELOPER", p1)]
        owner = await calls.created(server, admin.token, "security feed", grants=viewer_and_developer)
        webhook = await hooks.created(server, owner.secret, receiver.url, ["ip_restrictions.updated"])
        # Precondition: while it may read the IP restrictions, their changes reach its receiver.
        assert (await server.gql(IP_RULES, token=admin.token)).errors == []
        (first,) = await receiver.wait_for(1)
        assert first.event["data"]["details"]["rules"][0]["cidrs"] == ["192.0.2.0/24"]

        reply = await server.gql(SET_GRANTS, {"id": owner.id, "grants": [calls.grant("DEVELOPER", p1)]}, admin.token)
        assert reply.errors == [], reply.body
        reply = await server.gql(
            "mutation { setIpRestrictions(enabled: false, rules: []) { enabled } }", token=admin.token
        )
        assert reply.errors == [], reply.body

        async def skipped() -> bool:
            return (await hooks.deliveries(server, admin.token, webhook.id))[0]["status"] == "SKIPPED"

        await hooks.eventually(skipped)
        latest = (await hooks.deliveries(server, admin.token, webhook.id))[0]
        assert "may no longer read ip_restrictions.updated" in latest["error"]
        await asyncio.sleep(0.5)
        assert len(receiver.received) == 1

        # Redelivering the first event now is refused at delivery the same way.
        first_delivery = (await hooks.deliveries(server, admin.token, webhook.id))[-1]
        assert (await server.gql(hooks.REDELIVER, {"id": first_delivery["id"]}, token=admin.token)).errors == []
        await hooks.eventually(skipped)
        await asyncio.sleep(0.5)
        assert len(receiver.received) == 1


async def test_a_deleted_owner_and_a_deactivated_one_receive_nothing(database, tmp_path):
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        owner = await calls.created(server, admin.token, "feed", grants=[calls.grant("ACCOUNT_ADMIN")])
        by_token = await hooks.created(server, owner.secret, receiver.url, ["project.created"])
        reply = await server.gql(
            'mutation { createUser(email: "ops@example.com", license: DEVELOPER, grants: [{permissionSet: ACCOUNT_ADMIN}]) { id } }',
            token=admin.token,
        )
        user_id = reply.data["createUser"]["id"]
        by_user = await hooks.created(server, await server.issue_user_token(user_id), receiver.url, ["project.created"])
        await project(server, admin.token, "before")
        await receiver.wait_for(2)
        assert {r.signed_by(by_token.secret) or r.signed_by(by_user.secret) for r in receiver.received} == {True}

        assert (await server.gql(calls.DELETE, {"id": owner.id}, token=admin.token)).errors == []
        reply = await server.gql("mutation($id: ID!) { deactivateUser(id: $id) { id } }", {"id": user_id}, admin.token)
        assert reply.errors == [], reply.body
        await project(server, admin.token, "after")

        for webhook, why in ((by_token, "a service token, is deleted"), (by_user, "a user, is deactivated")):

            async def skipped(webhook: hooks.CreatedWebhook = webhook) -> bool:
                return (await hooks.deliveries(server, admin.token, webhook.id))[0]["status"] == "SKIPPED"

            await hooks.eventually(skipped)
            assert why in (await hooks.deliveries(server, admin.token, webhook.id))[0]["error"]
        assert len(receiver.received) == 2


async def test_whoever_re_points_a_webhook_becomes_its_owner(database, tmp_path):
    async with receiving() as admins, receiving() as developers, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        _, developer = await developer_on_one_project(server, admin)
        everything = await hooks.created(server, admin.token, admins.url, ["*"])
        explicit = await hooks.created(server, admin.token, admins.url, ["ip_restrictions.updated"])
        # Precondition: the developer may change the account admin's webhooks (WEBHOOKS:WRITE).
        reply = await server.gql(hooks.UPDATE, {"id": everything.id, "description": "mine now"}, developer.secret)
        assert reply.errors == [], reply.body
        # Re-pointing a webhook to events the developer may not read is refused; `*` is re-pointed, and then
        # carries what the developer may read only.
        reply = await server.gql(hooks.UPDATE, {"id": explicit.id, "url": developers.url}, token=developer.secret)
        assert reply.codes == ["FORBIDDEN"] and "ip_restrictions.updated" in reply.errors[0]["message"]
        reply = await server.gql(hooks.UPDATE, {"id": everything.id, "url": developers.url}, token=developer.secret)
        assert reply.errors == [], reply.body

        assert (await server.gql(IP_RULES, token=admin.token)).errors == []
        await server.gql(CREATE_USER, {"email": "new@example.com"}, token=admin.token)
        await developers.wait_for(1, "user.created")
        await admins.wait_for(1, "ip_restrictions.updated")  # the explicit one, still the admin's
        assert "ip_restrictions.updated" not in types(developers)
