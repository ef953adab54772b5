"""Helpers for driving the account settings pages in Chromium: a watch on what a page must not do, opening a
page, signing in through the shell, screenshots at both widths, and the axe-core accessibility check.

axe-core comes from npm (tests/e2e/package.json, installed by `make e2e` with `npm ci`). Playwright's
``add_script_tag(path=...)`` inserts the file as an inline script, which the pages' CSP (`script-src 'self'`)
refuses, as it should (``test_the_pages_csp_refuses_an_injected_inline_script`` holds that); so axe is
evaluated through the DevTools protocol instead, which runs beside the page's CSP without weakening it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server

playwright_api = pytest.importorskip("playwright.async_api")
Browser = playwright_api.Browser
Page = playwright_api.Page
expect = playwright_api.expect

ARTIFACTS = Path(__file__).resolve().parents[2] / "e2e-artifacts"
AXE_SCRIPT = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (1280, 360)
# The browser's address as the `behind_proxy` server sees it (X-Forwarded-For, believed from loopback).
BROWSER_ADDRESS = "203.0.113.9"
FROM_BROWSER = {"X-Forwarded-For": BROWSER_ADDRESS}
BLOCKING_IMPACTS = ("serious", "critical")
# What overflows its own box without clipping it, innermost last (what to mend when a page scrolls sideways).
OVERFLOWING = """[...document.body.querySelectorAll('*')]
  .filter((e) => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible')
  .slice(-4).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} ${e.scrollWidth}/${e.clientWidth}px`)"""


class PageWatch:
    """What the page did that it must not: console errors (CSP violations land there) and off-origin requests."""

    def __init__(self, page: Page, origin: str):
        self.problems: list[str] = []
        page.on("console", lambda message: self.console(message))
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("request", lambda request: self.request(request.url, origin))

    def console(self, message) -> None:
        # A refused request (401/403) is logged by Chromium as a resource error: the page handles those.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(f"console: {message.text}")

    def request(self, url: str, origin: str) -> None:
        # A download the page builds itself is a blob: URL of this origin.
        if not url.startswith((origin + "/", f"blob:{origin}/")):
            self.problems.append(f"request outside the origin: {url}")


async def open_settings(
    browser: Browser, server: Server, path: str, width: int = 1280, **options: Any
) -> tuple[Page, PageWatch]:
    context = await browser.new_context(
        viewport={"width": width, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
        **options,
    )
    page = await context.new_page()
    watch = PageWatch(page, server.url)
    response = await page.goto(server.url + path)
    assert response is not None and response.status == 200
    return page, watch


async def sign_in(page: Page, token: str, heading: str) -> None:
    await page.get_by_label("Personal token", exact=True).fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()


async def screenshots(page: Page, name: str) -> None:
    """``settings-<name>-1280.png`` and ``-360.png`` (whole page); at 360 px nothing may scroll sideways."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size or {"width": 1280, "height": 900}
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        if width == 360 and await page.evaluate("document.documentElement.scrollWidth") > 360:
            raise AssertionError(f"{name} scrolls sideways: {await page.evaluate(OVERFLOWING)}")
        await page.screenshot(path=str(ARTIFACTS / f"settings-{name}-{width}.png"), full_page=True)
    await page.set_viewport_size(size)


async def axe_results(page: Page) -> dict[str, Any]:
    assert AXE_SCRIPT.exists(), f"{AXE_SCRIPT} is missing: `make e2e` installs axe-core with npm ci"
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    return await page.evaluate("axe.run(document, { resultTypes: ['violations'] })")


async def assert_accessible(page: Page, name: str) -> None:
    """No serious or critical axe-core violation at 1280 px and at 360 px; every finding is written to
    ``e2e-artifacts/axe-<name>.json`` (minor and moderate ones too)."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size or {"width": 1280, "height": 900}
    report, blocking = {}, []
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        results = await axe_results(page)
        found = [
            {"id": v["id"], "impact": v["impact"], "help": v["help"], "targets": [n["target"] for n in v["nodes"]]}
            for v in results["violations"]
        ]
        report[str(width)] = {"axe": results["testEngine"]["version"], "violations": found}
        blocking += [
            f"{width}px {v['impact']} {v['id']}: {v['help']} at {v['targets']}"
            for v in found
            if v["impact"] in BLOCKING_IMPACTS
        ]
    await page.set_viewport_size(size)
    (ARTIFACTS / f"axe-{name}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    assert blocking == [], f"{name}: " + "; ".join(blocking)
