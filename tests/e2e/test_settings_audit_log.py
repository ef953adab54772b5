"""The audit log page in headless Chromium against a real tokengate: newest first, paging forward and back
with cursors, each event's details expanded, the filters (action, actor, target, days), and both downloads
(NDJSON and CSV, built in the browser from the API's pages) compared field by field with what the API
answers for the same filter.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from tests.api import service_token_calls as calls
from tests.conftest import Seeded, Server
from tests.e2e.settings_browser import (
    ARTIFACTS,
    FROM_BROWSER,
    Browser,
    Page,
    assert_accessible,
    expect,
    open_settings,
    sign_in,
)

PATH = "/settings/audit-log"
FIELDS = ["id", "occurredAt", "action", "actor", "source", "clientAddress", "targetId", "details"]
EVERY_FIELD = """query($after: String, $filter: AuditLogFilter) {
  account { auditLog(first: 100, after: $after, filter: $filter) {
    edges { node { id occurredAt action actor source clientAddress targetId details } }
    pageInfo { hasNextPage endCursor }
  } }
}"""
PROJECTS = 105  # more than two pages of the page, and more than one page of a download


async def api_events(server: Server, token: str, only: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every event the API lists for ``only``, newest first."""
    events, after = [], None
    while True:
        reply = await server.gql(EVERY_FIELD, {"after": after, "filter": only}, token=token, headers=FROM_BROWSER)
        assert reply.errors == [], reply.body
        log = reply.data["account"]["auditLog"]
        events += [edge["node"] for edge in log["edges"]]
        if not log["pageInfo"]["hasNextPage"]:
            return events
        after = log["pageInfo"]["endCursor"]


async def seed_trail(server: Server) -> tuple[Seeded, str]:
    """Bootstrap (2 events by cli), PROJECTS projects, then two service tokens: the newest is "airflow"."""
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    for number in range(PROJECTS):
        reply = await server.gql(
            "mutation($name: String!) { createProject(name: $name) { id } }",
            {"name": f"project {number:03}"},
            token=admin.token,
            headers={"X-Forwarded-For": f"198.51.100.{number % 200 + 1}"},
        )
        assert reply.errors == [], reply.body
    token_id = ""
    for name in ("dbt ci", "airflow"):
        reply = await server.gql(
            calls.CREATE,
            {"input": {"name": name, "grants": [calls.grant("JOB_RUNNER")]}},
            token=admin.token,
            headers=FROM_BROWSER,
        )
        assert reply.errors == [], reply.body
        calls.remember(server, reply, "createServiceToken")
        token_id = reply.data["createServiceToken"]["serviceToken"]["id"]
    return admin, token_id


async def shown_ids(page: Page) -> list[str]:
    """The events listed, once the page has finished loading them."""
    await expect(page.locator("#audit-view[aria-busy]")).to_have_count(0)
    return await page.locator("#audit-rows tr[data-event-id]").evaluate_all(
        "rows => rows.map((row) => row.dataset.eventId)"
    )


