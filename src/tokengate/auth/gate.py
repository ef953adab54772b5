"""The one gate every door admits a request through: credentials → principal → IP rules, or one refusal.

``Gate.admit`` reads the ``Authorization`` header, authenticates its token (from the principal cache
without a coroutine when it can, else from the database), counts and times the outcome, and checks the
account's IP restrictions for the client's address. It returns an ``Admission`` or raises a ``Refusal``
that says what happened (400 for a forwarded client address that is not one, 401, 403, 429, 503); each door
renders a refusal its own way. When the answer is known from memory, ``admit`` returns a plain value, not a
coroutine: the forward-auth hot path awaits nothing.

Rates (limits.py) are spent on the way: every request from the client's address, a request without
credentials from the anonymous budget of its address (before its document is parsed), and every admitted
request from its principal's budget. A well-formed token that does not authenticate costs its address one
failed authentication, whether memory or the database said so (an unknown id and a real id with a wrong secret
cost the same); a token the cache cannot answer is looked up only while its address has failures left. Past a
budget: 429.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, NamedTuple

from aiohttp import web

from tokengate.auth.credentials import Authenticator
from tokengate.auth.ip_guard import IpGuard
from tokengate.auth.legacy_verifier import VerifierBusy
from tokengate.auth.sessions import SessionReader
from tokengate.config import Config
from tokengate.core import tokens
from tokengate.core.errors import Unauthenticated
from tokengate.core.forwarded import NotAnAddress, client_address
from tokengate.core.limits import Buckets, OverLimit, Throttle, address_key
from tokengate.core.policy import Principal
from tokengate.http.observability import Metrics
from tokengate.jobs.usage_recorder import UsageRecorder
from tokengate.store import DATABASE_UNAVAILABLE, DatabaseUnavailable

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


SESSION_ENDED: Final = "your session has ended or expired: sign in again"


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


def not_an_address() -> Refusal:
    """Behind a trusted proxy, the ``X-Forwarded-For`` item that names the client is not an address: the
    request is refused rather than credited to the proxy (forwarded.py)."""
    return Refusal(400, "BAD_REQUEST", NotAnAddress.MESSAGE)


def forwarded_for(request: web.BaseRequest) -> str | None:
    """Every ``X-Forwarded-For`` line as one list, in order (RFC 9110): a proxy that appends its own line
    must not leave the client's line to decide."""
    lines = request.headers.getall("X-Forwarded-For", ())
    if len(lines) <= 1:
        return lines[0] if lines else None
    return ",".join(lines)


def rate_limited(over: OverLimit) -> Refusal:
    """Past a rate limit: 429 with ``Retry-After`` and the draft RateLimit fields (the message names the policy,
    not the wait, so the few bodies are built once)."""
    return Refusal(429, "RATE_LIMITED", f"too many requests: the {over.policy} rate limit is exceeded", over.headers())


def verifier_busy() -> Refusal:
    return Refusal(503, "SERVICE_UNAVAILABLE", VerifierBusy.MESSAGE, RETRY_AFTER)


def principal_key(principal: Principal) -> str:
    """Who pays a principal's rates: the user (all of its personal tokens), or the service token."""
    return principal.name


def payer(principal: Principal | None, client_addr: str | None) -> str:
    """Who pays a request's cost points: its principal, or without credentials its address."""
    return principal_key(principal) if principal is not None else "anonymous:" + address_key(client_addr)


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


class Admission(NamedTuple):
    """Who is calling (None: a document anyone may run, sent without credentials) and from where (a named
    tuple: made on every request, and a frozen dataclass costs twice as much to make)."""

    principal: Principal | None
    client_addr: str | None


