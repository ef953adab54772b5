"""What every request goes through, whatever its door: a request id, one access line and a counter; a 500
never shows a traceback; an outage is a 503."""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from aiohttp import web

from tokengate.auth.gate import PRINCIPAL_PREFIX, unavailable
from tokengate.http.observability import AccessLog, Metrics, RequestIds
from tokengate.http.responses import error_response, refusal_response
from tokengate.store import DATABASE_UNAVAILABLE, DatabaseUnavailable

log = logging.getLogger("tokengate.http")

METRICS: Final = web.AppKey("metrics", Metrics)
ACCESS_LOG: Final = web.AppKey("access_log", AccessLog)
REQUEST_IDS: Final = web.AppKey("request_ids", RequestIds)
REQUEST_ID: Final = web.RequestKey("request_id", str)


@web.middleware
async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
    started = time.perf_counter()
    app = request.app
    request_id = request[REQUEST_ID] = app[REQUEST_IDS].next()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as http_error:
        status = http_error.status
        http_error.headers["X-Request-Id"] = request_id
        raise
    except Exception as problem:
        response = failure_response(problem, request_id)
        status = response.status
    finally:
        observed(
            app[METRICS],
            app[ACCESS_LOG],
            request_id,
            request.method,
            route,
            status,
            started,
            request.get(PRINCIPAL_PREFIX),
        )
    response.headers["X-Request-Id"] = request_id
    return response


def observed(
    metrics: Metrics,
    access_log: AccessLog,
    request_id: str,
    method: str,
    route: str,
    status: int,
    started: float,
    principal: str | None,
) -> None:
    """What every request leaves, whichever door answered it (this middleware or a fast door): its count in
    ``tokengate_http_requests_total`` and one access line, timed from ``started`` (``time.perf_counter``)."""
    metrics.count_request(route, status)
    access_log.write(request_id, method, route, status, round((time.perf_counter() - started) * 1000, 3), principal)


def failure_response(problem: Exception, request_id: str) -> web.Response:
    """What a request that raised answers: 503 when the database is unreachable, else a masked 500 (logged)."""
    if isinstance(problem, (DatabaseUnavailable, *DATABASE_UNAVAILABLE)):
        log.warning("database unavailable during request %s", request_id)
        return refusal_response(unavailable())
    log.error("unhandled error in request %s", request_id, exc_info=problem)
    return error_response(500, f"Internal server error (request id {request_id})", "INTERNAL_SERVER_ERROR")


# aiohttp's own refusals in the JSON error shape of every door, with their contract code.
HTTP_ERROR_CODES: Final = {403: "FORBIDDEN", 404: "NOT_FOUND"}
KEPT_HEADERS: Final = ("allow", "retry-after")


@web.middleware
async def errors_as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp answers a method a route does not take (405, with ``Allow``), an unknown path (404) and a body
    over the size limit (413) in text/plain; every error of this service is JSON with a contract code."""
    try:
        return await handler(request)
    except web.HTTPException as http_error:
        answer = as_json_error(http_error)
        if answer is None:
            raise
        return answer


def as_json_error(http_error: web.HTTPException) -> web.Response | None:
    """aiohttp's 4xx refusal in the JSON error shape; None for a server error, or a refusal that already says
    what happened in JSON (bodies.read_body): it is answered as raised."""
    if not 400 <= http_error.status < 500 or http_error.content_type == "application/json":
        return None
    headers = {name: value for name, value in http_error.headers.items() if name.lower() in KEPT_HEADERS}
    code = HTTP_ERROR_CODES.get(http_error.status, "BAD_REQUEST")
    return error_response(http_error.status, http_error.reason, code, headers)
