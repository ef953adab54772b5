"""The one gate every door admits a request through: credentials → principal → IP rules, or one refusal.

``Gate.admit`` reads the ``Authorization`` header, authenticates its token (from the principal cache
without a coroutine when it can, else from the database), counts and times the outcome, and checks the
account's IP restrictions for the client's address. It returns an ``Admission`` or raises a ``Refusal``
that says what happened (401, 403, 503); each door renders a refusal its own way. When the answer is
known from memory, ``admit`` returns a plain value, not a coroutine: the forward-auth hot path awaits
nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from tokengate import tokens
from tokengate.authentication import Authenticator, DatabaseUnavailable
from tokengate.config import Config
from tokengate.errors import Unauthenticated
from tokengate.forwarded import client_address
from tokengate.ip_guard import IpGuard
from tokengate.observability import Metrics
from tokengate.policy import Principal
from tokengate.store import DATABASE_UNAVAILABLE
from tokengate.usage import UsageRecorder

MAX_AUTHORIZATION_LENGTH: Final = 512
SCHEMES: Final = ("bearer", "token")
PRINCIPAL_PREFIX: Final = web.RequestKey("principal_prefix", str)  # the display prefix, for the access log
UNAVAILABLE_MESSAGE: Final = "the database is unreachable; try again shortly"
RETRY_AFTER: Final = {"Retry-After": "1"}


class Refusal(Exception):
    """Why a request is not admitted, with the HTTP status and contract code a door answers it with."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def not_authenticated(message: str) -> Refusal:
    return Refusal(401, "UNAUTHENTICATED", message, {"WWW-Authenticate": "Bearer"})


def refused_by_ip_rules() -> Refusal:
    """A token used from an address the account's IP restrictions refuse (the product's FAQ answer)."""
    return Refusal(403, "FORBIDDEN", "Forbidden: Access denied")


def unavailable() -> Refusal:
    return Refusal(503, "SERVICE_UNAVAILABLE", UNAVAILABLE_MESSAGE, RETRY_AFTER)


def repeated_header(name: str) -> Refusal:
    """Two lines of a header that must appear once: which one counts would depend on who reads it."""
    return Refusal(400, "BAD_REQUEST", f"send the {name} header once, not several times")


def single_header(request: web.BaseRequest, name: str) -> str | None:
    """The one value of a header that must not repeat, None when absent; ``Refusal`` (400) when repeated."""
    values = request.headers.getall(name, ())
    if len(values) > 1:
        raise repeated_header(name)
    return values[0] if values else None


def forwarded_for(request: web.BaseRequest) -> str | None:
    """Every ``X-Forwarded-For`` line as one list, in order (RFC 9110): a proxy that appends its own line
    must not leave the client's line to decide."""
    lines = request.headers.getall("X-Forwarded-For", ())
    if len(lines) <= 1:
        return lines[0] if lines else None
    return ",".join(lines)


def token_from_header(header: str | None) -> str:
    """The token text from ``Authorization: Bearer <token>`` or ``Authorization: Token <token>``."""
    if header is None or not header.strip():
        raise Unauthenticated("authentication required: send Authorization: Bearer <token>", "missing")
    if len(header) > MAX_AUTHORIZATION_LENGTH:
        raise Unauthenticated("malformed Authorization header", "malformed")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() not in SCHEMES or not value or " " in value:
        raise Unauthenticated("malformed Authorization header: expected 'Bearer <token>'", "malformed")
    return value


@dataclass(frozen=True, slots=True)
class Admission:
    """Who is calling (None: a document anyone may run, sent without credentials) and from where."""

    principal: Principal | None
    client_addr: str | None


class Gate:
    def __init__(
        self, config: Config, authenticator: Authenticator, ip_guard: IpGuard, metrics: Metrics, usage: UsageRecorder
    ):
        self.trusted_proxies = config.trusted_proxies
        self.authenticator = authenticator
        self.ip_guard = ip_guard
        self.metrics = metrics
        self.usage = usage

    def client_address(self, request: web.BaseRequest) -> str | None:
        return client_address(request.remote, forwarded_for(request), self.trusted_proxies)

    def admit(
        self, request: web.BaseRequest, anonymous_allowed: Callable[[], bool] | None = None
    ) -> Admission | Awaitable[Admission]:
        """The request's admission, or ``Refusal``. ``anonymous_allowed`` is asked only when the request
        carries no ``Authorization`` header at all (the GraphQL door's rule for public documents)."""
        client_addr = self.client_address(request)
        header = single_header(request, "Authorization")
        started = time.perf_counter()
        try:
            parsed, principal = self.authenticator.from_memory(token_from_header(header))
        except Unauthenticated as refusal:
            self._refused(refusal, started)
            if header is None and anonymous_allowed is not None and anonymous_allowed():
                return Admission(None, client_addr)
            raise not_authenticated(str(refusal)) from None
        if principal is None:
            return self._admit_from_database(request, parsed, client_addr, started)
        return self._admitted(request, principal, client_addr, started)

    async def _admit_from_database(
        self, request: web.BaseRequest, parsed: tokens.ParsedToken, client_addr: str | None, started: float
    ) -> Admission:
        try:
            principal = await self.authenticator.from_database(parsed, client_addr=client_addr)
        except Unauthenticated as refusal:
            self._refused(refusal, started)
            raise not_authenticated(str(refusal)) from None
        except DatabaseUnavailable:
            raise unavailable() from None
        admitted = self._admitted(request, principal, client_addr, started)
        return admitted if isinstance(admitted, Admission) else await admitted

    def _admitted(
        self, request: web.BaseRequest, principal: Principal, client_addr: str | None, started: float
    ) -> Admission | Awaitable[Admission]:
        self.metrics.count_authentication("ok")
        self.metrics.validation_seconds.observe(time.perf_counter() - started)
        request[PRINCIPAL_PREFIX] = principal.display_prefix
        self.usage.note(principal.token_id, client_addr)  # a dict update; written in batches (usage.py)
        allowed = self.ip_guard.cached_allows(principal.account_id, client_addr)
        if allowed is None:
            return self._admit_after_loading_rules(principal, client_addr)
        if not allowed:
            raise refused_by_ip_rules()
        return Admission(principal, client_addr)

    async def _admit_after_loading_rules(self, principal: Principal, client_addr: str | None) -> Admission:
        try:
            allowed = await self.ip_guard.allows(principal.account_id, client_addr)
        except DATABASE_UNAVAILABLE:
            raise unavailable() from None
        if not allowed:
            raise refused_by_ip_rules()
        return Admission(principal, client_addr)

    def _refused(self, refusal: Unauthenticated, started: float) -> None:
        self.metrics.count_authentication(refusal.outcome)
        self.metrics.validation_seconds.observe(time.perf_counter() - started)