async def test_newest_first_in_cursor_pages_with_details(behind_proxy: Server, browser: Browser):
    server = behind_proxy
    admin, token_id = await seed_trail(server)
    everything = await api_events(server, admin.token)
    assert len(everything) == 2 + PROJECTS + 2
    ids = [event["id"] for event in everything]

    page, watch = await open_settings(browser, server, PATH, extra_http_headers=FROM_BROWSER)
    await sign_in(page, admin.token, "Audit log")
    await expect(page.locator("#audit-rows tr[data-event-id]")).to_have_count(50)
    assert await shown_ids(page) == ids[:50]
    await expect(page.locator("#range-line")).to_have_text("Events 1–50, newest first.")  # noqa: RUF001
    newer, older = page.get_by_role("button", name="← Newer"), page.get_by_role("button", name="Older →")
    await expect(newer).to_be_disabled()

    # Forward with the cursor, to the last page, and back.
    await older.click()
    await expect(page.locator("#page-number")).to_have_text("Page 2")
    assert await shown_ids(page) == ids[50:100]
    await expect(older).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#page-number")).to_have_text("Page 3")
    assert await shown_ids(page) == ids[100:]
    await expect(page.locator("#range-line")).to_have_text(f"Events 101–{len(ids)}, newest first.")  # noqa: RUF001
    await expect(older).to_be_disabled()
    await expect(newer).to_be_focused()  # the last page has no older one: focus stays on the pager
    await newer.click()
    assert await shown_ids(page) == ids[50:100]
    await newer.click()
    assert await shown_ids(page) == ids[:50]

    # The newest event: "airflow" created; its details open on demand, from the keyboard too.
    newest = page.locator(f'tr[data-event-id="{ids[0]}"]')
    await expect(newest).to_contain_text("service_token.created")
    await expect(newest).to_contain_text(f"user:{admin.user_id}")
    await expect(newest).to_contain_text(token_id)
    toggle = newest.get_by_role("button", name=f"Details of service_token.created, event {ids[0]}")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    details = page.locator(f"#{await toggle.get_attribute('aria-controls')}")
    await expect(details.locator("pre")).to_be_hidden()
    await toggle.focus()
    await page.keyboard.press("Enter")
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(details.locator("pre")).to_be_visible()
    shown = json.loads(await details.locator("pre").inner_text())
    assert shown == everything[0]["details"] and shown["name"] == "airflow"
    await expect(details).to_contain_text(f"Event id{ids[0]}")
    await expect(details).to_contain_text("Sourcegraphql")
    await expect(details).to_contain_text("Client address203.0.113.9")
    cli = page.locator(f'tr[data-event-id="{ids[-1]}"]')
    await page.get_by_role("button", name="Older →").click()
    await page.get_by_role("button", name="Older →").click()
    await cli.get_by_role("button", name=f"Details of user.created, event {ids[-1]}").click()
    cli_details = page.locator("tr.event-details:not([hidden])")
    await expect(cli_details).to_have_count(1)  # the other page's open details went with that page
    await expect(cli_details).to_contain_text("Client addressnone (command line)")
    await expect(cli_details).to_contain_text("Sourcecommand line (cli)")
    await page.screenshot(path=str(ARTIFACTS / "settings-audit-log-details.png"), full_page=True)
    await assert_accessible(page, "audit-log-details")
    assert watch.problems == []
    await page.context.close()


async def apply(page: Page, **fields: str) -> None:
    labels = {"action": "Action", "actor": "Actor", "target": "Target id", "since": "From", "until": "To"}
    for name, label in labels.items():
        await page.get_by_label(label, exact=True).fill(fields.get(name, ""))
    await page.get_by_role("button", name="Apply filters").click()


async def download(page: Page, button: str) -> tuple[str, str]:
    async with page.expect_download() as started:
        await page.get_by_role("button", name=button, exact=True).click()
    done = await started.value
    path = await done.path()
    assert path is not None
    return done.suggested_filename, Path(path).read_bytes().decode("utf-8")


