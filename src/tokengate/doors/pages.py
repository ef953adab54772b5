"""Pages for people: the settings pages and GraphiQL's HTML, and the static files they load.

Everything comes from this origin and nothing runs inline, so an injected string cannot execute; every
HTML answer carries the same security headers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web

STATIC_DIR: Final = Path(__file__).resolve().parents[1] / "static"
SETTINGS_PAGE: Final = STATIC_DIR / "settings" / "service-tokens.html"
GRAPHIQL_PAGE: Final = STATIC_DIR / "graphiql" / "index.html"

# form-action 'none' keeps a form from ever submitting the pasted token in a URL if the script fails.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def html_page(path: Path, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=path.read_bytes(), content_type="text/html", charset="utf-8", headers=headers or PAGE_HEADERS
    )


async def service_tokens_page(request: web.Request) -> web.Response:
    """``GET /settings/service-tokens``: the page; its script and styles are under ``/static/settings/``."""
    return html_page(SETTINGS_PAGE)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/settings/service-tokens", service_tokens_page)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
