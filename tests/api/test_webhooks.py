"""Webhooks end to end: a receiver on loopback gets each event once, signed; deliveries survive a receiver that
is down and a restart of tokengate; two instances never send one event twice; the failing mark; the API."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from tests.api import service_token_calls as calls
from tests.api import webhook_calls as hooks
from tests.api.webhook_calls import Receiver, events_server, receiving
from tests.conftest import Server
from tokengate.config import WebhookTiming, parse_secret_keys
from tokengate.core.webhook_events import verify_signature

PROJECT = "mutation($name: String!) { createProject(name: $name) { id } }"


async def test_a_change_is_delivered_once_as_a_signed_cloud_event(database, tmp_path):
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        webhook = await hooks.created(server, admin.token, receiver.url, ["service_token.created"])
        await server.gql(PROJECT, {"name": "not subscribed"}, token=admin.token)
        token = await calls.created(server, admin.token, name="airflow")

        (received,) = await receiver.wait_for(1)
        assert received.signed_by(webhook.secret)
        event = received.event
        assert event["specversion"] == "1.0" and event["type"] == "service_token.created"
        assert event["id"].startswith("audit-") and event["source"] == f"/accounts/{admin.account_id}"
        assert event["subject"] == token.id and event["datacontenttype"] == "application/json"
        assert event["data"]["actor"] == f"user:{admin.user_id}" and event["data"]["source"] == "graphql"
        assert event["data"]["details"]["name"] == "airflow"
        assert received.headers["Content-Type"].startswith("application/cloudevents+json")
        for secret in (token.secret, webhook.secret, admin.token):
            assert secret.encode() not in received.body
        # The signature covers these exact bytes: any change, or a stale timestamp, fails the check.
        header = received.headers["Tokengate-Signature"]
        assert not verify_signature(header, webhook.secret, received.body.replace(b"airflow", b"airflOw"), time.time())
        assert not verify_signature(header, webhook.secret, received.body, time.time() + 600)
        assert not verify_signature(header, "whsec_" + "0" * 32, received.body, time.time())

        (delivery,) = await hooks.deliveries(server, admin.token, webhook.id)
        assert delivery["status"] == "DELIVERED" and delivery["attempts"] == 1 and delivery["responseCode"] == 200
        assert delivery["latencyMs"] >= 0 and delivery["eventId"] == event["id"] and delivery["error"] is None
        assert len(receiver.received) == 1


async def test_a_receiver_that_is_down_gets_the_event_once_it_is_back_across_a_restart(database, tmp_path):
    receiver = Receiver()  # not listening yet: connections are refused
    async with events_server(database, tmp_path) as first:
        admin = await first.bootstrap()
        webhook = await hooks.created(first, admin.token, receiver.url, ["service_token.*"])
        token = await calls.created(first, admin.token)

        async def retried() -> bool:
            (delivery,) = await hooks.deliveries(first, admin.token, webhook.id)
            return delivery["attempts"] >= 2

        await hooks.eventually(retried)
        (delivery,) = await hooks.deliveries(first, admin.token, webhook.id)
        assert delivery["status"] == "PENDING" and delivery["error"] == "could not connect"
        assert delivery["nextAttemptAt"] is not None
    # tokengate is stopped, the receiver comes up, then tokengate starts again on the same database
    await receiver.start()
    try:
        async with events_server(database, tmp_path / "again") as second:
            (received,) = await receiver.wait_for(1, seconds=20)
            assert received.event["subject"] == token.id and received.signed_by(webhook.secret)
            (delivery,) = await hooks.deliveries(second, admin.token, webhook.id)
            assert delivery["status"] == "DELIVERED" and delivery["attempts"] >= 3
            await asyncio.sleep(1.0)
            assert len(receiver.received) == 1
    finally:
        await receiver.stop()


async def test_a_stopping_instance_hands_back_what_it_was_sending(database, tmp_path):
    receiver = Receiver(delay=2.0)  # slow: the first attempt is still in flight when tokengate stops
    await receiver.start()
    try:
        async with events_server(database, tmp_path) as first:
            admin = await first.bootstrap()
            webhook = await hooks.created(first, admin.token, receiver.url, ["project.created"])
            await first.gql(PROJECT, {"name": "one"}, token=admin.token)

            async def in_flight() -> bool:
                return bool(first.runtime.deliveries._in_flight)

            await hooks.eventually(in_flight)
        # Stopped mid-send: the row is pending again and leased to nobody (not until the 60 s lease ends).
        connection = await asyncpg.connect(database)
        try:
            rows = await connection.fetch("SELECT status, locked_until, attempts FROM webhook_deliveries")
        finally:
            await connection.close()
        assert [tuple(row) for row in rows] == [("pending", None, 1)]
        receiver.delay = 0.0
        async with events_server(database, tmp_path / "again") as second:

            async def delivered() -> bool:
                logged = await hooks.deliveries(second, admin.token, webhook.id)
                return logged[0]["status"] == "DELIVERED"

            await hooks.eventually(delivered, seconds=30)  # half the lease: only a handed-back row gets sent
            (delivery,) = await hooks.deliveries(second, admin.token, webhook.id)
            assert delivery["attempts"] == 2
        # At least once: the receiver may have seen the first attempt too; both carry the same event id.
        assert len({r.event["id"] for r in receiver.received}) == 1
    finally:
        await receiver.stop()


async def test_two_instances_never_deliver_one_event_twice(database, tmp_path):
    async with (
        receiving(delay=0.05) as receiver,
        events_server(database, tmp_path / "a") as a,
        events_server(database, tmp_path / "b") as b,
    ):
        admin = await a.bootstrap()
        webhook = await hooks.created(a, admin.token, receiver.url, ["project.created"])
        changes = [server.gql(PROJECT, {"name": f"p{n}"}, token=admin.token) for n in range(20) for server in (a, b)]
        for reply in await asyncio.gather(*changes):
            assert reply.errors == []
        # Both workers are also made to claim at the same moment, over and over, while the others run.
        for _ in range(5):
            await asyncio.gather(a.runtime.deliveries.deliver_due(), b.runtime.deliveries.deliver_due())

        received = await receiver.wait_for(40, seconds=30)
        ids = [r.event["id"] for r in received]
        assert len(ids) == 40 and len(set(ids)) == 40
        assert all(r.signed_by(webhook.secret) for r in received)
        logged = await hooks.deliveries(a, admin.token, webhook.id)
        assert len(logged) == 40 and all(d["status"] == "DELIVERED" and d["attempts"] == 1 for d in logged)


async def test_a_delivery_that_fails_past_the_window_marks_the_webhook_failing_until_the_next_success(
    database, tmp_path
):
    timing = WebhookTiming(poll_seconds=0.1, retry_first_seconds=0.1, retry_max_seconds=0.2, retry_window_seconds=1.0)
    async with receiving(status=500) as receiver, events_server(database, tmp_path, webhook_timing=timing) as server:
        admin = await server.bootstrap()
        webhook = await hooks.created(server, admin.token, receiver.url, ["project.created"])
        await server.gql(PROJECT, {"name": "one"}, token=admin.token)

        async def failed() -> bool:
            return (await hooks.deliveries(server, admin.token, webhook.id))[0]["status"] == "FAILED"

        await hooks.eventually(failed)
        (delivery,) = await hooks.deliveries(server, admin.token, webhook.id)
        assert delivery["responseCode"] == 500 and delivery["error"] == "HTTP 500" and delivery["attempts"] >= 2
        listed = (await server.gql(hooks.LIST, token=admin.token)).data["account"]["webhooks"]
        assert listed[0]["failingSince"] is not None
        assert await audited(server, admin.token, "webhook.failing") == [webhook.id]

        receiver.status = 204
        await server.gql(PROJECT, {"name": "two"}, token=admin.token)

        async def recovered() -> bool:
            listed = (await server.gql(hooks.LIST, token=admin.token)).data["account"]["webhooks"]
            return listed[0]["failingSince"] is None

        await hooks.eventually(recovered)
        assert await audited(server, admin.token, "webhook.recovered") == [webhook.id]
        assert await audited(server, admin.token, "webhook.failing") == [webhook.id]  # once


async def audited(server: Server, caller: str, action: str) -> list[str]:
    reply = await server.gql(
        "{ account { auditLog(first: 100) { edges { node { action targetId } } } } }", token=caller
    )
    return [e["node"]["targetId"] for e in reply.data["account"]["auditLog"]["edges"] if e["node"]["action"] == action]


async def test_redelivery_sends_the_same_event_again_as_a_new_delivery(database, tmp_path):
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        webhook = await hooks.created(server, admin.token, receiver.url, ["project.created"])
        await server.gql(PROJECT, {"name": "one"}, token=admin.token)
        (first,) = await receiver.wait_for(1)
        (delivery,) = await hooks.deliveries(server, admin.token, webhook.id)

        reply = await server.gql(hooks.REDELIVER, {"id": delivery["id"]}, token=admin.token)
        assert reply.errors == [] and reply.data["redeliverWebhookEvent"]["eventId"] == delivery["eventId"]
        assert reply.data["redeliverWebhookEvent"]["id"] != delivery["id"]
        _, second = await receiver.wait_for(2)
        assert second.event == first.event and second.signed_by(webhook.secret)
        assert len(await hooks.deliveries(server, admin.token, webhook.id)) == 2

        other = await server.bootstrap("Other")  # another account's admin: the delivery is not theirs
        reply = await server.gql(hooks.REDELIVER, {"id": delivery["id"]}, token=other.token)
        assert reply.codes == ["NOT_FOUND"]
        for made_up in ("whd_999999", "999999", "abc", "whd_-1", delivery["id"].removeprefix("whd_")):
            assert (await server.gql(hooks.REDELIVER, {"id": made_up}, token=admin.token)).codes == ["NOT_FOUND"]
        # A cursor of this delivery log is no cursor in another account's log.
        page = await server.gql(hooks.DELIVERIES, {"first": 1}, token=admin.token)
        cursor = page.data["account"]["webhooks"][0]["deliveries"]["edges"][0]["cursor"]
        assert (await server.gql(hooks.DELIVERIES, {"first": 1, "after": cursor}, token=admin.token)).errors == []
        await hooks.created(server, other.token, receiver.url, ["service_token.unused"])
        reply = await server.gql(hooks.DELIVERIES, {"first": 1, "after": cursor}, token=other.token)
        assert reply.codes == ["BAD_USER_INPUT"]
        await asyncio.sleep(0.5)
        assert len(receiver.received) == 2


async def test_every_event_of_a_token_lifecycle_carries_no_secret(database, tmp_path):
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        webhook = await hooks.created(server, admin.token, receiver.url, ["*"])
        token = await calls.created(server, admin.token, expiresAt="2999-01-01T00:00:00Z")
        rotated = await calls.rotated(server, admin.token, token.id, revoke=60)
        await server.gql(calls.UPDATE, {"id": rotated.id, "name": "renamed"}, token=admin.token)
        reply = await server.gql('mutation { createUserToken(name: "laptop") { id secret } }', token=admin.token)
        server.issued.append(reply.data["createUserToken"]["secret"])
        assert (await server.gql(calls.REPORT, {"token": rotated.secret})).data == {"reportLeakedToken": True}
        await server.gql(calls.DELETE, {"id": token.id}, token=admin.token)

        types = [r.event["type"] for r in await receiver.wait_for(7)]
        assert sorted(types) == sorted(
            [
                "webhook.created",
                "service_token.created",
                "service_token.rotated",
                "service_token.updated",
                "user_token.created",
                "service_token.leak_reported",
                "service_token.deleted",
            ]
        )
        for received in receiver.received:
            assert received.signed_by(webhook.secret)
            for secret in server.issued:
                assert secret.encode() not in received.body


async def test_webhooks_need_webhooks_read_and_write(database, tmp_path):
    async with events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        viewer = await calls.created(server, admin.token, grants=[calls.grant("ACCOUNT_VIEWER")])
        writer = await calls.created(server, admin.token, grants=[calls.grant("DEVELOPER")])
        url = "https://hooks.example.com/tokengate"
        # The viewer's token is valid and reaches the resolver: it may read the account, not its webhooks.
        reply = await server.gql("{ account { id webhooks { id } } }", token=viewer.secret)
        assert reply.data["account"]["id"] == admin.account_id and reply.data["account"]["webhooks"] is None
        assert reply.codes == ["FORBIDDEN"] and "WEBHOOKS:READ" in reply.errors[0]["message"]
        reply = await hooks.create(server, viewer.secret, url, ["service_token.expiring"])
        assert reply.codes == ["FORBIDDEN"] and "WEBHOOKS:WRITE" in reply.errors[0]["message"]
        assert (await server.gql(hooks.LIST, token=admin.token)).data["account"]["webhooks"] == []
        # DEVELOPER gives WEBHOOKS:WRITE (and MEMBERS:READ, what reading user events needs).
        made = await hooks.created(server, writer.secret, url, ["user.deactivated"], "alerts")
        assert made.secret.startswith("whsec_") and len(made.secret) == 38
        listed = (await server.gql(hooks.LIST, token=admin.token)).data["account"]["webhooks"]
        assert listed == [made.webhook] and made.webhook["description"] == "alerts"

        # (Events this test never makes: nothing is sent to the example host.)
        events = ["service_token.expiring", "service_token.expired"]
        reply = await server.gql(hooks.UPDATE, {"id": made.id, "events": events}, token=admin.token)
        assert reply.data["updateWebhook"]["events"] == events
        assert reply.data["updateWebhook"]["description"] == "alerts"
        other = await server.bootstrap("Other")
        for mutation in (hooks.UPDATE, hooks.DELETE):
            assert (await server.gql(mutation, {"id": made.id}, token=other.token)).codes == ["NOT_FOUND"]
        assert (await server.gql(hooks.DELETE, {"id": made.id}, token=viewer.secret)).codes == ["FORBIDDEN"]
        assert (await server.gql(hooks.DELETE, {"id": made.id}, token=admin.token)).errors == []
        assert (await server.gql(hooks.LIST, token=admin.token)).data["account"]["webhooks"] == []
        for action in ("webhook.created", "webhook.updated", "webhook.deleted"):
            assert await audited(server, admin.token, action) == [made.id]


async def test_bad_event_names_and_urls_are_refused(database, tmp_path):
    async with events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        url = "https://hooks.example.com/x"
        for events in ([], ["Service_Token.Created"], ["service_token"], ["service_*"], ["a" * 300 + ".b"]):
            reply = await hooks.create(server, admin.token, url, events)
            assert reply.codes == ["BAD_USER_INPUT"], events
        for bad in ("ftp://hooks.example.com/", "https://user:pw@hooks.example.com/", "not a url", "https://"):
            assert (await hooks.create(server, admin.token, bad, ["*"])).codes == ["BAD_USER_INPUT"], bad
        reply = await hooks.create(server, admin.token, url, ["service_token.expiring"], "d" * 1001)
        assert reply.codes == ["BAD_USER_INPUT"]
        assert (await server.gql(hooks.LIST, token=admin.token)).data["account"]["webhooks"] == []


async def test_signing_secrets_move_to_the_newest_server_key_during_a_key_rotation(database, tmp_path):
    old, new = "old-key-0123456789-abcdefghijklmnopqrstuvwxyz", "new-key-0123456789-abcdefghijklmnopqrstuvwxyz"
    async with receiving() as receiver:
        async with events_server(database, tmp_path / "1", secret_keys=parse_secret_keys(old)) as before:
            admin = await before.bootstrap()
            webhook = await hooks.created(before, admin.token, receiver.url, ["project.created"])
            # A rotated-out secret still signing (rotateWebhookSecret's window) moves with the current one.
            reply = await before.gql(hooks.ROTATE_SECRET, {"id": webhook.id}, token=admin.token)
            rotated = reply.data["rotateWebhookSecret"]["secret"]
            before.issued.append(rotated)
        async with events_server(database, tmp_path / "2", secret_keys=parse_secret_keys(f"{new},{old}")) as during:
            await during.runtime.notices.run_once()  # the round that re-seals what is under the older key
        async with events_server(database, tmp_path / "3", secret_keys=parse_secret_keys(new)) as after:
            admin_token = await after.issue_user_token(admin.user_id)
            await after.gql(PROJECT, {"name": "after the old key is gone"}, token=admin_token)
            (received,) = await receiver.wait_for(1)
            assert received.signed_by(rotated) and received.signed_by(webhook.secret)
