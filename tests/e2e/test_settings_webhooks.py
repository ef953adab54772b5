"""The Webhooks page in headless Chromium against a real tokengate that delivers to a receiver on loopback
(TOKENGATE_WEBHOOK_ALLOW_PRIVATE, fast retries): an endpoint made with its events, its signing secret shown
once and proven to be the one deliveries are signed with, the delivery log with each delivery's status and
response (a delivered one, one the receiver refuses), a redelivery (the same event id sent again, at the top
of the log), an invalid URL explained next to the field in the server's words, editing the events and
deleting the endpoint after a confirmation. Every change is checked through the API or at the receiver.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.api import service_token_calls as calls
from tests.api import webhook_calls as webhooks
from tests.api.test_graphql import CREATE_USER
from tests.conftest import Server
from tests.e2e.settings_browser import Browser, Page, assert_accessible, expect, open_settings, screenshots, sign_in

PATH = "/settings/webhooks"
HEADING = "Webhooks"


def card(page: Page, url: str):
    return page.locator("article.webhook", has=page.get_by_role("heading", name=url, exact=True))


async def listed(server: Server, token: str) -> list[dict]:
    reply = await server.gql(webhooks.LIST, token=token)
    assert reply.errors == [], reply.body
    return reply.data["account"]["webhooks"]


async def deliveries(server: Server, token: str) -> list[dict]:
    reply = await server.gql(webhooks.DELIVERIES, {"first": 20}, token=token)
    assert reply.errors == [], reply.body
    (hook,) = reply.data["account"]["webhooks"]
    return [edge["node"] for edge in hook["deliveries"]["edges"]]


async def settled(server: Server, token: str, count: int, seconds: float = 15.0) -> list[dict]:
    """The log once it holds ``count`` deliveries, none of them PENDING with no attempt yet."""
    for _ in range(int(seconds / 0.1)):
        found = await deliveries(server, token)
        if len(found) >= count and all(d["attempts"] > 0 for d in found):
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"the delivery log did not reach {count} attempted deliveries: {found}")


async def test_make_a_webhook_see_its_deliveries_redeliver_edit_and_delete(
    database: str, tmp_path: Path, browser: Browser
):
    async with webhooks.events_server(database, tmp_path) as server, webhooks.receiving() as receiver:
        admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
        page, watch = await open_settings(browser, server, PATH)
        await sign_in(page, admin.token, HEADING)
        await expect(page.locator("#empty-list")).to_be_visible()

        # An invalid URL: refused by the server, its words next to the field, nothing made.
        await page.get_by_role("button", name="+ New webhook").click()
        form = page.get_by_role("dialog", name="New webhook")
        url_field = form.get_by_label("Endpoint URL")
        await expect(url_field).to_be_focused()
        await url_field.fill("hooks.example.com/tokengate")
        await form.get_by_role("button", name="Create webhook").click()
        await expect(form.locator("#webhook-url-error")).to_have_text("The URL must be an https URL.")
        await expect(url_field).to_have_attribute("aria-invalid", "true")
        assert await listed(server, admin.token) == []

        # Made with two families of events; the secret is shown once and copied.
        await url_field.fill(receiver.url)
        await form.get_by_label("Description (optional)").fill("security team")
        await expect(form.get_by_label("Service tokens service_token.*")).to_be_checked()  # the default
        await form.get_by_label("Personal tokens user_token.*").check()
        await screenshots(page, "webhooks-new")
        await assert_accessible(page, "webhooks-new")
        await form.get_by_role("button", name="Create webhook").click()
        secret_dialog = page.get_by_role("dialog", name="Webhook created")
        await expect(secret_dialog).to_contain_text("Copy this signing secret now: it cannot be shown again.")
        await expect(secret_dialog).to_contain_text(f"Signing secret of the webhook to {receiver.url}")
        await expect(secret_dialog.get_by_role("button", name="Copy")).to_be_focused()
        await secret_dialog.get_by_role("button", name="Copy").click()
        await expect(secret_dialog.get_by_role("status")).to_have_text("Copied to the clipboard.")
        secret = await page.evaluate("navigator.clipboard.readText()")
        server.issued.append(secret)
        assert secret.startswith("whsec_")
        # Done forgets it as the dialog closes: read in the same task as the click, before the dialog's late
        # `close` event (a read right after Done found the secret still there).
        done = secret_dialog.get_by_role("button", name="Done, I have stored it")
        left = await done.evaluate("(done) => { done.click(); return document.getElementById('secret-value').value; }")
        assert left == ""
        await expect(secret_dialog).to_be_hidden()
        await expect(page.locator("#secret-value")).to_have_value("")
        assert secret not in await page.content()
        (made,) = await listed(server, admin.token)
        assert made["url"] == receiver.url and made["description"] == "security team"
        assert sorted(made["events"]) == ["service_token.*", "user_token.*"]
        hook = card(page, receiver.url)
        await expect(hook).to_contain_text("security team")
        await expect(hook.locator(".events li")).to_have_text(["service_token.*", "user_token.*"])

        # An event it subscribes to arrives at the receiver, signed with the secret the dialog showed.
        await calls.created(server, admin.token, "airflow", grants=[calls.grant("JOB_RUNNER")])
        (created_event,) = await receiver.wait_for(1, "service_token.created")
        assert created_event.signed_by(secret)
        await settled(server, admin.token, 1)

        # The delivery log: opened from the keyboard, the delivery with its status and response.
        toggle = hook.get_by_role("button", name=f"Delivery log of {receiver.url}", exact=True)
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await toggle.focus()
        await page.keyboard.press("Enter")
        toggle = hook.get_by_role("button", name=f"Hide delivery log of {receiver.url}", exact=True)
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        await expect(toggle).to_be_focused()  # the card was drawn again around the button
        log_rows = hook.locator(".deliveries tbody tr")
        await expect(log_rows).to_have_count(1)
        await expect(log_rows.first.locator("td[data-label='Event']")).to_contain_text("service_token.created")
        await expect(log_rows.first.locator("td[data-label='Status']")).to_have_text("Delivered")
        await expect(log_rows.first.locator("td[data-label='Response']")).to_have_text("200")

        # A delivery the receiver refuses: shown pending, with the response and the next try.
        receiver.status = 500
        await calls.created(server, admin.token, "dbt ci", grants=[calls.grant("JOB_RUNNER")])
        await receiver.wait_for(2, "service_token.created")
        await settled(server, admin.token, 2)
        await hook.get_by_role("button", name=f"Refresh the delivery log of {receiver.url}").click()
        await expect(log_rows).to_have_count(2)
        refused = log_rows.first
        await expect(refused.locator("td[data-label='Status']")).to_contain_text(re.compile(r"^Pending\s*next try"))
        await expect(refused.locator("td[data-label='Response']")).to_have_text("500")
        await screenshots(page, "webhooks-log")
        await assert_accessible(page, "webhooks-log")

        # Redeliver the first event, from the keyboard: the same event id again, as a new delivery at the top.
        receiver.status = 200
        first_event_id = created_event.event["id"]
        redeliver = log_rows.nth(1).get_by_role(
            "button", name=re.compile(rf"^Redeliver service_token.created \({first_event_id}\)$")
        )
        await redeliver.focus()
        await page.keyboard.press("Enter")
        await expect(page.locator("#status")).to_have_text("Sent again as a new delivery; it is at the top of the log.")
        for _ in range(150):
            again = [r for r in receiver.received if r.event["id"] == first_event_id]
            if len(again) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(again) == 2 and again[1].body == again[0].body and again[1].signed_by(secret)
        await expect(log_rows.first.locator("td[data-label='Event']")).to_contain_text(first_event_id)
        await expect(log_rows.first.locator("td[data-label='Status']")).to_have_text("Delivered", timeout=15_000)
        log = await deliveries(server, admin.token)
        assert log[0]["eventId"] == first_event_id and log[0]["status"] == "DELIVERED"

        # Edit: every event instead of the two families.
        await hook.get_by_role("button", name=f"Edit {receiver.url}").click()
        form = page.get_by_role("dialog", name="Edit webhook")
        await expect(form.get_by_label("Endpoint URL")).to_have_value(receiver.url)
        await expect(form.get_by_label("Personal tokens user_token.*")).to_be_checked()
        await form.get_by_label("Service tokens service_token.*").uncheck()
        await form.get_by_label("Personal tokens user_token.*").uncheck()
        await form.get_by_label("Every event *").check()
        await form.get_by_role("button", name="Save changes").click()
        await expect(page.locator("#status")).to_have_text(f"Webhook to {receiver.url} saved.")
        await expect(form).to_be_hidden()
        (edited,) = await listed(server, admin.token)
        assert edited["events"] == ["*"] and edited["description"] == "security team"
        await expect(hook.locator(".events li")).to_have_text(["*"])

        # Delete after a confirmation that names it: the endpoint is gone, and nothing more is sent.
        await hook.get_by_role("button", name=f"Delete {receiver.url}").click()
        confirm = page.get_by_role("dialog", name="Delete this webhook?")
        await expect(confirm).to_contain_text(f"The webhook to {receiver.url} (security team), created")
        await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
        await confirm.get_by_role("button", name="Delete webhook").click()
        await expect(page.locator("#status")).to_have_text(f"Webhook to {receiver.url} deleted.")
        await expect(hook).to_have_count(0)
        await expect(page.locator("#empty-list")).to_be_visible()
        assert await listed(server, admin.token) == []
        # Nothing more is sent: no delivery is left to send (one already on its way may still land), and an
        # event after the deletion makes none (the outbox row is written with the event, or never).
        await calls.created(server, admin.token, "after delete", grants=[calls.grant("JOB_RUNNER")])
        outbox = "SELECT count(*) FROM webhook_deliveries WHERE account_id = $1"
        assert await server.pool.fetchval(outbox, admin.account_id) == 0
        assert watch.problems == []
        await page.context.close()


async def test_a_member_without_webhook_access_is_told_why_and_shown_nothing(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    hook = {"url": "https://hooks.example.com/tokengate", "events": ["legacy_token.*"], "description": "security team"}
    reply = await server.gql(webhooks.CREATE, hook, token=admin.token)
    assert reply.errors == [], reply.body
    server.issued.append(reply.data["createWebhook"]["secret"])
    reply = await server.gql(
        CREATE_USER,
        {"email": "jobs@acme.example", "license": "DEVELOPER", "grants": [calls.grant("JOB_VIEWER")]},
        admin.token,
    )
    assert reply.errors == [], reply.body
    viewer = await server.issue_user_token(reply.data["createUser"]["id"], "sign-in")
    assert (await server.gql(webhooks.LIST, token=viewer)).codes == ["FORBIDDEN"]  # the API refuses it too

    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, viewer, HEADING)
    await expect(page.locator("#page-alert")).to_have_text(
        "Your account role doesn't allow viewing webhooks: Requires WEBHOOKS:READ."
    )
    await expect(page.locator("#webhook-list article")).to_have_count(0)
    await expect(page.get_by_text("hooks.example.com")).to_have_count(0)
    await expect(page.locator("#empty-list")).to_be_hidden()  # not "no webhooks yet": they are not shown
    assert watch.problems == []
    await page.context.close()
