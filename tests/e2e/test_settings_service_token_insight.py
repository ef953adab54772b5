"""The Service Tokens page's usage sparkline and filter in headless Chromium against a real tokengate.

The sparkline draws ServiceToken.usage(days: 30): today's bar from real /auth/check traffic (flushed), two
older days written to the usage table (a past day cannot be requested now), and its text alternative says
the total and the peak; a token never used draws no bar. The filter is walked through every choice (states,
legacy, rotation recommended, expiring soon) over tokens in each case: active, expiring in 10 days, expired,
deleted and an imported legacy one; each answer is what the API's own filter returns.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.api import service_token_calls as calls
from tests.conftest import Server, store_service_token
from tests.e2e.settings_browser import Browser, Page, assert_accessible, expect, open_settings, screenshots, sign_in
from tokengate.core.policy import Grant

PATH = "/settings/service-tokens"
HEADING = "Service tokens"
USAGE = "{ account { serviceTokens(includeDeleted: true) { id name usage(days: 30) { day count } } } }"
# Older traffic, written as the flush would have written it on those days: (days ago, requests).
HISTORY = ((12, 7), (5, 40))
SEED_USAGE = """INSERT INTO token_usage_daily (token_id, day, requests)
SELECT id, (now() AT TIME ZONE 'UTC')::date - $3::int, $4 FROM tokens WHERE account_id = $1 AND name = $2"""


def names(page: Page):
    return page.locator("#token-rows tr .token-name")


async def shown(page: Page) -> list[str]:
    await expect(page.locator("#tokens-view")).not_to_have_attribute("aria-busy", "true")
    return sorted(text.split("Rotation recommended")[0].strip() for text in await names(page).all_inner_texts())


async def check(server: Server, secret: str) -> int:
    status, _, _ = await server.get(
        "/auth/check?resource=JOBS&access=READ", headers={"Authorization": f"Bearer {secret}"}
    )
    return status


async def test_the_usage_sparkline_and_every_filter(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    airflow = await calls.created(server, admin.token, "airflow", grants=[calls.grant("JOB_VIEWER")])
    soon = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    await calls.created(server, admin.token, "nightly export", grants=[calls.grant("JOB_VIEWER")], expiresAt=soon)
    retired = await calls.created(server, admin.token, "retired", grants=[calls.grant("JOB_VIEWER")])
    assert (await server.gql(calls.DELETE, {"id": retired.id}, token=admin.token)).errors == []
    await store_service_token(
        server,
        admin.account_id,
        [Grant("JOB_VIEWER")],
        expires_at=datetime.now(UTC) - timedelta(days=2),
        name="old export",
    )
    await server.import_legacy_token(
        admin.account_id, "legacy loader", datetime(2022, 3, 1, tzinfo=UTC), [Grant("JOB_VIEWER")]
    )

    # Traffic: three checks today (counted when the gate flushes), and two older days.
    for _ in range(3):
        assert await check(server, airflow.secret) == 200
    await server.runtime.gate.usage.flush()
    await server.runtime.authenticator.last_used.flush()
    for days_ago, requests in HISTORY:
        await server.pool.execute(SEED_USAGE, admin.account_id, "airflow", days_ago, requests)
    reply = await server.gql(USAGE, token=admin.token)
    assert reply.errors == [], reply.body
    usage = {t["name"]: t["usage"] for t in reply.data["account"]["serviceTokens"]}
    assert [d["count"] for d in usage["airflow"] if d["count"]] == [7, 40, 3] and len(usage["airflow"]) == 30
    peak_day = next(d["day"] for d in usage["airflow"] if d["count"] == 40)

    page, watch = await open_settings(browser, server, PATH)
    await sign_in(page, admin.token, HEADING)
    assert await shown(page) == ["airflow", "legacy loader", "nightly export", "old export"]
    await expect(page.locator("#match-line")).to_have_text("4 tokens, active and expired.")

    # The sparkline: one bar per day with requests, the peak the tallest, the same numbers in words.
    spark = page.locator(f'tr[data-token-id="{airflow.id}"] svg.sparkline')
    peak_words = await page.evaluate(
        "(day) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeZone: 'UTC' }).format(new Date(day + 'T00:00:00Z'))",
        peak_day,
    )
    await expect(spark).to_have_attribute("role", "img")
    await expect(spark).to_have_accessible_name(f"50 requests in 30 days, peak 40 on {peak_words}")
    heights = [
        int(h) for h in await spark.locator("rect").evaluate_all("(bars) => bars.map((b) => b.getAttribute('height'))")
    ]
    assert len(heights) == 30
    drawn = [(i, h) for i, h in enumerate(heights) if h > 0]
    assert [i for i, _ in drawn] == [i for i, d in enumerate(usage["airflow"]) if d["count"]]
    assert [h for _, h in drawn] == [5, 26, 2]  # 7 and 40 of a 26 px peak; 3 requests still at least 2 px
    await expect(page.locator(f'tr[data-token-id="{airflow.id}"] .usage-total')).to_have_text("50")
    await expect(page.locator(f'tr[data-token-id="{airflow.id}"] td[data-label="Last used"] time')).to_be_visible()
    unused = page.locator("#token-rows tr", has_text="nightly export").locator("svg.sparkline")
    await expect(unused).to_have_accessible_name("No requests in 30 days")
    await expect(unused.locator("rect[height='0']")).to_have_count(30)
    await screenshots(page, "service-tokens-usage")
    await assert_accessible(page, "service-tokens-usage")

    # States: without the expired, then with the deleted (no actions on it).
    await page.get_by_label("Expired", exact=True).uncheck()
    assert await shown(page) == ["airflow", "legacy loader", "nightly export"]
    await expect(page.locator("#match-line")).to_have_text("3 tokens match the filter.")
    await page.get_by_label("Deleted", exact=True).check()
    assert await shown(page) == ["airflow", "legacy loader", "nightly export", "retired"]
    await expect(page.locator(f'tr[data-token-id="{retired.id}"]').get_by_role("button")).to_have_count(0)
    await page.get_by_label("Expired", exact=True).check()
    await page.get_by_label("Deleted", exact=True).uncheck()

    # Only legacy; only rotation recommended (the legacy one, with its badge and Rotate now).
    await page.get_by_label("Legacy format").check()
    assert await shown(page) == ["legacy loader"]
    await expect(page.locator("#match-line")).to_have_text("1 token matches the filter.")
    await page.get_by_label("Legacy format").uncheck()
    await page.get_by_label("Rotation recommended").check()
    assert await shown(page) == ["legacy loader"]
    await expect(
        page.get_by_role("button", name="Rotate now: legacy loader (created on or before 18 July 2023)")
    ).to_be_visible()
    await page.get_by_label("Rotation recommended").uncheck()

    # Expiring soon: the active token that expires within 30 days, not the one already expired.
    await page.get_by_label("Expiring soon").check()
    assert await shown(page) == ["nightly export"]
    # Nothing active to list: said so, and the filter asks for Active back.
    await page.get_by_label("Active", exact=True).uncheck()
    await expect(page.locator("#filter-error")).to_have_text(
        "“Expiring soon” lists active tokens: check Active as well."
    )
    await page.get_by_label("Active", exact=True).check()
    await expect(page.locator("#filter-error")).to_have_text("")
    await page.get_by_label("Expiring soon").uncheck()
    await page.get_by_label("Active", exact=True).uncheck()
    await page.get_by_label("Expired", exact=True).uncheck()
    await expect(page.locator("#filter-error")).to_have_text("Choose at least one state.")
    await page.get_by_label("Deleted", exact=True).check()
    assert await shown(page) == ["retired"]

    # The filter is a form: reachable and changed from the keyboard.
    await page.get_by_label("Legacy format").focus()
    await page.keyboard.press("Space")
    await expect(page.locator("#empty-filtered")).to_be_visible()
    await expect(page.locator("#empty-filtered")).to_have_text("No service tokens match the filter.")
    assert watch.problems == []
    await page.context.close()


# Counts the page's GraphQL answers once the page has read them (every continuation of that read runs in the
# same microtask checkpoint, so when a later evaluate sees the count, the page has also drawn the answer).
COUNT_READ_ANSWERS = """
window.answersRead = 0;
const fetchOriginal = window.fetch;
window.fetch = (...args) => fetchOriginal(...args).then((response) => {
  const json = response.json.bind(response);
  response.json = () => json().finally(() => { window.answersRead += 1; });
  return response;
});
"""


async def test_the_last_filter_is_shown_when_an_earlier_answer_comes_back_after_it(server: Server, browser: Browser):
    admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
    await calls.created(server, admin.token, "airflow", grants=[calls.grant("JOB_VIEWER")])
    await server.import_legacy_token(
        admin.account_id, "legacy loader", datetime(2022, 3, 1, tzinfo=UTC), [Grant("JOB_VIEWER")]
    )
    page, watch = await open_settings(browser, server, PATH)
    await page.add_init_script(COUNT_READ_ANSWERS)
    await page.reload()
    await sign_in(page, admin.token, HEADING)
    assert await shown(page) == ["airflow", "legacy loader"]

    # "Legacy format" checked, then unchecked at once: the answer to the first comes back after the second's.
    release = asyncio.Event()

    async def legacy_answer_late(route) -> None:
        if '"format":"LEGACY"' in (route.request.post_data or ""):
            await release.wait()
        await route.continue_()

    await page.route("**/graphql", legacy_answer_late)
    read_before = await page.evaluate("window.answersRead")
    legacy = page.get_by_label("Legacy format")
    await legacy.check()
    await legacy.uncheck()  # the answer to this filter is already there: shown without asking again
    await expect(page.locator("#match-line")).to_have_text("2 tokens, active and expired.")
    assert await page.evaluate("window.answersRead") == read_before
    release.set()
    await page.wait_for_function("(before) => window.answersRead === before + 1", arg=read_before)  # the late one
    assert await shown(page) == ["airflow", "legacy loader"]  # the filter as it stands: unchecked
    await expect(page.locator("#match-line")).to_have_text("2 tokens, active and expired.")
    assert watch.problems == []
    await page.context.close()
