"""The Members page in headless Chromium against a real tokengate: an account admin invites, edits and
deactivates members (the confirmation says what stops and what keeps working, and it does: the member's personal
token is refused, the service token they created still works); a project admin is offered only what it may
give, each refused set or scope disabled with the server's reason (givablePermissionSets), and the server's
FORBIDDEN is shown in words when it refuses anyway. Every change is checked through the API.
"""

from __future__ import annotations

import asyncio
import re

from tests.api import service_token_calls as calls
from tests.api.service_token_calls import grant
from tests.api.test_graphql import CREATE_USER, create_project
from tests.conftest import Seeded, Server
from tests.e2e.settings_browser import Browser, Page, assert_accessible, expect, open_settings, screenshots, sign_in

PATH = "/settings/members"
HEADING = "Members"
MEMBERS = """{ account { members { id email license state
  grants { permissionSet allProjects projects { name } } } } }"""
GIVABLE = "query($p: [ID!]) { givablePermissionSets(projectIds: $p) { key allowed reason } }"


async def member(server: Server, admin: Seeded, email: str, license_: str, grants: list[dict]) -> tuple[str, str]:
    reply = await server.gql(CREATE_USER, {"email": email, "license": license_, "grants": grants}, admin.token)
    assert reply.errors == [], reply.body
    user_id = reply.data["createUser"]["id"]
    return user_id, await server.issue_user_token(user_id, "sign-in")


async def members(server: Server, token: str) -> dict[str, dict]:
    reply = await server.gql(MEMBERS, token=token)
    assert reply.errors == [], reply.body
    return {m["email"]: m for m in reply.data["account"]["members"]}


def row(page: Page, email: str):
    return page.locator("#member-rows tr", has=page.get_by_text(email, exact=True))


async def signed_in_status(server: Server, token: str) -> int:
    return (await server.gql("{ viewer { kind } }", token=token)).status


