"""The settings pages under the cost limits, in headless Chromium: a person reloading every page ten times and
toggling every filter meets no 429 with the default limits (the cost charged is what the answers hold, not
the estimates); with the rates lowered so that a 429 must come, the page says "slow down" with the wait, then
recovers by itself, still signed in and with working controls; and the Members page offers a project admin no
Edit or Deactivate on an account admin's row (the server's own rule, viewerMayEdit), saying why."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api import service_token_calls as calls
from tests.api.service_token_calls import grant
from tests.api.test_graphql import CREATE_USER, create_project
from tests.conftest import Seeded, Server, make_config, start_server
from tests.e2e.settings_browser import Browser, Page, assert_accessible, expect, open_settings, sign_in
from tests.e2e.test_settings_shell import HEADINGS
from tokengate.core.limits import Buckets, Limits, Rate
from tokengate.core.policy import ONLY_AN_ACCOUNT_ADMIN
from tokengate.http.pages import SETTINGS_PAGES

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)
CHECKS = "query($r: [CheckInput!]!) { checks(requests: $r) { allowed reason } }"
FILTERS = (
    "#filter-active",
    "#filter-expired",
    "#filter-deleted",
    "#filter-legacy",
    "#filter-rotation",
    "#filter-expiring",
)
EVENTUALLY = 30_000  # ms: generous, the waits the server asks for included


async def serving(database: str, tmp_path: Path, limits: Limits) -> AsyncIterator[Server]:
    async for server in start_server(database, make_config(tmp_path, trusted_proxies=LOOPBACK, limits=limits)):
        yield server


@pytest.fixture
async def with_default_limits(database: str, tmp_path: Path) -> AsyncIterator[Server]:
    async for server in serving(database, tmp_path, Limits()):
        yield server


def lower_the_cost_rate(server: Server, rate: Rate) -> None:
    """The cost points of every payer from now on: ``rate`` (the account is seeded under the defaults)."""
    server.runtime.gate.throttle.cost = Buckets("cost", rate)


async def member(server: Server, admin: Seeded, email: str, grants: list[dict]) -> tuple[str, str]:
    reply = await server.gql(CREATE_USER, {"email": email, "license": "DEVELOPER", "grants": grants}, admin.token)
    assert reply.errors == [], reply.body
    user_id = reply.data["createUser"]["id"]
    return user_id, await server.issue_user_token(user_id, "sign-in")


async def seeded_account(server: Server) -> Seeded:
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    projects = [await create_project(server, admin.token, name) for name in ("warehouse", "marketing", "billing")]
    for number in range(5):
        await calls.created(server, admin.token, f"deploy {number}", grants=[grant("JOB_ADMIN", projects[0])])
    for number in range(4):
        await member(server, admin, f"dev{number}@acme.example", [grant("JOB_VIEWER", projects[number % 3])])
    return admin


def statuses(page: Page) -> list[tuple[int, str]]:
    seen: list[tuple[int, str]] = []
    page.on("response", lambda response: seen.append((response.status, response.url)))
    return seen


async def test_a_person_reloading_every_page_and_toggling_every_filter_meets_no_429(
    with_default_limits: Server, browser: Browser
):
    server = with_default_limits
    admin = await seeded_account(server)
    page, watch = await open_settings(browser, server, SETTINGS_PAGES[0].path)
    seen = statuses(page)
    await sign_in(page, admin.token, HEADINGS[SETTINGS_PAGES[0].slug])
    for settings_page in SETTINGS_PAGES:
        await page.goto(server.url + settings_page.path)
        heading = page.get_by_role("heading", name=HEADINGS[settings_page.slug], exact=True)
        for _ in range(10):
            await page.reload()
            await expect(heading).to_be_visible()
        await page.wait_for_load_state("networkidle")
    await page.goto(server.url + "/settings/service-tokens")
    await expect(page.locator("#token-rows tr")).to_have_count(5)
    for selector in FILTERS:
        for _ in range(2):  # on and back
            await page.locator(selector).click()
            await page.wait_for_load_state("networkidle")
    await expect(page.locator("#token-rows tr")).to_have_count(5)
    refused = [(status, url) for status, url in seen if status == 429]
    assert refused == [], refused
    assert len([1 for _, url in seen if url.endswith("/graphql")]) > 7 * 10  # the reloads did ask
    assert watch.problems == []


async def drained(server: Server, token: str) -> None:
    """The token's cost points spent (and one burst in debt) by its own API calls: its next request is a 429."""
    for _ in range(10):  # until the points of its last use are back
        reply = await server.gql(CHECKS, {"r": [{"resource": "JOBS", "access": "READ"}] * 40}, token=token)
        if reply.status != 429:
            break
        await asyncio.sleep(int(reply.headers["Retry-After"]))
    assert reply.errors == [] and reply.body["extensions"]["cost"]["remaining"] == 0, reply.body
    assert (await server.gql("{ viewer { kind } }", token=token)).status == 429  # the precondition


