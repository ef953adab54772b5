"""What a receiver needs (issue 20): a test event on demand, a signing secret rotated with both secrets valid for
a window, and a user_token.deleted for each personal token that died with its user's deactivation."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from tests.api import service_token_calls as calls
from tests.api import webhook_calls as hooks
from tests.api.test_webhooks import audited
from tests.api.webhook_calls import events_server, receiving
from tests.conftest import Server
from tokengate.core.webhook_events import SIGNATURE_HEADER, verify_signature

PROJECT = "mutation($name: String!) { createProject(name: $name) { id } }"


async def rotate(server: Server, caller: str, webhook_id: str, seconds: int | None = None) -> dict:
    variables = {"id": webhook_id} if seconds is None else {"id": webhook_id, "seconds": seconds}
    reply = await server.gql(hooks.ROTATE_SECRET, variables, token=caller)
    assert reply.errors == [], reply.body
    answer = reply.data["rotateWebhookSecret"]
    server.issued.append(answer["secret"])
    return answer


async def test_a_test_event_goes_to_that_webhook_only_whatever_it_subscribes_to(database, tmp_path):
    async with receiving() as target, receiving() as other, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        webhook = await hooks.created(server, admin.token, target.url, ["service_token.expiring"])
        await hooks.created(server, admin.token, other.url, ["service_token.expiring"])

        reply = await server.gql(hooks.SEND_TEST, {"id": webhook.id}, token=admin.token)
        assert reply.errors == [], reply.body
        delivery = reply.data["sendTestWebhookEvent"]
        assert delivery["eventType"] == "webhook.test" and delivery["status"] == "PENDING"
        (received,) = await target.wait_for(1)
        assert received.signed_by(webhook.secret)
        event = received.event
        assert (
            event["type"] == "webhook.test" and event["id"] == delivery["eventId"] and event["id"].startswith("test-")
        )
        assert event["subject"] == webhook.id and event["data"]["actor"] == f"user:{admin.user_id}"
        assert other.received == []
        logged = await hooks.deliveries(server, admin.token, webhook.id)
        assert [(d["id"], d["status"]) for d in logged] == [(delivery["id"], "DELIVERED")]
        assert await audited(server, admin.token, "webhook.test_sent") == [webhook.id]

        viewer = await calls.created(server, admin.token, grants=[calls.grant("ACCOUNT_VIEWER")])
        reply = await server.gql(hooks.SEND_TEST, {"id": webhook.id}, token=viewer.secret)
        assert reply.codes == ["FORBIDDEN"] and "WEBHOOKS:WRITE" in reply.errors[0]["message"]
        other_account = await server.bootstrap("Other")
        for caller, made_up in ((other_account.token, webhook.id), (admin.token, "whk_unknown")):
            assert (await server.gql(hooks.SEND_TEST, {"id": made_up}, token=caller)).codes == ["NOT_FOUND"]
        await asyncio.sleep(0.5)
        assert len(target.received) == 1 and other.received == []


async def test_a_rotated_secret_signs_beside_the_new_one_for_its_window_then_stops(database, tmp_path):
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        webhook = await hooks.created(server, admin.token, receiver.url, ["project.created"])
        first = webhook.secret
        await server.gql(PROJECT, {"name": "one"}, token=admin.token)
        (before,) = await receiver.wait_for(1)
        assert before.signed_by(first) and before.headers[SIGNATURE_HEADER].count("v1=") == 1

        rotated = await rotate(server, admin.token, webhook.id)  # the default window: a day
        second = rotated["secret"]
        assert second.startswith("whsec_") and second != first
        expires = datetime.fromisoformat(rotated["webhook"]["previousSecretExpiresAt"])
        assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
        await server.gql(PROJECT, {"name": "two"}, token=admin.token)
        _, during = await receiver.wait_for(2)
        header = during.headers[SIGNATURE_HEADER]
        # Stripe's form: t=…,v1=<new>,v1=<previous>; a receiver holding either secret accepts it.
        assert header.count("v1=") == 2 and during.signed_by(second) and during.signed_by(first)
        new_signature = header.split(",")[1]
        assert verify_signature(header.split(",")[0] + "," + new_signature, second, during.body, time.time())

        # Rotating again with no window: only the newest signs; both earlier secrets are refused.
        third = (await rotate(server, admin.token, webhook.id, seconds=0))["secret"]
        listed = (await server.gql("{ account { webhooks { previousSecretExpiresAt } } }", token=admin.token)).data
        assert listed["account"]["webhooks"] == [{"previousSecretExpiresAt": None}]
        await server.gql(PROJECT, {"name": "three"}, token=admin.token)
        *_, after = await receiver.wait_for(3)
        assert after.headers[SIGNATURE_HEADER].count("v1=") == 1 and after.signed_by(third)
        assert not after.signed_by(second) and not after.signed_by(first)
        assert await audited(server, admin.token, "webhook.secret_rotated") == [webhook.id, webhook.id]


async def test_the_previous_secret_stops_signing_when_its_window_ends(database, tmp_path):
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        webhook = await hooks.created(server, admin.token, receiver.url, ["project.created"])
        newer = (await rotate(server, admin.token, webhook.id, seconds=1))["secret"]
        deadline = time.monotonic() + 15
        for n in range(100):  # events until one comes signed by the new secret alone
            await server.gql(PROJECT, {"name": f"p{n}"}, token=admin.token)
            (latest,) = (await receiver.wait_for(n + 1))[-1:]
            if latest.headers[SIGNATURE_HEADER].count("v1=") == 1:
                break
            assert time.monotonic() < deadline, "the previous secret still signs"
            await asyncio.sleep(0.3)
        assert latest.signed_by(newer) and not latest.signed_by(webhook.secret)


async def test_rotation_needs_webhooks_write_and_a_window_of_at_most_a_week(database, tmp_path):
    async with events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        webhook = await hooks.created(server, admin.token, "https://hooks.example.com/x", ["service_token.unused"])
        for bad in (-1, 604_801, 2**31 - 1):
            reply = await server.gql(hooks.ROTATE_SECRET, {"id": webhook.id, "seconds": bad}, token=admin.token)
            assert reply.codes == ["BAD_USER_INPUT"] and "between 0 and 604800" in reply.errors[0]["message"]
        viewer = await calls.created(server, admin.token, grants=[calls.grant("ACCOUNT_VIEWER")])
        reply = await server.gql(hooks.ROTATE_SECRET, {"id": webhook.id}, token=viewer.secret)
        assert reply.codes == ["FORBIDDEN"] and "WEBHOOKS:WRITE" in reply.errors[0]["message"]
        other = await server.bootstrap("Other")
        assert (await server.gql(hooks.ROTATE_SECRET, {"id": webhook.id}, token=other.token)).codes == ["NOT_FOUND"]
        assert await audited(server, admin.token, "webhook.secret_rotated") == []


async def test_deactivating_a_user_sends_user_token_deleted_for_each_personal_token(database, tmp_path):
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        reply = await server.gql(
            'mutation { createUser(email: "ana@example.com", license: DEVELOPER, grants: []) { id } }',
            token=admin.token,
        )
        user_id = reply.data["createUser"]["id"]
        laptop = await server.issue_user_token(user_id, "laptop")
        await server.issue_user_token(user_id, "ci")
        listed = await server.gql(
            "query($id: ID!) { node(id: $id) { ... on User { tokens { id state } } } }", {"id": user_id}, admin.token
        )
        token_ids = sorted(t["id"] for t in listed.data["node"]["tokens"])
        assert len(token_ids) == 2
        await hooks.created(server, admin.token, receiver.url, ["user_token.*", "user.deactivated"])

        reply = await server.gql("mutation($id: ID!) { deactivateUser(id: $id) { id } }", {"id": user_id}, admin.token)
        assert reply.errors == [], reply.body
        await receiver.wait_for(3)
        (deactivated,) = receiver.of_type("user.deactivated")
        assert deactivated.event["data"]["details"] == {"revoked_tokens": 2}
        deleted = receiver.of_type("user_token.deleted")
        assert sorted(r.event["subject"] for r in deleted) == token_ids
        for received in deleted:
            assert received.event["data"]["details"] == {"user_id": user_id, "reason": "user.deactivated"}
        assert (await server.gql(calls.VIEWER, token=laptop)).status == 401  # they did die
        assert sorted(await audited(server, admin.token, "user_token.deleted")) == token_ids
