"""The account settings shell in headless Chromium: one navigation for every page, one sign-in that carries
from page to page, keyboard use, a screenshot of every page at 1280 and 360 px, and no serious or critical
axe-core violation on any of them.

The browser comes from 203.0.113.9 (X-Forwarded-For, believed from loopback), so the IP restrictions page
shows a realistic address; the account has a project, service tokens, IP rules, a member, a webhook and an
audit trail, so that every page is pictured and checked with data on it.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Error as PlaywrightError

from tests.api import service_token_calls as calls
from tests.api import webhook_calls as webhooks
from tests.api.test_graphql import CREATE_USER, create_project
from tests.conftest import Seeded, Server
from tests.e2e.settings_browser import (
    AXE_SCRIPT,
    FROM_BROWSER,
    Browser,
    assert_accessible,
    axe_results,
    expect,
    open_settings,
    screenshots,
    sign_in,
)
from tokengate.http.pages import SETTINGS_PAGES

HEADINGS = {
    "service-tokens": "Service tokens",
    "personal-tokens": "Personal tokens",
    "members": "Members",
    "ip-restrictions": "IP restrictions",
    "audit-log": "Audit log",
    "token-policy": "Token policy",
    "webhooks": "Webhooks",
    "trust-policies": "Keyless CI",
    "single-sign-on": "Single sign-on",
}
SET_RULES = """mutation($enabled: Boolean!, $rules: [IpRuleInput!]!) {
  setIpRestrictions(enabled: $enabled, rules: $rules) { enabled } }"""


async def seed_account(server: Server) -> Seeded:
    """An account with something on every built page."""
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    warehouse = await create_project(server, admin.token, "warehouse")
    for name, grant in (("airflow", calls.grant("JOB_ADMIN", warehouse)), ("dbt ci", calls.grant("JOB_RUNNER"))):
        reply = await server.gql(
            calls.CREATE, {"input": {"name": name, "grants": [grant]}}, token=admin.token, headers=FROM_BROWSER
        )
        assert reply.errors == [], reply.body
        calls.remember(server, reply, "createServiceToken")
    rules = [
        {"name": "office", "type": "ALLOW", "cidrs": ["203.0.113.0/24", "2001:db8:17::/48"]},
        {"name": "guest wifi", "type": "DENY", "cidrs": ["203.0.113.128/25"]},
    ]
    reply = await server.gql(SET_RULES, {"enabled": True, "rules": rules}, token=admin.token, headers=FROM_BROWSER)
    assert reply.errors == [], reply.body
    member = {"email": "dev@acme.example", "license": "DEVELOPER", "grants": [calls.grant("JOB_ADMIN", warehouse)]}
    reply = await server.gql(CREATE_USER, member, token=admin.token, headers=FROM_BROWSER)
    assert reply.errors == [], reply.body
    # An https endpoint for events that this test makes none of: nothing is sent anywhere.
    hook = {"url": "https://hooks.example.com/tokengate", "events": ["legacy_token.*"], "description": "security team"}
    reply = await server.gql(webhooks.CREATE, hook, token=admin.token, headers=FROM_BROWSER)
    assert reply.errors == [], reply.body
    server.issued.append(reply.data["createWebhook"]["secret"])
    return admin


async def test_one_navigation_and_one_sign_in_for_every_page(behind_proxy: Server, browser: Browser):
    server = behind_proxy
    admin = await seed_account(server)
    page, watch = await open_settings(browser, server, "/settings/", extra_http_headers=FROM_BROWSER)
    assert page.url == server.url + "/settings/service-tokens"  # the settings root leads to the first page
    await expect(page.get_by_role("heading", name="Sign in to account settings")).to_be_visible()
    await screenshots(page, "sign-in")
    await assert_accessible(page, "sign-in")

    await sign_in(page, admin.token, "Service tokens")
    navigation = page.get_by_role("navigation", name="Account settings")
    await expect(navigation.get_by_role("link")).to_have_text([p.title for p in SETTINGS_PAGES])

    for settings_page in SETTINGS_PAGES:
        await navigation.get_by_role("link", name=settings_page.title, exact=True).click()
        await expect(page).to_have_url(server.url + settings_page.path)
        heading = page.get_by_role("heading", name=HEADINGS[settings_page.slug], exact=True)
        await expect(heading).to_be_visible()
        # Signed in still: the token came along in this tab's sessionStorage, nothing else keeps it.
        await expect(page.locator("#session-who")).to_have_text("Signed in as admin@acme.example")
        await expect(page.get_by_text("Account Acme · Enterprise plan")).to_be_visible()
        await expect(page.locator("#sign-in")).to_be_hidden()
        current = navigation.locator('a[aria-current="page"]')
        await expect(current).to_have_count(1)
        await expect(current).to_have_text(settings_page.title)
        await page.wait_for_load_state("networkidle")
        await screenshots(page, settings_page.slug)
        await assert_accessible(page, settings_page.slug)

    assert await page.evaluate("sessionStorage.length") == 1
    assert await page.evaluate("localStorage.length") == 0 and await page.context.cookies() == []

    # Signing out hides the page's data at once and asks to sign in; so does every other page.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#session")).to_be_hidden()
    await expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_hidden()
    await expect(page.get_by_label("Personal token", exact=True)).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    await navigation.get_by_role("link", name="Audit log").click()
    await expect(page.get_by_label("Personal token", exact=True)).to_be_visible()
    await expect(page.get_by_role("heading", name="Audit log")).to_be_hidden()
    assert watch.problems == []
    await page.context.close()


async def test_the_navigation_and_the_skip_link_work_from_the_keyboard(behind_proxy: Server, browser: Browser):
    server = behind_proxy
    admin = await seed_account(server)
    page, watch = await open_settings(browser, server, "/settings/service-tokens", extra_http_headers=FROM_BROWSER)
    await sign_in(page, admin.token, "Service tokens")
    await expect(page.locator("#main")).to_be_focused()  # the sign-in form gave way to the page
    # A page opened signed in starts at the top: the skip link first.
    await page.reload()
    await expect(page.get_by_role("heading", name="Service tokens", exact=True)).to_be_visible()
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()

    # Tab reaches every navigation entry in order (after the skip link and the session bar), Enter follows it.
    await page.reload()
    await expect(page.get_by_role("heading", name="Service tokens", exact=True)).to_be_visible()
    reached = []
    for _ in range(12):
        await page.keyboard.press("Tab")
        reached.append(await page.evaluate("document.activeElement.textContent.trim()"))
        if reached[-1] == "Audit log":
            break
    titles = [p.title for p in SETTINGS_PAGES]
    assert [text for text in reached if text in titles] == titles[: titles.index("Audit log") + 1]
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Audit log", exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="Audit log")).to_have_attribute("aria-current", "page")
    assert watch.problems == []
    await page.context.close()


async def test_the_csp_refuses_an_injected_inline_script_and_axe_runs_beside_it(server: Server, browser: Browser):
    # Why assert_accessible evaluates axe through DevTools rather than add_script_tag: the CSP holds.
    assert AXE_SCRIPT.exists()
    page, _ = await open_settings(browser, server, "/settings/ip-restrictions")
    with pytest.raises(PlaywrightError) as refused:
        await page.add_script_tag(path=str(AXE_SCRIPT))
    assert "Content Security Policy" in str(refused.value)
    assert await page.evaluate("typeof window.axe") == "undefined"
    results = await axe_results(page)
    assert results["testEngine"]["name"] == "axe-core" and results["violations"] == []
    # The check sees what it is there for: a field without a label is a critical violation.
    await page.evaluate("document.querySelector('main').append(document.createElement('input'))")
    found = {v["id"]: v["impact"] for v in (await axe_results(page))["violations"]}
    assert found.get("label") == "critical", found
    # The page itself still runs under its CSP: an inline script it would add is refused.
    assert (
        await page.evaluate(
            """() => new Promise((resolve) => {
          document.addEventListener('securitypolicyviolation', (event) => resolve(event.violatedDirective));
          const script = document.createElement('script');
          script.textContent = 'window.injected = true';
          document.body.append(script);
        })"""
        )
        == "script-src-elem"
    )
    assert await page.evaluate("window.injected === undefined")
    await page.context.close()
