"""Serving HTTP with limits on connections: the server ``tokengate serve`` runs and the tests start, built in
one place (``start``).

aiohttp bounds a request's head only by its idle keep-alive timer (an hour by default), and a body not at
all. Here, per connection:

- a connection must deliver a complete request head within ``header_timeout`` seconds of being opened, or of
  the first byte of its next request (a silent connection, or headers trickled a byte at a time): else 408 and
  closed;
- an idle kept-alive connection is closed after ``idle_timeout`` (aiohttp's keep-alive timer);
- a body must arrive within ``body_timeout`` once its head is in: ``bodies.read_body`` (the GraphQL door's read)
  answers 408 past it, and a body no handler reads is drained for at most that long (aiohttp's lingering) when
  at most ``MAX_DRAIN_BYTES`` of it are still to come; past that it is left unread (the answer says
  ``Connection: close``, reading stops, the connection closes after that time): a refused 480 KB body costs its
  refusal, not a read of 480 KB, and a client cannot come back for the next refusal at once;
- a client socket address (IPv6: its /64) holds at most ``connections_per_address`` connections; the next is
  answered 429 with Retry-After and closed before anything is read. Trusted proxies are not capped: their
  connections carry everyone's requests.

What this relies on in aiohttp (3.14, pinned in the lock files; tests/api/test_connections.py fails if it
changes): ``RequestHandler`` keeps parsed heads in ``_messages``, waits for the next in ``_waiter``, writes each
answer in ``finish_response``, stops in ``shutdown``, has ``_lingering_time`` and takes ``_loop``; ``web.Server``
makes handlers with ``_kwargs`` in ``__call__``, and ``AppRunner._make_server`` returns the one the sites listen
with.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import json
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from tokengate.config import Config, IPNetwork
from tokengate.core.limits import Limits, address_key
from tokengate.http import fast_forward_auth
from tokengate.runtime import RUNTIME

RETRY_SECONDS: Final = 1
MAX_DRAIN_BYTES: Final = 256 * 1024  # Go's maxPostHandlerReadBytes: beyond it, reconnecting is cheaper than reading


def _canned(status: str, code: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]}, separators=(",", ":"))
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Connection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return (head + body).encode()


TOO_MANY_CONNECTIONS: Final = _canned(
    "429 Too Many Requests",
    "RATE_LIMITED",
    "too many connections from this address",
    f"Retry-After: {RETRY_SECONDS}\r\n",
)
HEAD_TIMEOUT: Final = _canned("408 Request Timeout", "BAD_REQUEST", "the request head did not arrive in time")


class ListenFailed(OSError):
    """The address cannot be listened on (taken, not this machine's): said as such, not as a database error."""


class ConnectionGuard:
    """Counts open connections per client socket address and says whether one more may stay open."""

    def __init__(
        self, limits: Limits, exempt: tuple[IPNetwork, ...] = (), refused: Callable[[str], None] = lambda reason: None
    ):
        self.limits = limits
        self.exempt = exempt
        self.refused = refused
        self.open: dict[str, int] = {}

    def is_exempt(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self.exempt)

    def admit(self, address: str | None) -> str | None:
        """The key the connection is counted under, or None when the address already has its share."""
        if address is not None and self.is_exempt(address):
            return ""
        key = address_key(address)
        count = self.open.get(key, 0)
        if count >= self.limits.connections_per_address:
            self.refused("connections")
            return None
        self.open[key] = count + 1
        return key

    def release(self, key: str) -> None:
        if not key:
            return
        count = self.open.get(key, 0) - 1
        if count > 0:
            self.open[key] = count
        else:
            self.open.pop(key, None)


def body_left_to_arrive(request: web.BaseRequest) -> float:
    """Bytes of the request's body not yet received: 0 once it all is, unbounded for a chunked body under way."""
    if not request.body_exists or request.content.is_eof():
        return 0
    if request.content_length is None:
        return float("inf")
    return max(0, request.content_length - request.content.total_raw_bytes)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's connection handler, with a deadline on request heads and the per-address connection cap."""

    def __init__(self, manager: Any, *, guard: ConnectionGuard, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._counted_as: str | None = None
        self._head_deadline: asyncio.TimerHandle | None = None
        self._unread_wait: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self._counted_as = self._guard.admit(peer[0] if isinstance(peer, tuple) else None)
        if self._counted_as is None:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(TOO_MANY_CONNECTIONS)
            self.force_close()
            return
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._counted_as is not None:
            self._guard.release(self._counted_as)
            self._counted_as = None
        self._end_unread_wait()
        super().connection_lost(exc)

    def finish_response(  # type: ignore[override]
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> Coroutine[Any, Any, tuple[web.StreamResponse, bool]]:
        """aiohttp's, and for a request with more than ``MAX_DRAIN_BYTES`` of body still to come, ``Connection:
        close`` and the body left unread. A bodiless request (every GET) gets aiohttp's coroutine itself: no
        second coroutine per request (the caller awaits what this returns either way)."""
        if not request.body_exists or body_left_to_arrive(request) <= MAX_DRAIN_BYTES:
            return super().finish_response(request, resp, start_time)
        return self._finish_leaving_body_unread(request, resp, start_time)

    async def _finish_leaving_body_unread(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if not resp.prepared:
            resp.force_close()  # "Connection: close": the client knows not to send on this connection again
        answered = await super().finish_response(request, resp, start_time)
        await self._leave_unread(self._lingering_time)
        return answered

    async def _leave_unread(self, seconds: float) -> None:
        """Stop reading (flow control stops the sender: its body costs nothing more) and close in ``seconds``, or
        when the server stops. Not at once: a client reconnecting at once would cost a refusal per round trip."""
        self.pause_reading()
        self._unread_wait = self._loop.create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._unread_wait), seconds)
        self.force_close()

    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109 (aiohttp's signature)
        self._end_unread_wait()
        await super().shutdown(timeout)

    def _end_unread_wait(self) -> None:
        if self._unread_wait is not None and not self._unread_wait.done():
            self._unread_wait.set_result(None)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._messages:
            if self._head_deadline is not None:
                self._disarm()  # a complete head
        elif data and self._waiting_for_request() and self._head_deadline is None:
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def _waiting_for_request(self) -> bool:
        return self._waiter is not None and not self._waiter.done()

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self._loop.call_later(self._guard.limits.header_timeout, self._head_late)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_late(self) -> None:
        self._head_deadline = None
        if self._messages or not self._waiting_for_request():
            return  # a request is in hand: its handler's own deadlines apply
        if self.transport is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.transport.write(HEAD_TIMEOUT)
        self.force_close()


class GuardedServer(web.Server):
    """aiohttp's low-level server, handing each connection a ``GuardedRequestHandler``."""

    guard: ConnectionGuard

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, guard=self.guard, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    def __init__(self, app: web.Application, guard: ConnectionGuard, *, fast_doors: bool = True, **kwargs: Any):
        super().__init__(app, **kwargs)
        self.guard = guard
        self.fast_doors = fast_doors  # False only to compare the fast door with the generic one (tests)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The server aiohttp built for the app, with its settings, now making guarded handlers.
        server.__class__ = GuardedServer
        assert isinstance(server, GuardedServer)
        server.guard = self.guard
        if self.fast_doors:
            fast_forward_auth.install(server, self._app)  # /auth/check before the application's router
        return server


def runner(app: web.Application, config: Config, *, fast_doors: bool = True, **kwargs: Any) -> GuardedAppRunner:
    """The app's runner with the connection limits of ``config`` (kwargs: aiohttp's, e.g. ``handle_signals``);
    ``fast_doors``: /auth/check answered before the application (doors/fast_forward_auth.py)."""
    limits = config.limits

    def refused(reason: str) -> None:
        if RUNTIME in app:  # the app's resources exist once it has started
            app[RUNTIME].gate.throttle.count(reason)

    guard = ConnectionGuard(limits, config.trusted_proxies, refused)
    return GuardedAppRunner(
        app,
        guard,
        fast_doors=fast_doors,
        access_log=None,
        keepalive_timeout=limits.idle_timeout,
        lingering_time=limits.body_timeout,
        **kwargs,
    )


async def start(
    app: web.Application, config: Config, host: str, port: int, *, reuse_port: bool = False, **kwargs: Any
) -> GuardedAppRunner:
    """Set the app up and listen on ``host:port``; ``await runner.cleanup()`` stops it. ``reuse_port``: several
    processes listen on the one port (``SO_REUSEPORT``: the kernel spreads the connections among them)."""
    started = runner(app, config, **kwargs)
    try:
        await started.setup()
        try:
            await web.TCPSite(started, host, port, reuse_port=reuse_port or None).start()
        except OSError as problem:
            cause = os.strerror(problem.errno) if problem.errno else str(problem)
            raise ListenFailed(f"cannot listen on {host}:{port}: {cause}") from None
    except BaseException:
        await started.cleanup()  # what had started stops (the app's cleanup contexts) before the error goes on
        raise
    return started


def serve(
    app: web.Application,
    config: Config,
    host: str,
    port: int,
    loop: asyncio.AbstractEventLoop,
    *,
    listening: Callable[[], None] = lambda: None,
    reuse_port: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM, as ``web.run_app`` does (which cannot take another runner); ``listening``
    is called once the port accepts connections."""

    async def forever() -> None:
        started = await start(app, config, host, port, reuse_port=reuse_port)
        try:
            listening()
            # What start made (modules, the schema, the pool) lives as long as the process: out of the
            # collector's sight, a full collection walks only what requests made (it took 200-330 ms under
            # attack, with it).
            gc.freeze()
            await asyncio.Event().wait()
        finally:
            await started.cleanup()

    stopping = False

    def graceful_exit() -> None:
        # Once: a second SIGTERM (systemd signals every process of the unit, and `serve --workers` passes it on
        # too) must not interrupt the stop under way.
        nonlocal stopping
        if not stopping:
            stopping = True
            raise web.GracefulExit()

    asyncio.set_event_loop(loop)
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop_signal, graceful_exit)
    main = loop.create_task(forever())
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError, web.GracefulExit):
                loop.run_until_complete(main)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
