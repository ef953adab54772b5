"""The Keyless CI page (trust policies) in headless Chromium against a real tokengate: a GitHub Actions policy made
from the form (the server's refusal of an owner name where its numeric id belongs shown in its words), listed with
what it trusts, deleted through the confirmation dialog; a member who may only read; axe-core at both widths."""

from __future__ import annotations

from tests.api.service_token_calls import grant
from tests.api.test_graphql import CREATE_USER
from tests.conftest import Seeded, Server
from tests.e2e.settings_browser import Browser, assert_accessible, expect, open_settings, screenshots, sign_in

PATH = "/settings/trust-policies"
HEADING = "Keyless CI"
POLICIES = "{ account { trustPolicies { name subject conditions { name value } maxLifetimeSeconds } } }"


async def policies(server: Server, admin: Seeded) -> list[dict]:
    reply = await server.gql(POLICIES, token=admin.token)
    assert reply.errors == [], reply.body
    return reply.data["account"]["trustPolicies"]


async def test_a_github_policy_is_made_listed_and_deleted(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, admin.token, HEADING)
    await expect(page.locator("#empty-list")).to_be_visible()
    await assert_accessible(page, "trust-policies-empty")
    await page.get_by_label("Name", exact=True).fill("deploy")
    await page.get_by_label("Repository").fill("octo-org/app")
    owner = page.get_by_label("Owner's numeric id")
    await expect(owner).to_have_accessible_description(
        "Digits only (gh api users/OWNER --jq .id): a deleted owner's name can be registered again by someone "
        "else, its id cannot."
    )
    await owner.fill("octo-org")
    await page.get_by_label("Audience").fill("https://tokengate.example/acc")
    await page.get_by_label("Permission set the exchanged tokens carry").select_option("JOB_RUNNER")
    await page.get_by_role("button", name="Create policy").click()
    await expect(page.locator("#github-error")).to_contain_text("numeric id")
    await assert_accessible(page, "trust-policies-refused")
    assert await policies(server, admin) == []

    await owner.fill("4242")
    await page.get_by_role("button", name="Create policy").click()
    await expect(page.get_by_role("status").first).to_have_text("Trust policy deploy created.")
    row = page.locator("#policy-rows tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("repo:octo-org/app:ref:refs/heads/main")
    await expect(row).to_contain_text("repository_owner_id = 4242")
    await expect(row).to_contain_text("15 min")
    (made,) = await policies(server, admin)
    assert made["maxLifetimeSeconds"] == 900 and made["name"] == "deploy"
    await screenshots(page, "trust-policies")
    await assert_accessible(page, "trust-policies")

    await page.get_by_role("button", name="Delete trust policy deploy").click()
    dialog = page.get_by_role("dialog", name="Delete trust policy")
    await expect(dialog).to_be_visible()
    await assert_accessible(page, "trust-policies-delete")
    await dialog.get_by_role("button", name="Delete policy").click()
    await expect(page.get_by_role("status").first).to_have_text(
        "Trust policy deploy deleted; its exchanged tokens no longer work."
    )
    assert await policies(server, admin) == []
    assert watch.problems == []
    await page.context.close()


async def test_a_member_who_may_only_read_them(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    reply = await server.gql(
        CREATE_USER,
        {"email": "viewer@acme.example", "license": "DEVELOPER", "grants": [grant("ACCOUNT_VIEWER")]},
        admin.token,
    )
    viewer = await server.issue_user_token(reply.data["createUser"]["id"])
    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, viewer, HEADING)
    await expect(page.locator("#trust-read-only")).to_contain_text("You can read these policies but not change them")
    await expect(page.locator("#github-form")).to_be_hidden()
    await assert_accessible(page, "trust-policies-read-only")
    assert watch.problems == []
    await page.context.close()
