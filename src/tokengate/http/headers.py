"""What every answer carries, whichever door wrote it.

- ``/graphql``, ``/auth/check`` and ``/oauth/introspect`` answers (refusals included) carry
  ``Cache-Control: no-store``: they hold secrets, decisions about a credential, or both.
- Every HTML answer, GraphiQL and any static copy of a page included, carries the pages' Content-Security-Policy
  (``frame-ancestors 'none'``), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
  Both are set in ``on_response_prepare``, the one hook every response (a static file's too) goes through.
(A request aiohttp's parser refuses never reaches this hook: doors/protocol_errors.py answers it.)
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from tokengate.http.pages import PAGE_HEADERS

NO_STORE: Final = "no-store"
# GraphiQL's stylesheet embeds its fonts as data: URLs; nothing else is loosened.
GRAPHIQL_CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self' data:; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HTML_POLICIES: Final = {"/graphql": GRAPHIQL_CONTENT_SECURITY_POLICY}
HTML_HEADERS: Final = {name: value for name, value in PAGE_HEADERS.items() if name != "Cache-Control"}


def is_api_path(path: str) -> bool:
    return path in ("/graphql", "/auth/check", "/oauth/introspect") or path.startswith("/auth/check/")


async def add_security_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: no-store on the API routes, the page headers on every HTML answer."""
    headers = response.headers
    path = request.path
    if is_api_path(path):
        headers["Cache-Control"] = NO_STORE
    if response.content_type == "text/html":
        for name, value in HTML_HEADERS.items():
            headers.setdefault(name, value)
        policy = HTML_POLICIES.get(path)
        if policy is not None:
            headers["Content-Security-Policy"] = policy


def add_hooks(app: web.Application) -> None:
    app.on_response_prepare.append(add_security_headers)
