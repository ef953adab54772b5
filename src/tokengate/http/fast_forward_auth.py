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
from email.utils import formatdate
from typing import Any, Final

from aiohttp import hdrs, web
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11

from tokengate.auth.gate import PRINCIPAL_PREFIX
from tokengate.core.policy import Principal
from tokengate.http import fast_graphql, forward_auth
from tokengate.http.fast_graphql import FastGraphQL
from tokengate.http.headers import NO_STORE
from tokengate.http.middleware import ACCESS_LOG, METRICS, REQUEST_IDS, failure_response, observed
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
        self.graphql = FastGraphQL.of(app)  # POST /graphql, in the same way (fast_graphql.py)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        runtime = self.app.get(RUNTIME)
        if runtime is None:
            return await self.generic(request)
        if not takes(request):
            if self.graphql is not None and fast_graphql.takes(request):
                return await self.graphql(request, runtime)
            return await self.generic(request)
        started = time.perf_counter()
        request_id = self.request_ids.next()
        try:
            answered = check(runtime, request)
            # The allowed answer's own type first: cheaper than the general (ABC) instance check.
            done = type(answered) is PreparedAnswer or isinstance(answered, web.StreamResponse)
            response = answered if done else await answered  # type: ignore[misc]
        except Exception as problem:
            response = failure_response(problem, request_id)
        status = response.status
        if type(response) is PreparedAnswer:
            response.request_id = request_id  # written with the answer, before Cache-Control
            principal = response.principal_prefix  # what the gate put in request[PRINCIPAL_PREFIX]
        else:
            headers = response.headers
            headers["X-Request-Id"] = request_id
            headers["Cache-Control"] = NO_STORE
            principal = request.get(PRINCIPAL_PREFIX)
        observed(self.metrics, self.access_log, request_id, request.method, ROUTE, status, started, principal)
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


class PreparedAnswer(web.StreamResponse):
    """An allowed check's 200 written as the bytes aiohttp writes for ``forward_auth.allowed_response`` (with the
    door's ``X-Request-Id`` and ``Cache-Control``), in one write: the principal's part made once per principal,
    the rest per request. Only for ``GET`` over HTTP/1.1 (anything else is answered by aiohttp's response).

    What aiohttp writes for that response, in order: the status line, the headers it was given, then
    ``Content-Length: 0`` (``Response._start``), ``Date`` and ``Server`` (``_prepare_headers``), and
    ``Connection: close`` when the connection is not kept alive; no body. tests/api/test_fast_forward_auth.py
    compares both doors' answers, and test_prepared_answer_is_the_bytes_aiohttp_writes the bytes themselves.

    It keeps to ``StreamResponse``'s public seams: the server calls ``prepare`` then ``write_eof``, reads
    ``keep_alive``, ``prepared`` and ``status``, and may call ``force_close``; the bytes go through the
    request's ``writer`` (``write_eof``: one write, waiting while the transport is paused, as aiohttp does)."""

    def __init__(self, head: bytes, principal_prefix: str):
        super().__init__(status=200)
        self.head = head
        self.principal_prefix = principal_prefix  # the admitted principal's, for the access line
        self.request_id = ""
        self.closing = False
        self.alive: bool | None = None
        self.sent = False

    def force_close(self) -> None:
        self.closing = True

    @property
    def keep_alive(self) -> bool | None:
        return self.alive

    @property
    def prepared(self) -> bool:
        return self.sent

    async def prepare(self, request: web.BaseRequest) -> None:  # type: ignore[override]
        if self.sent:
            return
        self.sent = True
        self.alive = alive = not self.closing and request.keep_alive
        now = int(time.time())
        if now != _DATE[0]:
            _DATE[:] = [now, formatdate(now, usegmt=True).encode()]
        await request.writer.write_eof(
            b"".join(
                (
                    self.head,
                    b"X-Request-Id: ",
                    self.request_id.encode(),
                    TAIL_BEFORE_DATE,
                    _DATE[1],
                    TAIL_KEPT_ALIVE if alive else TAIL_CLOSED,
                )
            )
        )

    async def write_eof(self, data: bytes = b"") -> None:
        return  # everything went out in prepare

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        raise RuntimeError("a prepared answer has no body")


TAIL_BEFORE_DATE: Final = f"\r\nCache-Control: {NO_STORE}\r\nContent-Length: 0\r\nDate: ".encode()
TAIL_KEPT_ALIVE: Final = f"\r\nServer: {SERVER_SOFTWARE}\r\n\r\n".encode()
TAIL_CLOSED: Final = f"\r\nServer: {SERVER_SOFTWARE}\r\nConnection: close\r\n\r\n".encode()
_DATE: list[Any] = [-1, b""]  # the second the Date header was made for, and its bytes (aiohttp's format)
PREPARED_HEAD = "fast_forward_auth.prepared_head"  # the key of ``prepared_head`` in ``Principal.derived``


def prepared_head(principal: Principal) -> bytes | None:
    """The status line and the principal's headers as aiohttp writes them, once per principal; None when a
    value holds a line break (aiohttp refuses those: its response answers then)."""
    derived = principal.derived
    if PREPARED_HEAD not in derived:
        headers = forward_auth.principal_headers(principal)
        text = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        broken = any("\r" in value or "\n" in value for value in headers.values())
        derived[PREPARED_HEAD] = None if broken else ("HTTP/1.1 200 OK\r\n" + text).encode()
    return derived[PREPARED_HEAD]  # type: ignore[no-any-return]


def allowed_response(request: web.BaseRequest, principal: Principal) -> web.StreamResponse:
    """``forward_auth.allowed_response``, written by ``PreparedAnswer`` for a GET over HTTP/1.1."""
    if request.method == hdrs.METH_GET and request.version == HttpVersion11:
        head = prepared_head(principal)
        if head is not None:
            return PreparedAnswer(head, principal.display_prefix)
    return forward_auth.allowed_response(request, principal)


def check(runtime: Runtime, request: web.BaseRequest) -> web.StreamResponse | Awaitable[web.StreamResponse]:
    """The query-string form's answer, as the generic route gives it (``forward_auth.answer_check``)."""
    return forward_auth.answer_check(runtime.gate, request, *QUESTIONS.of(request), allowed_response)


def install(server: web.Server, app: web.Application) -> None:
    """Put the fast door in front of the application's handler on the server that serves ``app``."""
    server.request_handler = FastForwardAuth(app, server.request_handler)
