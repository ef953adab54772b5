"""GraphiQL, served by tokengate itself, in a real browser: the viewer answers with a token set in the
Headers pane, as a developer does it."""

from __future__ import annotations

import json

from playwright.async_api import Page

QUERY = """{
  viewer {
    kind
    account { id name plan }
    user { email }
  }
}
"""
QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
RESPONSE_EDITOR = ".graphiql-response .CodeMirror"


async def set_editor(page: Page, selector: str, text: str) -> None:
    """Sets a GraphiQL (CodeMirror 5) editor's text the way typing does: through the editor, firing its change events."""
    await page.wait_for_selector(selector)
    await page.evaluate("([s, text]) => document.querySelector(s).CodeMirror.setValue(text)", [selector, text])


async def editor_text(page: Page, selector: str) -> str:
    return await page.evaluate("(s) => document.querySelector(s).CodeMirror.getValue()", selector)


async def test_graphiql_answers_the_viewer_with_a_token_in_the_headers_pane(server, page, artifacts):
    seeded = await server.bootstrap("Acme GraphiQL", "ENTERPRISE", "dev@acme.example")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    # The page runs under a strict CSP (no inline script or style): the browser reports anything it blocks.
    blocked: list[str] = []
    page.on(
        "console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None
    )
    served = await page.goto(server.url + "/graphql")
    assert served is not None and served.status == 200
    assert "frame-ancestors 'none'" in served.headers["content-security-policy"]
    assert await page.title() == "tokengate GraphiQL"
    # The editor appears only once the assets loaded, and every one came from tokengate itself (no CDN).
    await page.wait_for_selector(QUERY_EDITOR, timeout=15_000)
    assert any("/static/graphiql/graphiql.min.js" in url for url in requested)
    assert [url for url in requested if not url.startswith(server.url + "/")] == []

    await set_editor(page, QUERY_EDITOR, QUERY)
    await page.click('.graphiql-editor-tools button[data-name="headers"]')
    headers = json.dumps({"Authorization": f"Bearer {seeded.token}"}, indent=2)
    await set_editor(page, HEADERS_EDITOR, headers)
    assert await editor_text(page, HEADERS_EDITOR) == headers
    await page.click(".graphiql-execute-button")

    await page.wait_for_function(
        "(s) => document.querySelector(s).CodeMirror.getValue().includes('viewer')", arg=RESPONSE_EDITOR
    )
    shown = json.loads(await editor_text(page, RESPONSE_EDITOR))
    await page.screenshot(path=artifacts / "graphiql-viewer.png")
    assert blocked == []
    assert shown == {
        "data": {
            "viewer": {
                "kind": "USER",
                "account": {"id": seeded.account_id, "name": "Acme GraphiQL", "plan": "ENTERPRISE"},
                "user": {"email": "dev@acme.example"},
            }
        }
    }


async def test_graphiql_without_a_token_shows_the_refusal(server, page):
    await page.goto(server.url + "/graphql")
    await set_editor(page, QUERY_EDITOR, QUERY)
    await page.click(".graphiql-execute-button")
    await page.wait_for_function(
        "(s) => document.querySelector(s).CodeMirror.getValue().includes('errors')", arg=RESPONSE_EDITOR
    )
    shown = json.loads(await editor_text(page, RESPONSE_EDITOR))
    assert [error["extensions"]["code"] for error in shown["errors"]] == ["UNAUTHENTICATED"]
