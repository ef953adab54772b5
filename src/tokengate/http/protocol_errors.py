"""Requests aiohttp refuses before any door sees them: a URL or a header line too long, too many headers, a
message that is not HTTP. aiohttp answers those 400 in text/plain, echoing the start of the offending line;
here they answer like every other error of the service: JSON with a contract code, 414 for a URL and 431 for
headers as RFC 9110 and the GraphQL over HTTP specification name them, and without repeating what was sent.

aiohttp has no hook for this answer (it is made by its connection handler, ``RequestHandler.handle_error``,
before routing and middleware), so ``answer_protocol_errors_in_json`` wraps that method once per process.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

_AIOHTTP_HANDLE_ERROR: Final = web_protocol.RequestHandler.handle_error


def status_and_message(problem: HttpProcessingError) -> tuple[int, str]:
    """The status and message for an HTTP message aiohttp could not parse."""
    if isinstance(problem, LineTooLong):
        line = problem.args[0] if problem.args else b""
        # The parser reports the start of the line: a request target starts with "/", a header value seldom does.
        if isinstance(line, (bytes, bytearray)) and line.startswith(b"/"):
            return 414, "the request line (URL) is too long: send the query in a POST body"
        return 431, "request header fields too large: each header line may be at most 8190 bytes"
    if "headers" in (problem.message or "").lower():
        return 431, "too many request headers"
    return 400, "malformed HTTP request"


def _handle_error(
    self: web_protocol.RequestHandler,
    request: web.BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    answer = _AIOHTTP_HANDLE_ERROR(self, request, status, exc, message)  # logs, and refuses a half-sent answer
    if not isinstance(exc, HttpProcessingError) or status >= 500:
        return answer
    code, text = status_and_message(exc)
    payload: dict[str, Any] = {"errors": [{"message": text, "extensions": {"code": "BAD_REQUEST"}}]}
    response = web.Response(
        status=code,
        text=json.dumps(payload, separators=(",", ":")),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
    response.force_close()
    return response


def answer_protocol_errors_in_json() -> None:
    """Idempotent: aiohttp's connection handler answers parse errors through ``_handle_error`` from now on."""
    if web_protocol.RequestHandler.handle_error is not _handle_error:
        web_protocol.RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]
