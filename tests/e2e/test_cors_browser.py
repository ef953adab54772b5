"""A browser front end on another origin calls tokengate with a token: Chromium itself enforces CORS, so
only an origin in TOKENGATE_CORS_ORIGINS gets an answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import Server, free_port, make_config, start_server

# A front end as small as it gets: it asks tokengate who the token belongs to and shows the outcome.
FRONT_END = """<!doctype html>
<html><head><meta charset="utf-8"><title>front end</title></head>
<body><h1>front end on <span id="origin"></span></h1><pre id="outcome">not asked yet</pre>
<script>
document.getElementById("origin").textContent = location.origin;
async function askViewer(url, token) {
  let outcome;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
      body: JSON.stringify({query: "{ viewer { kind account { id } } }"}),
    });
    outcome = {status: response.status, body: await response.json()};
  } catch (error) {
    outcome = {error: String(error)};
  }
  document.getElementById("outcome").textContent = JSON.stringify(outcome, null, 2);
  return outcome;
}
</script></body></html>
"""


async def front_end(request: web.Request) -> web.Response:
    return web.Response(text=FRONT_END, content_type="text/html")


@pytest.fixture
def allowed_port() -> int:
    return free_port()


@pytest.fixture
async def cors_server(database: str, tmp_path: Path, allowed_port: int) -> AsyncIterator[Server]:
    config = make_config(tmp_path, cors_origins=(f"http://127.0.0.1:{allowed_port}",))
    async for server in start_server(database, config):
        yield server


async def test_a_configured_origin_gets_the_viewer(cors_server, allowed_port, loopback_site, page, artifacts):
    seeded = await cors_server.bootstrap()
    origin = await loopback_site(front_end, allowed_port)
    await page.goto(origin + "/")
    outcome = await page.evaluate(
        "([url, token]) => askViewer(url, token)", [cors_server.url + "/graphql", seeded.token]
    )
    await page.screenshot(path=artifacts / "cors-allowed-origin.png")
    assert outcome == {
        "status": 200,
        "body": {"data": {"viewer": {"kind": "USER", "account": {"id": seeded.account_id}}}},
    }


async def test_another_origin_is_refused_by_the_browser(cors_server, loopback_site, page, artifacts):
    seeded = await cors_server.bootstrap()
    origin = await loopback_site(front_end)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    await page.goto(origin + "/")
    outcome = await page.evaluate(
        "([url, token]) => askViewer(url, token)", [cors_server.url + "/graphql", seeded.token]
    )
    await page.screenshot(path=artifacts / "cors-refused-origin.png")
    assert outcome == {"error": "TypeError: Failed to fetch"}
    # The reason is CORS, not an unreachable server.
    assert any("blocked by CORS policy" in line for line in console), json.dumps(console)
