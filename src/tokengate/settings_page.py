"""The Service Tokens settings page: static files in the package that talk to the public GraphQL API only."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

PAGE = Path(__file__).resolve().parent / "static" / "settings" / "service-tokens.html"

# Everything comes from this origin and nothing runs inline, so an injected string cannot execute;
# form-action 'none' keeps a form from ever submitting the pasted token in a URL if the script fails.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def service_tokens_page(request: web.Request) -> web.Response:
    """``GET /settings/service-tokens``: the page; its script and styles are under ``/static/settings/``."""
    return web.Response(body=PAGE.read_bytes(), content_type="text/html", charset="utf-8", headers=HEADERS)
