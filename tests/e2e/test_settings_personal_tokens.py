"""The Personal tokens page in headless Chromium against a real tokengate: the signed-in user's tokens, a new one
with an expiry the token policy bounds (the one-time secret copied and used), deleting one after a
confirmation, the server's BAD_USER_INPUT when an expiry is past the policy, a member who may not read the
policy still making tokens the server bounds, and deleting the token the page is signed in with.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.api.service_token_calls import grant
from tests.api.test_graphql import CREATE_USER
from tests.conftest import Seeded, Server
from tests.e2e.settings_browser import Browser, Page, assert_accessible, expect, open_settings, screenshots, sign_in

PATH = "/settings/personal-tokens"
HEADING = "Personal tokens"
SET_POLICY = """mutation($days: Int!) { setTokenPolicy(input: {requireServiceTokenExpiry: false,
  userTokenMaxLifetimeDays: $days}) { userTokenMaxLifetimeDays } }"""
MY_TOKENS = "{ viewer { user { email } userTokens { id name state expiresAt } } }"


async def my_tokens(server: Server, token: str) -> list[dict]:
    reply = await server.gql(MY_TOKENS, token=token)
    assert reply.errors == [], reply.body
    return reply.data["viewer"]["userTokens"]


async def works(server: Server, secret: str) -> int:
    return (await server.gql(MY_TOKENS, token=secret)).status


def row(page: Page, name: str):
    return page.locator("#token-rows tr", has=page.get_by_text(name, exact=True))


async def new_token(page: Page, name: str, lifetime: str, date: str | None = None):
    await page.get_by_role("button", name="+ New Token").click()
    dialog = page.get_by_role("dialog", name="New personal token")
    await expect(dialog.get_by_label("Name")).to_be_focused()
    await dialog.get_by_label("Name").fill(name)
    await dialog.get_by_label("Expires", exact=True).select_option(label=lifetime)
    if date is not None:
        await dialog.get_by_label("Expiry date").fill(date)
    await dialog.get_by_role("button", name="Create token").click()
    return dialog


async def test_make_copy_use_and_delete_a_personal_token_within_the_policy(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    reply = await server.gql(SET_POLICY, {"days": 30}, token=admin.token)
    assert reply.errors == [], reply.body
    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, admin.token, HEADING)
    await expect(page.locator("#policy-line")).to_have_text(
        "The account's token policy: a new personal token lives at most 30 days."
    )
    (bootstrap_token,) = await my_tokens(server, admin.token)
    await expect(row(page, bootstrap_token["name"])).to_contain_text("This sign-in")

    # The picker offers lifetimes up to the policy's 30 days, and a date.
    await page.get_by_role("button", name="+ New Token").click()
    dialog = page.get_by_role("dialog", name="New personal token")
    lifetime = dialog.get_by_label("Expires", exact=True)
    await expect(lifetime.locator("option")).to_have_text(
        ["in 7 days", "in 30 days, the longest the account allows", "on a date…"]
    )
    await expect(lifetime).to_have_accessible_description(
        re.compile("At most 30 days from now: the account's token policy")
    )
    await screenshots(page, "personal-tokens-new")
    await assert_accessible(page, "personal-tokens-new")
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("button", name="+ New Token")).to_be_focused()

    # 7 days: created, shown once, copied, and it works as the admin.
    before = datetime.now(UTC)
    await new_token(page, "laptop scripts", "in 7 days")
    secret_dialog = page.get_by_role("dialog", name="Token created")
    await expect(secret_dialog).to_contain_text("it cannot be shown again")
    await expect(secret_dialog).to_contain_text("Personal token “laptop scripts” (tgu_")
    await secret_dialog.get_by_role("button", name="Copy").click()
    await expect(secret_dialog.get_by_role("status")).to_have_text("Copied to the clipboard.")
    secret = await page.evaluate("navigator.clipboard.readText()")
    server.issued.append(secret)
    assert re.fullmatch(r"tgu_[0-9A-Za-z]{54}", secret)
    assert await works(server, secret) == 200
    made = next(t for t in await my_tokens(server, admin.token) if t["name"] == "laptop scripts")
    expires = datetime.fromisoformat(made["expiresAt"])
    assert before + timedelta(days=7) - timedelta(minutes=1) <= expires <= datetime.now(UTC) + timedelta(days=7)
    await secret_dialog.get_by_role("button", name="Done, I have stored it").click()
    await expect(page.locator("#secret-value")).to_have_value("")
    assert secret not in await page.content()
    await expect(row(page, "laptop scripts")).to_contain_text("Active")
    shown_expiry = await row(page, "laptop scripts").locator("td[data-label='Expires'] time").get_attribute("datetime")
    assert datetime.fromisoformat(shown_expiry.replace("Z", "+00:00")) == expires

    # A date past the policy: the server refuses it, in its words, and nothing is made.
    too_late = (datetime.now() + timedelta(days=45)).date().isoformat()
    dialog = await new_token(page, "too long", "on a date…", too_late)
    await expect(dialog.locator("#token-form-error")).to_have_text(
        re.compile(r"^ExpiresAt may be at most 30 days from now \(.*\): the account's token policy\.$")
    )
    assert [t["name"] for t in await my_tokens(server, admin.token)] == [bootstrap_token["name"], "laptop scripts"]
    await page.keyboard.press("Escape")

    # Delete after a confirmation that names it: refused at once.
    await row(page, "laptop scripts").get_by_role("button", name="Delete laptop scripts").click()
    confirm = page.get_by_role("dialog", name="Delete “laptop scripts”?")
    await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    await expect(confirm.locator("#delete-self")).to_be_hidden()
    await confirm.get_by_role("button", name="Delete token").click()
    await expect(page.get_by_role("status").first).to_have_text("Token “laptop scripts” deleted.")
    await expect(row(page, "laptop scripts")).to_have_count(0)
    assert await works(server, secret) == 401
    await page.get_by_label("Show deleted tokens").check()
    await expect(row(page, "laptop scripts")).to_contain_text("Deleted")
    await expect(row(page, "laptop scripts").get_by_role("button")).to_have_count(0)
    assert watch.problems == []
    await page.context.close()


async def member_token(server: Server, admin: Seeded, email: str, grants: list[dict]) -> str:
    reply = await server.gql(CREATE_USER, {"email": email, "license": "DEVELOPER", "grants": grants}, admin.token)
    assert reply.errors == [], reply.body
    return await server.issue_user_token(reply.data["createUser"]["id"], "sign-in")


async def test_a_member_who_may_not_read_the_policy_is_bounded_by_the_server(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    assert (await server.gql(SET_POLICY, {"days": 30}, token=admin.token)).errors == []
    token = await member_token(server, admin, "dev@acme.example", [grant("JOB_VIEWER")])
    reply = await server.gql("{ account { tokenPolicy { userTokenMaxLifetimeDays } } }", token=token)
    assert reply.codes == ["FORBIDDEN"]  # the page cannot read the bound: the server applies it
    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, token, HEADING)
    await expect(page.locator("#policy-line")).to_have_text("")

    await page.get_by_role("button", name="+ New Token").click()
    dialog = page.get_by_role("dialog", name="New personal token")
    await expect(dialog.locator("#token-lifetime-hint")).to_have_text(
        re.compile(r"^Your role cannot read the account's token policy \(requires ACCOUNT_SETTINGS:READ\): tokengate")
    )
    await expect(dialog.get_by_label("Expires", exact=True).locator("option", has_text="in 365 days")).to_have_count(1)
    await page.keyboard.press("Escape")
    dialog = await new_token(page, "a year", "in 365 days")
    await expect(dialog.locator("#token-form-error")).to_have_text(
        re.compile(r"^ExpiresAt may be at most 30 days from now \(.*\): the account's token policy\.$")
    )
    await screenshots(page, "personal-tokens-refused")

    # The longest allowed: the server's default, within the policy.
    await dialog.get_by_label("Expires", exact=True).select_option(label="in the longest the account allows")
    await dialog.get_by_label("Name").fill("the longest")
    await dialog.get_by_role("button", name="Create token").click()
    created = page.get_by_role("dialog", name="Token created")
    server.issued.append(await created.get_by_label("Token").input_value())
    await created.get_by_role("button", name="Done, I have stored it").click()
    made = next(t for t in await my_tokens(server, token) if t["name"] == "the longest")
    assert datetime.fromisoformat(made["expiresAt"]) <= datetime.now(UTC) + timedelta(days=30)

    # Deleting the token the page is signed in with signs the page out, saying why.
    (signed_in_with,) = [t for t in await my_tokens(server, token) if t["name"] == "sign-in"]
    await expect(row(page, "sign-in")).to_contain_text("This sign-in")
    await row(page, "sign-in").get_by_role("button", name="Delete sign-in").click()
    confirm = page.get_by_role("dialog", name="Delete “sign-in”?")
    await expect(confirm.locator("#delete-self")).to_be_visible()
    await confirm.get_by_role("button", name="Delete token").click()
    await expect(page.locator("#sign-in-error")).to_have_text(
        "You deleted “sign-in”, the token you were signed in with. Sign in with another personal token."
    )
    assert await page.evaluate("sessionStorage.length") == 0
    assert await works(server, token) == 401 and signed_in_with["state"] == "ACTIVE"
    assert watch.problems == []
    await page.context.close()