async def test_filters_and_downloads_match_the_api(behind_proxy: Server, browser: Browser):
    server = behind_proxy
    admin, token_id = await seed_trail(server)
    page, watch = await open_settings(browser, server, PATH, extra_http_headers=FROM_BROWSER)
    await sign_in(page, admin.token, "Audit log")
    await expect(page.locator("#audit-rows tr[data-event-id]")).to_have_count(50)
    today = await page.evaluate("new Date().toLocaleDateString('en-CA')")  # YYYY-MM-DD in the browser's zone
    tomorrow = await page.evaluate("new Date(Date.now() + 86400000).toLocaleDateString('en-CA')")

    # Action: exactly that action.
    await apply(page, action="service_token.created")
    await expect(page.get_by_role("status")).to_have_text("Filters applied.")
    created = await api_events(server, admin.token, {"action": "service_token.created"})
    await expect(page.locator("#audit-rows tr[data-event-id]")).to_have_count(2)
    assert await shown_ids(page) == [event["id"] for event in created]
    await expect(page.locator("#range-line")).to_have_text("Events 1–2 matching the filters, newest first.")  # noqa: RUF001

    # Actor and action together, over two pages.
    as_admin = f"user:{admin.user_id}"
    await apply(page, action="project.created", actor=as_admin)
    projects = await api_events(server, admin.token, {"action": "project.created", "actor": as_admin})
    assert len(projects) == PROJECTS
    await expect(page.locator("#audit-rows tr[data-event-id]")).to_have_count(50)
    assert await shown_ids(page) == [event["id"] for event in projects[:50]]
    await page.get_by_role("button", name="Older →").click()
    await expect(page.locator("#page-number")).to_have_text("Page 2")
    assert await shown_ids(page) == [event["id"] for event in projects[50:100]]

    # Target: the events about one token.
    await apply(page, target=token_id)
    await expect(page.locator("#audit-rows tr[data-event-id]")).to_have_count(1)
    await expect(page.locator("#audit-rows")).to_contain_text("service_token.created")

    # Days: today holds everything, tomorrow nothing; a range that ends before it starts is refused here.
    await apply(page, since=today, until=today)
    everything = await api_events(server, admin.token)
    await expect(page.locator("#audit-rows tr[data-event-id]")).to_have_count(50)
    assert await shown_ids(page) == [event["id"] for event in everything[:50]]
    await apply(page, since=tomorrow)
    await expect(page.get_by_text("No events match these filters.", exact=True).first).to_be_visible()
    await expect(page.locator("#audit-table")).to_be_hidden()
    await apply(page, since=tomorrow, until=today)
    await expect(page.locator("#filter-error")).to_have_text("The “To” day is before the “From” day.")

    # NDJSON of a filtered range longer than one API page: every field as the API gives it.
    await apply(page, action="project.created")
    name, text = await download(page, "NDJSON")
    assert name.startswith("audit-log-") and name.endswith(".ndjson")
    assert text.endswith("\n") and text.count("\n") == PROJECTS
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines == [{field: event[field] for field in FIELDS} for event in projects]
    await expect(page.get_by_role("status")).to_have_text(f"Downloaded {PROJECTS} events as NDJSON.")
    (ARTIFACTS / "audit-log-download.ndjson").write_text(text, encoding="utf-8")

    # CSV of everything: RFC 4180 lines, details as JSON text, a BOM for spreadsheets.
    await page.get_by_role("button", name="Clear").click()
    await expect(page.get_by_role("status")).to_have_text("Filters cleared.")
    name, text = await download(page, "CSV")
    assert name.endswith(".csv") and text.startswith("\ufeffid,occurredAt,action,")
    assert text.count("\r\n") == len(everything) + 1 and "\n" not in text.replace("\r\n", "")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    assert [row["id"] for row in rows] == [event["id"] for event in everything]
    for row, event in zip(rows, everything, strict=True):
        assert {field: row[field] for field in FIELDS if field != "details"} == {
            field: event[field] or "" for field in FIELDS if field != "details"
        }
        assert json.loads(row["details"]) == event["details"]
    await expect(page.get_by_role("status")).to_have_text(f"Downloaded {len(everything)} events as CSV.")
    (ARTIFACTS / "audit-log-download.csv").write_text(text, encoding="utf-8")
    await page.screenshot(path=str(ARTIFACTS / "settings-audit-log-filtered.png"), full_page=True)
    assert watch.problems == []
    await page.context.close()


async def test_a_csv_cell_a_spreadsheet_would_run_is_defused(server: Server, browser: Browser):
    page, _ = await open_settings(browser, server, PATH)
    text = await page.evaluate(
        """async () => {
          const m = await import('/static/settings/audit-export.js');
          return m.toCsv([{ id: '1', occurredAt: 't', action: '=HYPERLINK("x")', actor: '+1', source: '-2',
                            clientAddress: '@a', targetId: null, details: { name: 'a,"b"\\nc' } }]);
        }"""
    )
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    assert rows[1] == ["1", "t", '\'=HYPERLINK("x")', "'+1", "'-2", "'@a", "", '{"name":"a,\\"b\\"\\nc"}']
    await page.context.close()
