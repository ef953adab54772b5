"""``/auth/check`` off the generic stack: the forward-auth door answered before the application's router,
middleware chain and response signals, which cost as much as the check itself.

Gateways ask ``/auth/check`` on every request they pass on; everything the generic stack does for it is done
here directly, the same way:

- the question, the gate, the answer: ``forward_auth.answer_check`` itself (``check_question``,
  ``Gate.admit``, ``answer``), without a coroutine when the gate answers from memory;
- what ``middleware.observe`` does for every request: a request id (``X-Request-Id``), one access line and
  ``tokengate_http_requests_total{route="/auth/check"}`` per request, a masked 500 or a 503 for what raises;
- what ``headers.add_security_headers`` adds to API answers: ``Cache-Control: no-store``.

Only a request whose target is exactly ``/auth/check`` (with or without a query string) and that carries no
``Expect`` header is taken; every other request (the Envoy form ``/auth/check/<path>``, an encoded or
absolute-form target, ``Expect: 100-continue``, a request before the application has started) goes to the
application as before. ``tests/api/test_fast_forward_auth.py`` proves both doors answer alike.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import hdrs, web

from tokengate.auth.gate import PRINCIPAL_PREFIX
from tokengate.http import forward_auth
from tokengate.http.headers import NO_STORE
from tokengate.http.middleware import ACCESS_LOG, METRICS, REQUEST_IDS, failure_response
from tokengate.runtime import RUNTIME, Runtime

ROUTE: Final = "/auth/check"  # the route's canonical path, as the generic door counts and logs it
WITH_QUERY: Final = ROUTE + "?"
MAX_QUESTIONS: Final = 1024  # request targets whose question is kept

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def takes(request: web.BaseRequest) -> bool:
    """Whether this door answers the request (else the application does)."""
    target = request.raw_path
    return (target == ROUTE or target.startswith(WITH_QUERY)) and hdrs.EXPECT not in request.headers


class FastForwardAuth:
    """The server's request handler: ``/auth/check`` here, everything else to the application's handler."""

    def __init__(self, app: web.Application, generic: Handler):
        self.app = app
        self.generic = generic
        self.metrics = app[METRICS]
        self.access_log = app[ACCESS_LOG]
        self.request_ids = app[REQUEST_IDS]

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        runtime = self.app.get(RUNTIME)
        if runtime is None or not takes(request):
            return await self.generic(request)
        started = time.perf_counter()
        request_id = self.request_ids.next()
        try:
            answered = check(runtime, request)
            response = answered if isinstance(answered, web.StreamResponse) else await answered
        except Exception as problem:
            response = failure_response(problem, request_id)
        status = response.status
        self.metrics.count_request(ROUTE, status)
        self.access_log.write(
            request_id,
            request.method,
            ROUTE,
            status,
            round((time.perf_counter() - started) * 1000, 3),
            request.get(PRINCIPAL_PREFIX),
        )
        headers = response.headers
        headers["X-Request-Id"] = request_id
        headers["Cache-Control"] = NO_STORE
        return response


Question = tuple[str | None, str | None, str | None]  # resource, access, projectId as the query string gives them


class Questions:
    """The question of each request target, parsed once: a gateway asks the same few targets over and over.

    A target's question is what ``request.query`` (yarl) gives for it, the first time the target is seen; the
    parse depends on the target's text alone, so the same text always gives the same question (proved against
    yarl in tests/unit/test_fast_questions.py). At most ``size`` targets are kept; past that, they are
    forgotten all at once (an attacker's endless distinct targets cost a parse each, as before)."""

    def __init__(self, size: int = MAX_QUESTIONS):
        self.size = size
        self.known: dict[str, Question] = {}

    def of(self, request: web.BaseRequest) -> Question:
        target = request.raw_path
        asked = self.known.get(target)
        if asked is None:
            query = request.query
            asked = (query.get("resource"), query.get("access"), query.get("projectId"))
            if len(self.known) >= self.size:
                self.known.clear()
            self.known[target] = asked
        return asked


QUESTIONS: Final = Questions()  # a pure function of the target's text: one for the process


def check(runtime: Runtime, request: web.BaseRequest) -> web.Response | Awaitable[web.Response]:
    """The query-string form's answer, as the generic route gives it (``forward_auth.answer_check``)."""
    return forward_auth.answer_check(runtime.gate, request, *QUESTIONS.of(request))


def install(server: web.Server, app: web.Application) -> None:
    """Put the fast door in front of the application's handler on the server that serves ``app``."""
    server.request_handler = FastForwardAuth(app, server.request_handler)