async def test_an_admin_invites_edits_and_deactivates_members(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    await create_project(server, admin.token, "warehouse")
    await create_project(server, admin.token, "marketing")
    _, ops_token = await member(server, admin, "ops@acme.example", "DEVELOPER", [grant("ACCOUNT_ADMIN")])
    made_by_ops = await calls.created(server, ops_token, "nightly export", grants=[calls.grant("JOB_RUNNER")])
    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, admin.token, HEADING)
    await expect(row(page, "admin@acme.example")).to_contain_text("You")
    await expect(row(page, "admin@acme.example").get_by_role("button")).to_have_count(0)  # nobody changes themselves
    await expect(page.locator("#member-count")).to_have_text("2 members.")

    # Invite: a Read only member with Job Viewer on one project.
    await page.get_by_role("button", name="+ Invite member").click()
    form = page.get_by_role("dialog", name="Invite a member")
    await expect(form.get_by_label("Email")).to_be_focused()
    await expect(form.locator("#givable-note")).to_have_text(re.compile(r"^You may give 21 of 21 permission sets"))
    await form.get_by_label("Email").fill("analyst@acme.example")
    await form.get_by_label("License").select_option(label="Read only")
    await expect(form.get_by_label("License")).to_have_accessible_description(
        "Read access at most, to projects only: no account settings."
    )
    await form.get_by_role("checkbox", name="Job Viewer").check()
    scope = form.get_by_role("group", name="Projects for Job Viewer")
    await scope.get_by_role("radio", name="Chosen projects").check()
    await scope.get_by_role("checkbox", name="warehouse").check()
    await screenshots(page, "members-invite")
    await assert_accessible(page, "members-invite")
    await form.get_by_role("button", name="Invite member").click()
    await expect(form).to_be_hidden()
    await expect(page.get_by_role("status").first).to_have_text("analyst@acme.example is now a member of the account.")
    await expect(row(page, "analyst@acme.example")).to_contain_text("Read only")
    await expect(row(page, "analyst@acme.example")).to_contain_text("Job Viewer · warehouse")
    analyst = (await members(server, admin.token))["analyst@acme.example"]
    assert analyst["license"] == "READ_ONLY"
    assert analyst["grants"] == [
        {"permissionSet": "JOB_VIEWER", "allProjects": False, "projects": [{"name": "warehouse"}]}
    ]

    # Edit: Developer license, and the grant on one more project.
    await row(page, "analyst@acme.example").get_by_role("button", name="Edit analyst@acme.example").click()
    edit = page.get_by_role("dialog", name="Edit analyst@acme.example")
    await expect(edit.get_by_role("checkbox", name="Job Viewer")).to_be_checked()
    await expect(edit.get_by_label("Email")).to_be_hidden()
    await edit.get_by_label("License").select_option(label="Developer")
    await edit.get_by_role("group", name="Projects for Job Viewer").get_by_role("checkbox", name="marketing").check()
    await edit.get_by_role("button", name="Save changes").click()
    await expect(edit).to_be_hidden()
    await expect(row(page, "analyst@acme.example")).to_contain_text("Job Viewer · warehouse, marketing")
    analyst = (await members(server, admin.token))["analyst@acme.example"]
    assert analyst["license"] == "DEVELOPER" and [p["name"] for p in analyst["grants"][0]["projects"]] == [
        "warehouse",
        "marketing",
    ]

    # Deactivate: the confirmation says what stops and what keeps working, and so it is.
    assert await signed_in_status(server, ops_token) == 200 and await calls.works(server, made_by_ops.secret)
    # From the keyboard: Escape backs out to the button, Enter opens it again, Tab reaches the confirmation.
    deactivate = row(page, "ops@acme.example").get_by_role("button", name="Deactivate ops@acme.example")
    await deactivate.focus()
    await page.keyboard.press("Enter")
    confirm = page.get_by_role("dialog", name="Deactivate ops@acme.example?")
    await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(confirm).to_be_hidden()
    await expect(deactivate).to_be_focused()
    # The browser fires `close` a task after the dialog closed (focus is back at once), so a person quick enough
    # opens it again before that event arrives; on a busy machine it came while the member's token count was
    # on its way, and the page forgot whom the dialog was for (the count never showed). That order, made
    # certain: the count held back, the late `close` delivered, then the count.
    counting, count_free = asyncio.Event(), asyncio.Event()

    async def count_held(route) -> None:
        if "SettingsMemberTokens" in (route.request.post_data or ""):
            counting.set()
            await count_free.wait()
        await route.continue_()

    await page.route("**/graphql", count_held)
    await page.keyboard.press("Enter")
    await expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    await asyncio.wait_for(counting.wait(), 30)
    await confirm.evaluate("(dialog) => dialog.dispatchEvent(new Event('close'))")  # the first closing's, late
    count_free.set()
    await expect(confirm).to_be_visible()
    await expect(confirm.locator("#deactivate-stops")).to_have_text(
        "Their 1 active personal token stops working at once, on every tokengate instance, and they cannot sign in again."
    )
    await expect(confirm.locator("#deactivate-keeps")).to_have_text(
        re.compile(r"^Service tokens they created keep working: service tokens belong to the account")
    )
    await screenshots(page, "members-deactivate")
    await assert_accessible(page, "members-deactivate")
    await page.keyboard.press("Tab")
    await expect(confirm.get_by_role("button", name="Deactivate member")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(confirm).to_be_hidden()
    await expect(row(page, "ops@acme.example")).to_contain_text("Deactivated")
    await expect(row(page, "ops@acme.example").get_by_role("button")).to_have_count(0)
    assert (await members(server, admin.token))["ops@acme.example"]["state"] == "DEACTIVATED"
    assert await signed_in_status(server, ops_token) == 401
    assert await calls.works(server, made_by_ops.secret)  # the account's service token keeps working
    assert watch.problems == []
    await page.context.close()


async def test_a_project_admin_is_offered_only_what_it_may_give(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    warehouse = await create_project(server, admin.token, "warehouse")
    marketing = await create_project(server, admin.token, "marketing")
    # Admin of warehouse, and a viewer of every project (so both projects are on the form).
    lead_grants = [grant("ADMIN", warehouse), grant("JOB_VIEWER")]
    _, lead = await member(server, admin, "lead@acme.example", "DEVELOPER", lead_grants)
    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, lead, HEADING)
    await expect(row(page, "lead@acme.example")).to_contain_text("You")
    server_says = {
        scope: {a["key"]: a for a in (await server.gql(GIVABLE, {"p": projects}, lead)).data["givablePermissionSets"]}
        for scope, projects in (("all", None), ("warehouse", [warehouse]), ("marketing", [marketing]))
    }

    await page.get_by_role("button", name="+ Invite member").click()
    form = page.get_by_role("dialog", name="Invite a member")
    offered = sum(
        1
        for key in server_says["all"]
        if server_says["all"][key]["allowed"] or server_says["warehouse"][key]["allowed"]
    )
    await expect(form.locator("#givable-note")).to_have_text(
        re.compile(rf"^You may give {offered} of 21 permission sets")
    )
    # Account Admin: listed apart, disabled, with the no-escalation rule's reason.
    await form.get_by_text(re.compile(r"^Sets you cannot give \(\d+\)$")).click()
    account_admin = form.get_by_role("checkbox", name="Account Admin")
    await expect(account_admin).to_be_disabled()
    await expect(account_admin).to_have_accessible_description(
        "Account level · Giving ACCOUNT_ADMIN requires ACCOUNT_SETTINGS:WRITE on the account, which you do not hold."
    )
    # Job Admin: on warehouse only; all projects and marketing disabled, each saying why.
    await expect(form.get_by_role("checkbox", name="Job Admin")).to_have_accessible_description(
        "Project level · You may give it on some projects only."
    )
    await form.get_by_role("checkbox", name="Job Admin").check()
    scope = form.get_by_role("group", name="Projects for Job Admin")
    everywhere = scope.get_by_role("radio", name="All projects")
    await expect(everywhere).to_be_disabled()
    reason = server_says["all"]["JOB_ADMIN"]["reason"]
    await expect(everywhere).to_have_accessible_description(reason[0].upper() + reason[1:] + ".")
    await expect(scope.get_by_role("radio", name="Chosen projects")).to_be_checked()
    await expect(scope.get_by_role("checkbox", name="warehouse")).to_be_enabled()
    their_project = scope.get_by_role("checkbox", name="marketing")
    await expect(their_project).to_be_disabled()
    reason = server_says["marketing"]["JOB_ADMIN"]["reason"]
    assert f"on project {marketing}" in reason
    await expect(their_project).to_have_accessible_description(reason[0].upper() + reason[1:] + ".")
    await screenshots(page, "members-refused-sets")
    await assert_accessible(page, "members-refused-sets")

    # A page loaded before the lead lost marketing would still offer it: the server refuses, in its words.
    await form.get_by_label("Email").fill("viewer@acme.example")
    await their_project.evaluate("box => { box.disabled = false; }")
    await their_project.check()
    await scope.get_by_role("checkbox", name="warehouse").check()
    await form.get_by_role("button", name="Invite member").click()
    await expect(form.locator("#member-form-error")).to_have_text(
        "Your account role doesn't allow managing members: " + reason[0].upper() + reason[1:] + "."
    )
    assert "viewer@acme.example" not in await members(server, admin.token)

    # What it may give is accepted.
    await their_project.uncheck()
    await form.get_by_role("button", name="Invite member").click()
    await expect(form).to_be_hidden()
    await expect(row(page, "viewer@acme.example")).to_contain_text("Job Admin · warehouse")

    # The account admin's row offers nothing: only an ACCOUNT_ADMIN may change or deactivate one (the server's
    # own rule, asked ahead with viewerMayEdit), and the row says so.
    await expect(row(page, "admin@acme.example").get_by_role("button")).to_have_count(0)
    await expect(row(page, "admin@acme.example")).to_contain_text(
        "You cannot change this member: Only an ACCOUNT_ADMIN may change or deactivate a user who holds ACCOUNT_ADMIN."
    )
    assert (await members(server, admin.token))["admin@acme.example"]["state"] == "ACTIVE"
    assert await signed_in_status(server, admin.token) == 200
    assert watch.problems == []
    await page.context.close()


async def test_a_member_who_may_only_read_sees_no_way_to_change(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    _, viewer = await member(server, admin, "auditor@acme.example", "DEVELOPER", [grant("ACCOUNT_VIEWER")])
    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, viewer, HEADING)
    await expect(page.get_by_role("button", name="+ Invite member")).to_be_disabled()
    await expect(page.locator("#members-note")).to_have_text(
        "You can view the members but not change them: No grant gives MEMBERS:WRITE."
    )
    await expect(row(page, "admin@acme.example")).to_contain_text("Account Admin · account")
    await expect(page.locator("#member-rows button")).to_have_count(0)
    assert watch.problems == []
    await page.context.close()