async def test_a_forced_429_shows_a_wait_and_recovers_without_signing_out(
    with_default_limits: Server, browser: Browser
):
    server = with_default_limits
    admin = await seeded_account(server)
    lower_the_cost_rate(server, Rate(50, 50))
    page, watch = await open_settings(browser, server, "/settings/service-tokens")
    seen = statuses(page)
    await drained(server, admin.token)
    await page.get_by_label("Personal token", exact=True).fill(admin.token)
    await page.get_by_role("button", name="Sign in").click()
    slow_down = page.get_by_role("status").filter(has_text="Slow down")
    await expect(slow_down).to_contain_text(re.compile(r"Trying again in \d+ s"))
    await expect(page.get_by_role("button", name="Retry now")).to_be_visible()
    await expect(page.get_by_role("heading", name="Service tokens", exact=True)).to_be_visible(timeout=EVENTUALLY)
    await expect(page.locator("#token-rows tr")).to_have_count(5, timeout=EVENTUALLY)
    await expect(page.locator("#slow-down")).to_be_hidden(timeout=EVENTUALLY)
    assert any(status == 429 for status, _ in seen)
    assert await page.evaluate("sessionStorage.length") == 1  # still signed in
    await expect(page.locator("#sign-in")).to_be_hidden()

    # The Members page, refused in the middle of its load: it waits, loads, and every control works.
    await drained(server, admin.token)
    await page.goto(server.url + "/settings/members")
    await expect(page.locator("#member-rows tr")).to_have_count(5, timeout=EVENTUALLY)
    await expect(page.locator("#slow-down")).to_be_hidden(timeout=EVENTUALLY)
    await expect(page.locator("#sign-in")).to_be_hidden()
    invite = page.get_by_role("button", name="+ Invite member")
    await expect(invite).to_be_enabled(timeout=EVENTUALLY)
    await invite.click()
    await expect(page.get_by_role("dialog", name="Invite a member")).to_be_visible()
    assert watch.problems == []


async def test_the_members_page_offers_a_project_admin_nothing_on_an_account_admins_row(
    server: Server, browser: Browser
):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    warehouse = await create_project(server, admin.token, "warehouse")
    _, lead = await member(server, admin, "lead@acme.example", [grant("ADMIN", warehouse)])
    await member(server, admin, "dev@acme.example", [grant("JOB_VIEWER", warehouse)])
    page, watch = await open_settings(browser, server, "/settings/members")
    await sign_in(page, lead, "Members")
    owner = page.locator("#member-rows tr", has=page.get_by_text("admin@acme.example", exact=True))
    await expect(owner.get_by_role("button")).to_have_count(0)
    await expect(owner).to_contain_text("You cannot change this member: O" + ONLY_AN_ACCOUNT_ADMIN[1:])
    dev = page.locator("#member-rows tr", has=page.get_by_text("dev@acme.example", exact=True))
    await expect(dev.get_by_role("button", name="Edit dev@acme.example")).to_be_visible()
    await expect(dev.get_by_role("button", name="Deactivate dev@acme.example")).to_be_visible()
    await assert_accessible(page, "members-project-admin")
    # Its edit form: the scope of a set and the projects chosen inside it are two groups of distinct names.
    await dev.get_by_role("button", name="Edit dev@acme.example").click()
    dialog = page.get_by_role("dialog", name="Edit dev@acme.example")
    await expect(dialog.get_by_role("group", name="Projects for Job Viewer", exact=True)).to_have_count(1)
    await expect(dialog.get_by_role("group", name="Chosen projects of Job Viewer", exact=True)).to_have_count(1)
    assert watch.problems == []
