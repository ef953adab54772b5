"""Reading a request's body within its time, refused before it is read when it cannot be admitted anyway."""

from __future__ import annotations

import asyncio
import json
from typing import Final

from aiohttp import web

from tokengate.auth.gate import Refusal
from tokengate.graphql.engine.document_limits import ANONYMOUS_MAX_BODY_BYTES
from tokengate.http.responses import refusal_body
from tokengate.runtime import Runtime

BODY_TIMEOUT: Final = json.dumps(
    {"errors": [{"message": "the request body did not arrive in time", "extensions": {"code": "BAD_REQUEST"}}]},
    separators=(",", ":"),
)
ANONYMOUS_TOO_LARGE: Final = json.dumps(
    {
        "errors": [
            {
                "message": f"authentication required: without credentials a body is at most {ANONYMOUS_MAX_BODY_BYTES} "
                "bytes (public introspection and leak reports)",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    },
    separators=(",", ":"),
)


async def read_body(request: web.BaseRequest, runtime: Runtime) -> bytes:
    """The request's body, or 408 when it does not arrive within the body timeout. Refused before it is read:
    a body without credentials larger than a public document could be (401), and a request whose payer is out
    of a budget already (429, ``Gate.before_body``), or whose forwarded client address is not one (400)."""
    if "Authorization" not in request.headers and (request.content_length or 0) > ANONYMOUS_MAX_BODY_BYTES:
        raise web.HTTPUnauthorized(
            text=ANONYMOUS_TOO_LARGE, content_type="application/json", headers={"WWW-Authenticate": "Bearer"}
        )
    try:
        runtime.gate.before_body(request)
    except Refusal as refusal:
        raised = web.HTTPBadRequest if refusal.status == 400 else web.HTTPTooManyRequests
        raise raised(
            text=refusal_body(refusal).decode(), content_type="application/json", headers=refusal.headers
        ) from None
    return await read_in_time(request, runtime.config.limits.body_timeout)


async def read_in_time(request: web.BaseRequest, seconds: float) -> bytes:
    """The request's body, or 408 when it does not arrive within ``seconds``."""
    if request.content.is_eof():  # the whole body has arrived (a small one, with the headers): nothing to wait for
        return await request.read()
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=BODY_TIMEOUT, content_type="application/json", headers={"Connection": "close"}
        ) from None
