"""One id form (contract, 2026-12-06): events, audit details, actor strings and filters print every id as
GraphQL prints it (``stk_…``); the bare form printed before is still accepted where it was, events recorded
before print prefixed too, and ``X-Tokengate-Principal`` keeps its documented form.

Precondition seen on f8bbdb3: ``service_token.rotated`` carried ``details.new_token_id`` bare, ``data.actor``
was ``service_token:<bare id> (tgs_…)``, and ``auditLog(filter: {actor: "service_token:stk_<id>"})`` with the
id GraphQL prints answered ``[]``.
"""

from __future__ import annotations

import re
from typing import Any

from tests.api import service_token_calls as calls
from tests.api import webhook_calls as hooks
from tests.api.test_auth_check import check
from tests.api.webhook_calls import events_server, receiving
from tests.conftest import Server
from tests.unit.test_webhook_verifiers import python_verifier
from tokengate.store import webhooks as webhook_store
from tokengate.store.audit import AuditEntry

AUDIT = """query($filter: AuditLogFilter) { account { auditLog(first: 100, filter: $filter) {
  edges { node { id action actor targetId details } } } } }"""
NODE = "query($id: ID!) { node(id: $id) { ... on AuditEvent { actor targetId details } } }"


async def audit_log(server: Server, token: str, only: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    reply = await server.gql(AUDIT, {"filter": only}, token=token)
    assert reply.errors == [], reply.body
    return [edge["node"] for edge in reply.data["account"]["auditLog"]["edges"]]


def bare_keys_in(text: str, *keys: str) -> list[str]:
    """Each place one of these token keys appears without the stk_ prefix GraphQL prints."""
    return [key for key in keys for match in re.finditer(re.escape(key), text) if text[: match.start()][-4:] != "stk_"]


async def test_a_rotation_by_a_service_token_says_every_id_as_graphql_prints_it(database, tmp_path):
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        webhook = await hooks.created(server, admin.token, receiver.url, ["service_token.rotated"])
        terraform = await calls.created(server, admin.token, name="terraform", grants=[calls.grant("ACCOUNT_ADMIN")])
        ci = await calls.created(server, terraform.secret, name="ci")
        rotated = await calls.rotated(server, terraform.secret, ci.id)
        listed_actor = f"service_token:{terraform.id} ({terraform.secret[:8]}…)"
        assert terraform.id.startswith("stk_") and rotated.id.startswith("stk_")  # what GraphQL printed

        # The event: subject, target, the new token's id and the actor, each as GraphQL printed them.
        (received,) = await receiver.wait_for(1, "service_token.rotated")
        assert python_verifier()(received.headers["Tokengate-Signature"], received.body, webhook.secret)
        event = received.event
        assert event["subject"] == ci.id and event["data"]["target_id"] == ci.id
        assert event["data"]["details"]["new_token_id"] == rotated.id
        assert event["data"]["actor"] == listed_actor
        body = received.body.decode("utf-8")
        assert bare_keys_in(body, terraform.key, ci.key, rotated.key) == []

        # The audit log says the same.
        entries = await audit_log(server, admin.token, {"action": "service_token.rotated"})
        (entry,) = entries
        assert entry["actor"] == listed_actor and entry["targetId"] == ci.id
        assert entry["details"]["new_token_id"] == rotated.id
        reply = await server.gql(NODE, {"id": entry["id"]}, token=admin.token)
        assert reply.data["node"] == {"actor": listed_actor, "targetId": ci.id, "details": entry["details"]}

        # The filter finds the token's changes by the id GraphQL prints, by the bare id accepted before, and
        # by the listed actor (its display prefix ignored), and nothing by a near miss.
        by_terraform = [e for e in await audit_log(server, admin.token) if e["actor"] == listed_actor]
        assert [e["action"] for e in by_terraform] == ["service_token.rotated", "service_token.created"]
        for given in (
            f"service_token:{terraform.id}",
            f"service_token:{terraform.key}",
            listed_actor,
            f"service_token:{terraform.key} ({terraform.secret[:8]}…)",
        ):
            assert await audit_log(server, admin.token, {"actor": given}) == by_terraform, given
        for near in (f"service_token:{terraform.id[:-1]}", f"service_token:utk_{terraform.key}", terraform.id):
            assert await audit_log(server, admin.token, {"actor": near}) == [], near
        for target in (ci.id, ci.key):  # targetId took both forms before and still does
            assert [e["action"] for e in await audit_log(server, admin.token, {"targetId": target})] == [
                "service_token.rotated",
                "service_token.created",
            ]

        # X-Tokengate-Principal keeps its documented form: gateways parse it.
        status, _, headers = await check(server, token=terraform.secret)
        assert status == 200 and headers["X-Tokengate-Principal"] == f"service_token:{terraform.key}"


async def test_the_audit_table_keeps_row_keys_and_events_recorded_before_print_prefixed(database, tmp_path):
    """The table holds row keys (history is append-only and not rewritten): rows written by the previous
    version, bare ids in details included, are sent and read with every id prefixed."""
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        webhook = await hooks.created(server, admin.token, receiver.url, ["service_token.rotated", "webhook.failing"])
        terraform = await calls.created(server, admin.token, name="terraform", grants=[calls.grant("ACCOUNT_ADMIN")])
        ci = await calls.created(server, admin.token, name="ci")
        rotated = await calls.created(server, admin.token, name="ci")  # stands in for the rotation's new token
        # Rows as the previous version recorded them, through the store's own writer.
        async with server.pool.acquire() as conn:
            for entry in (
                AuditEntry(
                    admin.account_id,
                    "service_token.rotated",
                    f"service_token:{terraform.key} ({terraform.secret[:8]}…)",
                    "graphql",
                    "192.0.2.1",
                    ci.key,
                    {"new_token_id": rotated.key, "from_format": "v2"},
                ),
                AuditEntry(
                    admin.account_id,
                    "webhook.failing",
                    "tokengate",
                    "system",
                    None,
                    webhook.id,
                    {"delivery_id": "41", "event_id": "audit-40", "attempts": 3},
                ),
            ):
                assert await webhook_store.record_audit_with_outbox(conn, entry) == 1
        stored = await server.pool.fetchval(
            "SELECT details->>'new_token_id' FROM audit_events WHERE action = $1", "service_token.rotated"
        )
        assert stored == rotated.key  # the table holds the row key

        listed_actor = f"service_token:{terraform.id} ({terraform.secret[:8]}…)"
        events = {r.event["type"]: r.event for r in await receiver.wait_for(2)}
        assert events["service_token.rotated"]["data"]["actor"] == listed_actor
        assert events["service_token.rotated"]["data"]["details"]["new_token_id"] == rotated.id
        assert events["service_token.rotated"]["subject"] == ci.id
        assert events["webhook.failing"]["data"]["details"]["delivery_id"] == "whd_41"

        (entry,) = await audit_log(server, admin.token, {"actor": f"service_token:{terraform.id}"})
        assert entry["actor"] == listed_actor and entry["details"]["new_token_id"] == rotated.id
        assert await audit_log(server, admin.token, {"actor": f"service_token:{terraform.key}"}) == [entry]
        (failing,) = await audit_log(server, admin.token, {"action": "webhook.failing"})
        assert failing["details"] == {"delivery_id": "whd_41", "event_id": "audit-40", "attempts": 3}


async def test_a_redelivery_names_its_deliveries_as_the_delivery_log_does(database, tmp_path):
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        webhook = await hooks.created(server, admin.token, receiver.url, ["project.created", "webhook.redelivered"])
        await server.gql('mutation { createProject(name: "one") { id } }', token=admin.token)
        await receiver.wait_for(1, "project.created")
        (delivery,) = await hooks.deliveries(server, admin.token, webhook.id)
        reply = await server.gql(hooks.REDELIVER, {"id": delivery["id"]}, token=admin.token)
        assert reply.errors == [], reply.body
        again = reply.data["redeliverWebhookEvent"]
        assert delivery["id"].startswith("whd_") and again["id"].startswith("whd_")  # as GraphQL prints them
        printed = {"delivery_id": delivery["id"], "new_delivery_id": again["id"], "event_id": delivery["eventId"]}
        (received,) = await receiver.wait_for(1, "webhook.redelivered")
        assert received.event["data"]["details"] == printed
        (entry,) = await audit_log(server, admin.token, {"action": "webhook.redelivered"})
        assert entry["details"] == printed and entry["targetId"] == webhook.id