class Gate:
    def __init__(
        self,
        config: Config,
        authenticator: Authenticator,
        ip_guard: IpGuard,
        metrics: Metrics,
        usage: UsageRecorder,
        throttle: Throttle | None = None,
        sessions: SessionReader | None = None,
    ):
        self.trusted_proxies = config.trusted_proxies
        self.authenticator = authenticator
        self.sessions = sessions
        self.ip_guard = ip_guard
        self.metrics = metrics
        self.usage = usage
        self.throttle = throttle if throttle is not None else Throttle(config.limits)

    def _spend(self, buckets: Buckets, key: str) -> None:
        try:
            self.throttle.take(buckets, key)
        except OverLimit as over:
            raise rate_limited(over) from None

    def client_address(self, request: web.BaseRequest) -> str | None:
        """The request's client address (forwarded.py), or ``Refusal`` (400) when a trusted proxy forwarded an
        item that is not an address in the client's place."""
        try:
            return client_address(request.remote, forwarded_for(request), self.trusted_proxies)
        except NotAnAddress:
            raise not_an_address() from None

    def admit_report(self, request: web.BaseRequest) -> str | None:
        """A secret-scanning report's client address, its report spent from that address's budget before its
        body is read; ``Refusal`` (400, 429)."""
        client_addr = self.client_address(request)
        self._spend(self.throttle.secret_scanning, address_key(client_addr))
        return client_addr

    def admit(
        self,
        request: web.BaseRequest,
        anonymous_allowed: Callable[[], bool] | None = None,
        authorization: str | None = None,
    ) -> Admission | Awaitable[Admission]:
        """The request's admission, or ``Refusal``. ``anonymous_allowed`` is asked only when the request
        carries no ``Authorization`` header at all (the GraphQL door's rule for public documents).
        ``authorization``: the credential as ``Bearer <token>`` when the door found it elsewhere than in the
        ``Authorization`` header (an OAuth client secret, http/introspection.py)."""
        client_addr = self.client_address(request)
        address = address_key(client_addr)
        throttle = self.throttle
        try:  # _spend's work, inline: on every request's path
            throttle.take(throttle.address, address)
        except OverLimit as over:
            raise rate_limited(over) from None
        header = authorization if authorization is not None else single_header(request, "Authorization")
        started = time.perf_counter()
        try:
            text = token_from_header(header)
            principal = self.authenticator.remembered(text)
            if principal is not None:  # the hot path: a token validated before, found by its keyed hash
                return self._admitted(request, principal, client_addr, started)
            parsed, principal = self.authenticator.from_memory(text)
        except Unauthenticated as refusal:
            if refusal.outcome == "invalid":  # a well-formed token refused from memory: a failure as from the database
                self._require_failures_left(address)
                self.throttle.failures.charge(address, 1)
            self._refused(refusal, started)
            if header is None and anonymous_allowed is not None:
                self._spend(self.throttle.anonymous, address)  # before the document is parsed
                if anonymous_allowed():
                    return Admission(None, client_addr)
            raise not_authenticated(str(refusal)) from None
        if principal is None:
            # Past the budget of failures, no query at all (nor argon2id); a failure is charged once known, so
            # concurrent first uses of a valid token do not spend it.
            self._require_failures_left(address)
            return self._admit_from_database(request, parsed, client_addr, address, started)
        return self._admitted(request, principal, client_addr, started)

    def admit_sign_in(self, request: web.BaseRequest) -> str | None:
        """A sign-in request's (a passkey ceremony's) client address, spent from its address's budget, and refused
        (429) while the address has no failed authentications left; ``Refusal`` (400, 429)."""
        client_addr = self.client_address(request)
        address = address_key(client_addr)
        self._spend(self.throttle.address, address)
        self._require_failures_left(address)
        return client_addr

    def sign_in_failed(self, client_addr: str | None) -> None:
        """A refused sign-in costs its address one failed authentication, as a wrong token does."""
        self.throttle.failures.charge(address_key(client_addr), 1)
        self.metrics.count_authentication("invalid")

    async def admit_session(self, request: web.BaseRequest, secret: str) -> Admission:
        """A request carried by a browser session's cookie (its CSRF defence checked by the door): the session's
        user, read from the database (an ended session is refused at once on every instance), then the same
        rates and IP rules as a token's; ``Refusal`` (401, 403, 429, 503)."""
        client_addr = self.admit_sign_in(request)
        started = time.perf_counter()
        if self.sessions is None:
            raise not_authenticated(SESSION_ENDED)
        try:
            principal = await self.sessions.principal(secret)
        except DATABASE_UNAVAILABLE:
            raise unavailable() from None
        if principal is None:
            self.sign_in_failed(client_addr)
            self.metrics.validation_seconds.observe(time.perf_counter() - started)
            raise not_authenticated(SESSION_ENDED)
        self.metrics.count_authentication("ok")
        self.metrics.validation_seconds.observe(time.perf_counter() - started)
        request[PRINCIPAL_PREFIX] = principal.display_prefix
        self._spend(self.throttle.principal, principal_key(principal))
        allowed = self.ip_guard.cached_allows(principal.account_id, client_addr)
        if allowed is None:
            return await self._admit_after_loading_rules(principal, client_addr)
        if not allowed:
            raise refused_by_ip_rules()
        return Admission(principal, client_addr)

    async def admit_scim(
        self, request: web.BaseRequest, authenticate: Callable[[str], Awaitable[Principal | None]]
    ) -> Admission:
        """/scim/v2's admission, or ``Refusal``: a SCIM token only (``authenticate`` finds its principal, None when
        the text is no usable SCIM token), with the address, failure and principal budgets and the account's IP
        rules as every door. Any other token (service, personal) is refused here unread: malformed for this door."""
        client_addr = self.client_address(request)
        address = address_key(client_addr)
        self._spend(self.throttle.address, address)
        header = single_header(request, "Authorization")
        started = time.perf_counter()
        try:
            text = token_from_header(header)
            tokens.parse_scim_token(text)
        except Unauthenticated as refusal:
            self._refused(refusal, started)
            raise not_authenticated(str(refusal)) from None
        except tokens.MalformedToken:
            self._refused(Unauthenticated("not a SCIM token", "malformed"), started)
            raise not_authenticated("/scim/v2 accepts only a SCIM token (tgp_…)") from None
        self._require_failures_left(address)
        try:
            principal = await authenticate(text)
        except DATABASE_UNAVAILABLE:
            raise unavailable() from None
        if principal is None:
            self.throttle.failures.charge(address, 1)
            self._refused(Unauthenticated("invalid SCIM token"), started)
            raise not_authenticated("invalid SCIM token")
        self.metrics.count_authentication("ok")
        self.metrics.validation_seconds.observe(time.perf_counter() - started)
        request[PRINCIPAL_PREFIX] = principal.display_prefix
        self._spend(self.throttle.principal, principal_key(principal))
        return await self._admit_after_loading_rules(principal, client_addr)

    def _require_failures_left(self, address: str) -> None:
        try:
            self.throttle.require(self.throttle.failures, address)
        except OverLimit as over:
            raise rate_limited(over) from None

    def before_body(self, request: web.BaseRequest) -> None:
        """Refuse (429), before its body is read, a request whose payer is already out of a budget ``admit`` or
        the cost would refuse it for; spends nothing (``admit`` does). A token the cache does not hold is left to
        ``admit``."""
        client_addr = self.client_address(request)
        address = address_key(client_addr)
        header = request.headers.get("Authorization")
        throttle = self.throttle
        try:
            throttle.require(throttle.address, address)
            if header is None:
                throttle.require(throttle.anonymous, address)
                throttle.require(throttle.cost, payer(None, client_addr))
                return
            try:
                principal = self.authenticator.cached_principal(token_from_header(header))
            except Unauthenticated:
                return
            if principal is None:
                throttle.require(throttle.failures, address)
                return
            throttle.require(throttle.principal, principal_key(principal))
            throttle.require(throttle.cost, principal_key(principal))
        except OverLimit as over:
            raise rate_limited(over) from None

    async def _admit_from_database(
        self,
        request: web.BaseRequest,
        parsed: tokens.ParsedToken,
        client_addr: str | None,
        address: str,
        started: float,
    ) -> Admission:
        try:
            principal = await self.authenticator.from_database(parsed, client_addr=client_addr)
        except Unauthenticated as refusal:
            self._refused(refusal, started)
            self.throttle.failures.charge(address, 1)
            raise not_authenticated(str(refusal)) from None
        except DatabaseUnavailable:
            raise unavailable() from None
        except VerifierBusy:
            self.throttle.count("legacy_verifications")
            raise verifier_busy() from None
        admitted = self._admitted(request, principal, client_addr, started)
        return admitted if isinstance(admitted, Admission) else await admitted

    def _admitted(
        self, request: web.BaseRequest, principal: Principal, client_addr: str | None, started: float
    ) -> Admission | Awaitable[Admission]:
        metrics = self.metrics
        metrics.count_authentication("ok")
        metrics.validation_seconds.observe(time.perf_counter() - started)
        request[PRINCIPAL_PREFIX] = principal.display_prefix
        self.usage.note(principal.token_id, client_addr)  # a dict update; written in batches (usage.py)
        throttle = self.throttle
        try:  # _spend's work, inline: on every request's path
            throttle.take(throttle.principal, principal_key(principal))
        except OverLimit as over:
            raise rate_limited(over) from None
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
