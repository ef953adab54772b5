"""The Service Tokens settings page driven in headless Chromium against a real tokengate on loopback.

An admin signs in with a personal token, creates a project-scoped token, copies the one-time secret and
uses it at /auth/check, rotates it, deletes the old one; a Developer-plan account sees which sets its plan
refuses and the server's PLAN_RESTRICTED message; IP restrictions, role and sign-in errors read as words.
Screenshots go to e2e-artifacts/settings-*.png. Fixtures are local to this file (the debian chromium,
never a downloaded browser).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from tests.api.test_graphql import create_project
from tests.api.test_legacy_tokens import import_legacy
from tests.conftest import Server, make_config, start_server
from tests.e2e.settings_browser import PageWatch, open_settings
from tests.e2e.settings_browser import sign_in as sign_in_as

playwright_api = pytest.importorskip("playwright.async_api")
Browser = playwright_api.Browser
Page = playwright_api.Page
expect = playwright_api.expect

# The browser (Debian chromium, loopback only) and the artifacts folder come from tests/e2e/conftest.py.
ARTIFACTS = Path(__file__).resolve().parents[2] / "e2e-artifacts"
PAGE_PATH = "/settings/service-tokens"
PLAN_MESSAGE = (
    "Not available on this account's plan: The DEVELOPER plan does not allow JOB_ADMIN on service tokens; "
    "it allows: SEMANTIC_LAYER_ONLY."
)


async def open_page(browser: Browser, server: Server, width: int = 1280, **options) -> tuple[Page, PageWatch]:
    return await open_settings(browser, server, PAGE_PATH, width, **options)


async def sign_in(page: Page, token: str) -> None:
    await sign_in_as(page, token, "Service tokens")


def row(page: Page, token_id: str):
    return page.locator(f'tr[data-token-id="{token_id}"]')


async def auth_check(server: Server, secret: str, project: str) -> int:
    status, _, _ = await server.get(
        f"/auth/check?resource=JOBS&access=WRITE&projectId={project}", headers={"Authorization": f"Bearer {secret}"}
    )
    return status


async def test_create_copy_use_rotate_and_delete_a_token(database: str, server: Server, browser: Browser):
    ARTIFACTS.mkdir(exist_ok=True)
    admin = await server.bootstrap("Acme", "ENTERPRISE")
    warehouse = await create_project(server, admin.token, "warehouse")
    marketing = await create_project(server, admin.token, "marketing")
    legacy = import_legacy(
        database,
        *("--account-id", admin.account_id, "--name", "old airflow", "--created-at", "2022-03-01T12:00:00Z"),
        *("--grant", f"job_admin:{marketing}"),
    )
    server.issued.append(legacy["token"])
    page, watch = await open_page(browser, server)

    await sign_in(page, admin.token)
    assert await page.evaluate("sessionStorage.getItem('tokengate.settings.token')") == admin.token
    assert await page.evaluate("localStorage.length") == 0
    assert await page.context.cookies() == []
    await expect(page.get_by_text("Account Acme · Enterprise plan")).to_be_visible()
    old_row = row(page, legacy["id"])
    await expect(old_row.get_by_text("Rotation recommended")).to_be_visible()
    await expect(
        old_row.get_by_role("button", name="Rotate now: old airflow (created on or before 18 July 2023)")
    ).to_be_visible()

    # + New Token: a project-level set for one chosen project.
    await page.get_by_role("button", name="+ New Token").click()
    form = page.get_by_role("dialog", name="New service token")
    await expect(form).to_be_visible()
    await expect(form.get_by_label("Name")).to_be_focused()
    await form.get_by_label("Name").fill("airflow")
    await form.get_by_role("checkbox", name="Job Admin").check()
    job_admin_scope = form.get_by_role("group", name="Projects for Job Admin")
    await job_admin_scope.get_by_role("radio", name="Chosen projects").check()
    await job_admin_scope.get_by_role("checkbox", name="warehouse").check()
    await form.get_by_role("button", name="Create token").click()

    secret_dialog = page.get_by_role("dialog", name="Token created")
    await expect(secret_dialog).to_be_visible()
    await expect(secret_dialog).to_contain_text("it cannot be shown again")
    await expect(secret_dialog).to_contain_text("Service token “airflow” (tgs_")
    await page.screenshot(path=str(ARTIFACTS / "settings-secret-dialog.png"))
    await secret_dialog.get_by_role("button", name="Copy").click()
    await expect(secret_dialog.get_by_role("status")).to_have_text("Copied to the clipboard.")
    secret = await page.evaluate("navigator.clipboard.readText()")
    server.issued.append(secret)
    assert re.fullmatch(r"tgs_[0-9A-Za-z]{54}", secret)
    assert await secret_dialog.get_by_label("Token").input_value() == secret

    # The copied secret is a working token, for the chosen project only.
    assert await auth_check(server, secret, warehouse) == 200
    assert await auth_check(server, secret, marketing) == 403

    # Closing the dialog forgets the secret: not in the DOM, not in any storage.
    await secret_dialog.get_by_role("button", name="Done, I have stored it").click()
    await expect(secret_dialog).to_be_hidden()
    await expect(page.get_by_role("button", name="+ New Token")).to_be_focused()
    await expect(page.locator("#secret-value")).to_have_value("")
    assert secret not in await page.content()
    storage = await page.evaluate("JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")
    assert secret not in storage

    new_row = page.locator("tr", has_text="airflow").filter(has_not_text="old airflow")
    await expect(new_row).to_have_count(1)
    await expect(new_row).to_contain_text("Job Admin · warehouse")
    await expect(new_row).to_contain_text("Never")
    await expect(new_row).to_contain_text("Active")
    first_id = await new_row.get_attribute("data-token-id")
    await page.screenshot(path=str(ARTIFACTS / "settings-list.png"), full_page=True)
    await page.set_viewport_size({"width": 360, "height": 800})
    await expect(new_row.get_by_role("button", name="Delete airflow")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await page.screenshot(path=str(ARTIFACTS / "settings-list-360px.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})

    # Rotate (on a phone-sized screen), keeping the old token for an hour; the new secret is shown once.
    await page.set_viewport_size({"width": 360, "height": 800})
    await row(page, first_id).get_by_role("button", name="Rotate airflow").click()
    rotate_dialog = page.get_by_role("dialog", name="Rotate “airflow”")
    await expect(rotate_dialog).to_be_visible()
    await rotate_dialog.get_by_label("Keep the old token valid").select_option(label="for 1 hour")
    await rotate_dialog.get_by_role("button", name="Rotate token").click()
    rotated_dialog = page.get_by_role("dialog", name="Token rotated")
    await expect(rotated_dialog).to_contain_text("The old token stops working in 1 hour.")
    rotated_secret = await rotated_dialog.get_by_label("Token").input_value()
    server.issued.append(rotated_secret)
    assert rotated_secret != secret
    await page.screenshot(path=str(ARTIFACTS / "settings-rotated-secret-360px.png"))
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.keyboard.press("Escape")  # Escape closes the dialog and wipes the secret as well
    await expect(rotated_dialog).to_be_hidden()
    await expect(page.locator("#secret-value")).to_have_value("")
    assert rotated_secret not in await page.content()
    assert await auth_check(server, rotated_secret, warehouse) == 200
    assert await auth_check(server, secret, warehouse) == 200
    await expect(row(page, first_id)).to_contain_text("expires")

    # Delete the old one with its trash icon; the confirmation names it.
    await row(page, first_id).get_by_role("button", name="Delete airflow").click()
    confirm = page.get_by_role("dialog", name="Delete “airflow”?")
    await expect(confirm).to_be_visible()
    await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    await page.screenshot(path=str(ARTIFACTS / "settings-delete-confirmation.png"))
    await confirm.get_by_role("button", name="Delete token").click()
    await expect(confirm).to_be_hidden()
    await expect(page.get_by_role("status").first).to_have_text("Token “airflow” deleted.")
    await expect(row(page, first_id)).to_have_count(0)
    assert await auth_check(server, secret, warehouse) == 401
    assert await auth_check(server, rotated_secret, warehouse) == 200

    # Edit the new one: a new name and one more project, effective from the next request.
    await new_row.get_by_role("button", name="Edit airflow").click()
    edit = page.get_by_role("dialog", name="Edit “airflow”")
    await expect(edit.get_by_role("checkbox", name="Job Admin")).to_be_checked()
    await edit.get_by_label("Name").fill("airflow prod")
    await edit.get_by_role("group", name="Projects for Job Admin").get_by_role("checkbox", name="marketing").check()
    await edit.get_by_role("button", name="Save changes").click()
    await expect(edit).to_be_hidden()
    renamed = page.locator("tr", has_text="airflow prod")
    await expect(renamed).to_contain_text("Job Admin · warehouse, marketing")
    assert await auth_check(server, rotated_secret, marketing) == 200

    await page.get_by_label("Deleted", exact=True).check()
    await expect(row(page, first_id)).to_contain_text("Deleted")
    await expect(row(page, first_id).get_by_role("button")).to_have_count(0)

    # The legacy token's "Rotate now" turns it into a v2 token.
    await old_row.get_by_role("button", name="Rotate now: old airflow (created on or before 18 July 2023)").click()
    await page.get_by_role("dialog", name="Rotate “old airflow”").get_by_role("button", name="Rotate token").click()
    legacy_rotated = page.get_by_role("dialog", name="Token rotated")
    await expect(legacy_rotated).to_contain_text("The old token keeps working until you delete it")
    server.issued.append(await legacy_rotated.get_by_label("Token").input_value())
    await legacy_rotated.get_by_role("button", name="Done, I have stored it").click()
    await expect(page.locator("tr", has_text="old airflow")).to_have_count(2)

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Personal token")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    assert watch.problems == []
    await page.context.close()


async def test_developer_plan_shows_what_it_refuses_and_the_servers_plan_message(server: Server, browser: Browser):
    ARTIFACTS.mkdir(exist_ok=True)
    admin = await server.bootstrap("Solo", "DEVELOPER")
    await create_project(server, admin.token, "first")
    page, watch = await open_page(browser, server)
    await sign_in(page, admin.token)
    await expect(page.get_by_text("Account Solo · Developer plan")).to_be_visible()

    # The form offers only what the plan allows; the rest is listed disabled, saying why.
    # Keyboard only: Enter opens the dialog with focus in it, Escape closes it and focus goes back.
    new_token = page.get_by_role("button", name="+ New Token")
    await new_token.focus()
    await page.keyboard.press("Enter")
    form = page.get_by_role("dialog", name="New service token")
    await expect(form.get_by_label("Name")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(form).to_be_hidden()
    await expect(new_token).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(form).to_contain_text("The Developer plan allows 1 of 21 permission sets on service tokens.")
    await expect(form.get_by_role("checkbox", name="Semantic Layer Only")).to_be_enabled()
    await form.get_by_text("Not available on the Developer plan (20)").click()
    job_admin = form.get_by_role("checkbox", name="Job Admin")
    await expect(job_admin).to_be_disabled()
    await expect(job_admin).to_have_accessible_description("Project level · Not available on the Developer plan")
    await page.screenshot(path=str(ARTIFACTS / "settings-developer-plan-form.png"))

    # A page loaded before the plan changed would still offer Job Admin: the server refuses it and the
    # page shows the server's message, which names the plan and what it allows.
    await job_admin.evaluate("box => { box.disabled = false; }")
    await job_admin.check()
    await form.get_by_label("Name").fill("nightly jobs")
    await form.get_by_role("button", name="Create token").click()
    await expect(form.locator("#token-form-error")).to_have_text(PLAN_MESSAGE)
    await expect(form).to_be_visible()
    await page.screenshot(path=str(ARTIFACTS / "settings-plan-restricted.png"))

    # What the plan allows is accepted.
    await job_admin.uncheck()
    await form.get_by_role("checkbox", name="Semantic Layer Only").check()
    await form.get_by_label("Expires (optional)").fill("2099-12-31T18:00")
    await form.get_by_role("button", name="Create token").click()
    created = page.get_by_role("dialog", name="Token created")
    server.issued.append(await created.get_by_label("Token").input_value())
    await created.get_by_role("button", name="Done, I have stored it").click()
    listed = page.locator("tr", has_text="nightly jobs")
    await expect(listed).to_contain_text("Semantic Layer Only · all projects")
    await expect(listed.locator("time[datetime^='2099-12-31']")).to_have_count(1)
    assert watch.problems == []
    await page.context.close()


async def test_refusals_read_as_words(database: str, tmp_path: Path, browser: Browser):
    # The server believes X-Forwarded-For from loopback, so the browser can come from another address.
    config = make_config(tmp_path, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    async for server in start_server(database, config):
        admin = await server.bootstrap("Acme", "ENTERPRISE")

        # An unknown token: back to the sign-in form, saying so.
        page, watch = await open_page(browser, server)
        await page.get_by_label("Personal token").fill("tgu_" + "0" * 54)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#sign-in-error")).to_have_text(
            "This token was not accepted: it is unknown, expired or deleted. "
            "Check that you pasted the whole personal token."
        )
        assert await page.evaluate("sessionStorage.length") == 0
        await page.screenshot(path=str(ARTIFACTS / "settings-sign-in-refused.png"))

        # A member who may read the tokens but not manage them.
        reply = await server.gql(
            CREATE_USER,
            {"email": "viewer@acme.example", "grants": [{"permissionSet": "ACCOUNT_VIEWER"}]},
            token=admin.token,
        )
        assert reply.errors == [], reply.body
        viewer_token = await user_token(server, reply.data["createUser"]["id"])
        await sign_in(page, viewer_token)
        await page.get_by_role("button", name="+ New Token").click()
        form = page.get_by_role("dialog", name="New service token")
        await form.get_by_label("Name").fill("not mine to make")
        await form.get_by_role("checkbox", name="Account Viewer").check()
        await form.get_by_role("button", name="Create token").click()
        await expect(form.locator("#token-form-error")).to_have_text(
            "Your account role doesn't allow managing service tokens: Requires SERVICE_TOKENS:WRITE."
        )
        await page.keyboard.press("Escape")

        # A reload keeps the tab signed in; once the token is revoked the page asks to sign in again.
        await page.reload()
        await expect(page.get_by_role("heading", name="Service tokens", exact=True)).to_be_visible()
        reply = await server.gql(REPORT_LEAK, {"token": viewer_token})
        assert reply.data == {"reportLeakedToken": True}, reply.body
        # click, not check: the sign-out the refusal brings resets the filter, maybe before check() reads it back
        await page.get_by_label("Deleted", exact=True).click()
        await expect(page.locator("#sign-in-error")).to_have_text(
            "Your sign-in is no longer valid (the token is unknown, expired or deleted). Please sign in again."
        )
        assert await page.evaluate("sessionStorage.length") == 0
        assert watch.problems == []
        await page.context.close()

        # The admin works from 203.0.113.9 until the account allows only 127.0.0.1.
        page, watch = await open_page(browser, server, extra_http_headers={"X-Forwarded-For": "203.0.113.9"})
        await sign_in(page, admin.token)
        rules = [{"name": "office", "type": "ALLOW", "cidrs": ["127.0.0.1/32"]}]
        reply = await server.gql(SET_IP_RULES, {"rules": rules}, token=admin.token)
        assert reply.errors == [], reply.body
        await page.get_by_label("Deleted", exact=True).check()
        await expect(page.locator("#page-alert")).to_have_text(
            "Your network address is not allowed by this account's IP restrictions. "
            "Connect from an allowed network, or ask an account admin to allow your address."
        )
        await page.screenshot(path=str(ARTIFACTS / "settings-ip-refused.png"))
        assert watch.problems == []
        await page.context.close()


CREATE_USER = """mutation($email: String!, $grants: [GrantInput!]!) {
  createUser(email: $email, license: DEVELOPER, grants: $grants) { id } }"""
REPORT_LEAK = "mutation($token: String!) { reportLeakedToken(token: $token) }"
SET_IP_RULES = """mutation($rules: [IpRuleInput!]!) {
  setIpRestrictions(enabled: true, rules: $rules) { enabled } }"""


async def user_token(server: Server, user_id: str) -> str:
    """A personal token for an existing user, as `tokengate issue-user-token` makes one."""
    return await server.issue_user_token(user_id, "e2e")
