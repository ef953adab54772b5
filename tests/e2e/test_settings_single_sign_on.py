"""The Single sign-on page in headless Chromium against a real tokengate and a real OpenID provider (oidc-provider,
tests/e2e/oidc_provider.py): the redirect URI to register shown before anything is saved; the form saved from the
keyboard (the client secret required the first time, write-only after); the server's refusal in its words; default
grants and group mappings set over GraphQL shown and kept by a save from the form; "sign in again" for a change the
server refuses for want of a recent sign-in; removal through the confirmation dialog; a member who may only read;
axe-core at both widths."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.test_personal_tokens import member
from tests.conftest import Server, make_config, start_server
from tests.e2e.oidc_provider import CALLBACK_PATH, OpenIdProvider, openid_provider
from tests.e2e.settings_browser import Browser, assert_accessible, expect, open_settings, screenshots, sign_in

PATH = "/settings/single-sign-on"
HEADING = "Single sign-on"
READ = """{ account { singleSignOn { issuer clientId emailDomains trustEmailsWithoutVerification enforced
  signInAgainAfterSeconds groupsClaim defaultGrants { permissionSet } groupMappings { group grants { permissionSet } }
} } }"""
CONFIGURE = "mutation($input: SingleSignOnInput!) { configureSingleSignOn(input: $input) { issuer } }"


@pytest.fixture
async def sso_server(database: str, tmp_path: Path) -> AsyncIterator[Server]:
    """A tokengate that allows private networks: the provider is on loopback."""
    config = make_config(tmp_path, webhook_allow_private=True, federation_fetch_timeout_seconds=5.0)
    async for server in start_server(database, config):
        yield server


@pytest.fixture
async def provider(sso_server: Server, tmp_path: Path, node_packages) -> AsyncIterator[OpenIdProvider]:
    async with openid_provider(tmp_path, [sso_server.url + CALLBACK_PATH]) as running:
        sso_server.issued.append(running.client_secret)  # never in a log line
        yield running


async def stored(server: Server, token: str) -> dict | None:
    reply = await server.gql(READ, token=token)
    assert reply.errors == [], reply.body
    return reply.data["account"]["singleSignOn"]


async def test_single_sign_on_is_configured_kept_and_removed_from_the_page(
    sso_server: Server, provider: OpenIdProvider, browser: Browser
):
    server = sso_server
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, admin.token, HEADING)
    await expect(page.locator("#sso-empty")).to_have_text("Single sign-on is not configured.")
    await expect(page.locator("#sso-redirect-uri")).to_have_text(server.url + CALLBACK_PATH)
    await assert_accessible(page, "single-sign-on-empty")

    # The form from the keyboard: each field in order, the checkboxes with Space, Enter on the save button.
    await page.get_by_label("Issuer URL").fill(provider.issuer)
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Client id")).to_be_focused()
    await page.keyboard.type(provider.client_id)
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Client secret")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("E-mail domains")).to_be_focused()
    await page.keyboard.type("Acme.example, acme-corp.example")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Trust e-mails the provider does not mark verified")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Enforce single sign-on")).to_be_focused()
    await page.keyboard.press("Space")
    await page.keyboard.press("Tab")
    window = page.get_by_label("Sign in again after, in seconds")
    await expect(window).to_be_focused()
    await expect(window).to_have_value("86400")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Groups claim")).to_be_focused()
    await expect(page.get_by_label("Groups claim")).to_have_value("groups")
    await page.keyboard.press("Tab")
    save = page.get_by_role("button", name="Save single sign-on")
    await expect(save).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#sso-error")).to_have_text("Client secret: give the one the provider made.")
    assert await stored(server, admin.token) is None

    # The server's refusal, in its words (a plain-http issuer on a public address is not one it takes).
    await page.get_by_label("Client secret").fill(provider.client_secret)
    await page.get_by_label("Issuer URL").fill("ftp://idp.example")
    await save.click()
    await expect(page.locator("#sso-error")).to_have_text("Issuer: must be an https URL.")
    await expect(page.get_by_label("Client secret")).to_have_value("")  # not kept after an attempt
    await assert_accessible(page, "single-sign-on-refused")
    assert await stored(server, admin.token) is None

    await page.get_by_label("Issuer URL").fill(provider.issuer)
    await page.get_by_label("Client secret").fill(provider.client_secret)
    await save.click()
    await expect(page.locator("#status")).to_have_text("Single sign-on saved.")
    saved = await stored(server, admin.token)
    assert saved is not None
    assert saved["issuer"] == provider.issuer and saved["clientId"] == provider.client_id
    assert sorted(saved["emailDomains"]) == ["acme-corp.example", "acme.example"] and saved["enforced"] is True
    assert saved["signInAgainAfterSeconds"] == 86400 and saved["trustEmailsWithoutVerification"] is False
    await expect(page.locator("#current-issuer")).to_have_text(provider.issuer)
    await expect(page.locator("#current-domains")).to_have_text(", ".join(saved["emailDomains"]))
    await expect(page.locator("#sso-sign-in-link")).to_contain_text(f"/sign-in/sso?account={admin.account_id}")
    await expect(page.get_by_label("Client secret")).to_have_value("")  # write-only: never answered back
    assert provider.client_secret not in await page.content()

    # Grants and mappings set over GraphQL: shown on the page, and a save from the form keeps them.
    by_graphql = {
        "issuer": provider.issuer,
        "clientId": provider.client_id,
        "emailDomains": ["acme.example"],
        "defaultGrants": [{"permissionSet": "DEVELOPER"}],
        "groupMappings": [{"group": "analysts", "grants": [{"permissionSet": "ANALYST"}]}],
    }
    reply = await server.gql(CONFIGURE, {"input": by_graphql}, token=admin.token)
    assert reply.errors == [], reply.body
    await page.reload()
    await expect(page.locator("#current-default-grants")).to_contain_text("Developer")
    await expect(page.locator("#current-mappings")).to_contain_text("analysts")
    await expect(page.locator("#current-mappings")).to_contain_text("Analyst")
    await page.get_by_label("Sign in again after, in seconds").fill("3600")
    await save.click()
    await expect(page.locator("#status")).to_have_text("Single sign-on saved.")
    kept = await stored(server, admin.token)
    assert kept is not None and kept["signInAgainAfterSeconds"] == 3600
    assert kept["defaultGrants"] == [{"permissionSet": "DEVELOPER"}]
    assert kept["groupMappings"] == [{"group": "analysts", "grants": [{"permissionSet": "ANALYST"}]}]
    await expect(page.locator("#current-window")).to_have_text("1 h (3600 s)")
    await screenshots(page, "single-sign-on")
    await assert_accessible(page, "single-sign-on")

    # A change refused for want of a recent sign-in (the server's RECENT_SIGN_IN_REQUIRED, answered here by the
    # browser's route so the page's wording is checked whatever signed this page in) says to sign in again.
    async def recent_sign_in_required(route) -> None:
        if "configureSingleSignOn" in (route.request.post_data or ""):
            body = {
                "data": None,
                "errors": [{"message": "sign in again", "extensions": {"code": "RECENT_SIGN_IN_REQUIRED"}}],
            }
            await route.fulfill(status=200, content_type="application/json", body=json.dumps(body))
        else:
            await route.continue_()

    await page.route("**/graphql", recent_sign_in_required)
    await save.click()
    await expect(page.locator("#sso-error")).to_contain_text("Sign in again to do this")
    await expect(page.locator("#sign-in-again")).to_be_visible()  # the shell's link back to this page
    await page.unroute("**/graphql")

    # Remove, from the keyboard: Enter opens the dialog on Cancel, Escape backs out to the button, Tab confirms.
    remove = page.get_by_role("button", name="Remove single sign-on")
    await remove.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Remove single sign-on")
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await assert_accessible(page, "single-sign-on-remove")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(remove).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(dialog.get_by_role("button", name="Remove single sign-on")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#status")).to_have_text("Single sign-on removed.")
    await expect(page.locator("#sso-empty")).to_be_visible()
    assert await stored(server, admin.token) is None
    assert watch.problems == [], watch.problems
    await page.context.close()


async def test_a_member_who_may_only_read_it(sso_server: Server, provider: OpenIdProvider, browser: Browser):
    server = sso_server
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    sso = {
        "issuer": provider.issuer,
        "clientId": provider.client_id,
        "clientSecret": provider.client_secret,
        "emailDomains": ["acme.example"],
    }
    reply = await server.gql(CONFIGURE, {"input": sso}, token=admin.token)
    assert reply.errors == [], reply.body
    _, viewer = await member(server, admin.token, "viewer@acme.example", [{"permissionSet": "ACCOUNT_VIEWER"}])
    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, viewer, HEADING)
    await expect(page.locator("#sso-read-only")).to_contain_text("You can read this configuration but not change it")
    await expect(page.locator("#current-issuer")).to_have_text(provider.issuer)
    await expect(page.locator("#sso-form")).to_be_hidden()
    await expect(page.get_by_role("button", name="Remove single sign-on")).to_be_hidden()
    await assert_accessible(page, "single-sign-on-read-only")
    assert watch.problems == [], watch.problems
    await page.context.close()
