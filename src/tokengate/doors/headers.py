"""What every answer carries, whichever door wrote it, and how a request the HTTP parser refuses is answered.

- ``/graphql`` and ``/auth/check`` answers (refusals included) carry ``Cache-Control: no-store``: they hold
  secrets, decisions about a credential, or both.
- Every HTML answer, GraphiQL and any static copy of a page included, carries the pages' Content-Security-Policy
  (``frame-ancestors 'none'``), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
  Both are set in ``on_response_prepare``, the one hook every response (a static file's too) goes through.
- A request aiohttp's parser refuses (a header line over 8190 bytes, too many headers, bytes that are not
  HTTP) is answered in JSON, 431 for oversized headers and 400 otherwise, never quoting what was sent: aiohttp's
  own answer quotes the start of the offending line, which for an ``Authorization`` header is the token.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from tokengate.doors.pages import PAGE_HEADERS

NO_STORE: Final = "no-store"
# GraphiQL's stylesheet embeds its fonts as data: URLs; nothing else is loosened.
GRAPHIQL_CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; font-src 'self' data:; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HTML_POLICIES: Final = {"/graphql": GRAPHIQL_CONTENT_SECURITY_POLICY}
HTML_HEADERS: Final = {name: value for name, value in PAGE_HEADERS.items() if name != "Cache-Control"}
MAX_HEADER_LINE: Final = 8190  # aiohttp's parser limit for one header line (name and value)


def is_api_path(path: str) -> bool:
    return path == "/graphql" or path == "/auth/check" or path.startswith("/auth/check/")


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


def parser_refusal(problem: HttpProcessingError) -> web.Response:
    """The JSON answer to a request the parser refused: what was wrong, never what was sent."""
    if isinstance(problem, LineTooLong) or "too many headers" in str(problem.message).lower():
        status = 431
        message = f"request header fields too large: each header line may be at most {MAX_HEADER_LINE} bytes"
    else:
        status, message = 400, "malformed HTTP request"
    body = json.dumps({"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]}, separators=(",", ":"))
    response = web.Response(
        text=body, status=status, content_type="application/json", headers={"Cache-Control": NO_STORE}
    )
    response.force_close()
    return response


_ORIGINAL_HANDLE_ERROR: Final = RequestHandler.handle_error


def _handle_error(
    self: RequestHandler,
    request: web.BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
        return _ORIGINAL_HANDLE_ERROR(self, request, status, exc, message)
    # Logged through aiohttp's logger, whose filter (observability.HideMalformedRequestText) drops the text.
    self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
    return parser_refusal(exc)


def answer_parser_errors_in_json() -> None:
    """aiohttp builds the parser's refusal in ``RequestHandler.handle_error`` before any application code runs,
    and has no option for another handler class: take that method over (idempotent, once per process)."""
    handler: Any = RequestHandler
    if handler.handle_error is not _handle_error:
        handler.handle_error = _handle_error


def add_hooks(app: web.Application) -> None:
    answer_parser_errors_in_json()
    app.on_response_prepare.append(add_security_headers)
