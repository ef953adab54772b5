"""The Token policy page in headless Chromium against a real tokengate: the three settings with what they mean,
saved together and then in force (a service token without an expiry is refused), the server's BAD_USER_INPUT
for a lifetime out of range with nothing changed, a member who may only read the policy, and one who may not.
"""

from __future__ import annotations

from tests.api import service_token_calls as calls
from tests.api.service_token_calls import grant
from tests.api.test_graphql import CREATE_USER
from tests.conftest import Seeded, Server
from tests.e2e.settings_browser import Browser, assert_accessible, expect, open_settings, screenshots, sign_in

PATH = "/settings/token-policy"
HEADING = "Token policy"
POLICY = (
    "{ account { tokenPolicy { requireServiceTokenExpiry serviceTokenMaxLifetimeDays userTokenMaxLifetimeDays } } }"
)
DEFAULT = {"requireServiceTokenExpiry": False, "serviceTokenMaxLifetimeDays": None, "userTokenMaxLifetimeDays": 90}


async def policy(server: Server, admin: Seeded) -> dict:
    reply = await server.gql(POLICY, token=admin.token)
    assert reply.errors == [], reply.body
    return reply.data["account"]["tokenPolicy"]


async def member_token(server: Server, admin: Seeded, email: str, set_key: str) -> str:
    reply = await server.gql(
        CREATE_USER, {"email": email, "license": "DEVELOPER", "grants": [grant(set_key)]}, admin.token
    )
    assert reply.errors == [], reply.body
    return await server.issue_user_token(reply.data["createUser"]["id"])


async def test_the_three_settings_are_saved_and_hold(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, admin.token, HEADING)
    required = page.get_by_label("Service tokens must expire")
    service_max = page.get_by_label("Longest lifetime of a service token, in days")
    user_max = page.get_by_label("Longest lifetime of a personal token, in days")
    await expect(required).not_to_be_checked()
    await expect(service_max).to_have_value("")
    await expect(user_max).to_have_value("90")
    # What each one means is its description.
    await expect(required).to_have_accessible_description(
        "Creating a service token then needs an expiry date. Rotating one without a date gives the new token the old "
        "one's remaining lifetime; a token that never expired needs a date to be rotated."
    )
    await expect(service_max).to_have_accessible_description(
        "A new or rotated service token may expire at most this many days later. Leave it empty for no limit (a token "
        "may then work until it is deleted). 1 to 36500."
    )

    # From the keyboard alone: Space ticks, Tab goes down the form, Enter saves.
    await required.focus()
    await page.keyboard.press("Space")
    await expect(required).to_be_checked()
    await page.keyboard.press("Tab")
    await expect(service_max).to_be_focused()
    await page.keyboard.type("365")
    await page.keyboard.press("Tab")
    await expect(user_max).to_be_focused()
    await page.keyboard.press("ControlOrMeta+A")
    await page.keyboard.type("30")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status").first).to_have_text(
        "Token policy saved. It applies to tokens created or rotated from now on."
    )
    assert await policy(server, admin) == {
        "requireServiceTokenExpiry": True,
        "serviceTokenMaxLifetimeDays": 365,
        "userTokenMaxLifetimeDays": 30,
    }
    reply = await calls.create(server, admin.token, "no expiry")
    assert reply.codes == ["BAD_USER_INPUT"] and "requires an expiry" in reply.errors[0]["message"]

    # Out of range: the server's words, and the policy as it was.
    await user_max.fill("40000")
    await page.get_by_role("button", name="Save policy").click()
    await expect(page.locator("#policy-error")).to_have_text("UserTokenMaxLifetimeDays must be 1 to 36500.")
    await screenshots(page, "token-policy-refused")
    await assert_accessible(page, "token-policy-refused")
    assert (await policy(server, admin))["userTokenMaxLifetimeDays"] == 30
    await page.get_by_role("button", name="Undo changes").click()
    await expect(user_max).to_have_value("30")

    # Back to no limit for service tokens: an empty field.
    await service_max.fill("")
    await required.uncheck()
    await page.get_by_role("button", name="Save policy").click()
    await expect(page.get_by_role("status").first).to_have_text(
        "Token policy saved. It applies to tokens created or rotated from now on."
    )
    assert await policy(server, admin) == {**DEFAULT, "userTokenMaxLifetimeDays": 30}
    assert watch.problems == []
    await page.context.close()


async def test_members_who_may_only_read_it_or_not_even_that(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    viewer = await member_token(server, admin, "viewer@acme.example", "ACCOUNT_VIEWER")
    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, viewer, HEADING)
    await expect(page.locator("#policy-read-only")).to_have_text(
        "You can read this policy but not change it: your permission sets do not give ACCOUNT_SETTINGS:WRITE "
        "(no grant gives ACCOUNT_SETTINGS:WRITE)."
    )
    await expect(page.get_by_label("Longest lifetime of a personal token, in days")).to_have_value("90")
    await expect(page.get_by_label("Longest lifetime of a personal token, in days")).to_be_disabled()
    await expect(page.get_by_role("button", name="Save policy")).to_be_disabled()
    await page.get_by_role("button", name="Sign out").click()

    outsider = await member_token(server, admin, "jobs@acme.example", "JOB_VIEWER")
    await sign_in(page, outsider, HEADING)
    await expect(page.locator("#page-alert")).to_have_text(
        "Your account role doesn't allow viewing the account's token policy: Requires ACCOUNT_SETTINGS:READ."
    )
    await expect(page.locator("#policy-form")).to_be_hidden()
    assert await policy(server, admin) == DEFAULT
    assert watch.problems == []
    await page.context.close()
