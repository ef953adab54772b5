"""``POST /oauth/introspect``: RFC 7662 token introspection, for gateways that validate opaque tokens so
(Kong, Apache APISIX ``openid-connect``, Tyk).

The caller (the resource server) authenticates with a tokengate token of its own: ``Authorization: Bearer``, or
as the OAuth client secret gateways send (HTTP Basic with any client id and the token as the password, or a
``client_secret`` form parameter). It goes through the one gate: IP rules, rate limits and the failure budget
of its address apply to it as to any request.
Any active token may introspect (no permission is required): the answer says only what the holder of the token
asked about could learn by using it, and only for tokens of the caller's own account.

The token asked about (the form's ``token``; ``token_type_hint`` is ignored) is validated by the same
``Authenticator`` as ``/auth/check`` (principal cache, one query, the argon2id pool for legacy tokens). Anything
not usable now (malformed, unknown, wrong secret, expired, deleted, a deactivated user's, refused by the
account's IP rules at the caller's address, another account's) is answered ``{"active": false}`` and nothing
else, and costs the CALLER one unit of its failure budget (``principal_failures``, at the rate of
``TOKENGATE_RATE_FAILURES``): clients behind one resource server share its address, so the address's budget
is not spent, and a caller past its budget gets 429 with ``Retry-After`` before any lookup.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import web

from tokengate.auth.gate import (
    MAX_AUTHORIZATION_LENGTH,
    Admission,
    Gate,
    Refusal,
    principal_key,
    rate_limited,
    unavailable,
    verifier_busy,
)
from tokengate.auth.legacy_verifier import VerifierBusy
from tokengate.core.errors import Unauthenticated
from tokengate.core.limits import OverLimit
from tokengate.core.policy import SERVICE_TOKEN, Principal
from tokengate.http.bodies import read_in_time
from tokengate.http.responses import json_response
from tokengate.runtime import RUNTIME
from tokengate.store import DATABASE_UNAVAILABLE, DatabaseUnavailable

ROUTE: Final = "/oauth/introspect"
FORM: Final = "application/x-www-form-urlencoded"
MAX_FORM_BYTES: Final = 4096
INACTIVE: Final = {"active": False}
# A refusal's status as an OAuth error code (RFC 6749 5.2, RFC 6750 3.1).
OAUTH_ERRORS: Final = {400: "invalid_request", 401: "invalid_token", 403: "access_denied", 429: "slow_down"}
TOKEN_TYPES: Final = {SERVICE_TOKEN: "service_token"}  # anything else: a user's personal token


class BadRequest(ValueError):
    """A request RFC 7662 does not allow (400 ``invalid_request``): the message says what is wrong."""


def oauth_error(status: int, description: str, headers: Mapping[str, str] | None = None) -> web.Response:
    payload = {"error": OAUTH_ERRORS.get(status, "temporarily_unavailable"), "error_description": description}
    return json_response(payload, status, headers)  # Cache-Control: no-store on every answer (headers.py)


def refused(refusal: Refusal) -> web.Response:
    return oauth_error(refusal.status, refusal.message, refusal.headers)


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def active_answer(subject: Principal) -> dict[str, Any]:
    """What a resource server learns about an active token: whose it is, since and until when, and its grants."""
    grants = [
        {"permission_set": g.permission_set, "all_projects": g.all_projects, "project_ids": list(g.project_ids)}
        for g in subject.grants
    ]
    answer: dict[str, Any] = {
        "active": True,
        "token_type": TOKEN_TYPES.get(subject.kind, "user_token"),
        "sub": subject.name,  # as X-Tokengate-Principal spells it
        "account": subject.account_id,
        "scope": " ".join(dict.fromkeys(g.permission_set for g in subject.grants)),
        "permission_sets": grants,
    }
    if subject.created_at is not None:
        answer["iat"] = unix(subject.created_at)
    if subject.expires_at is not None:
        answer["exp"] = unix(subject.expires_at)
    return answer


def read_form(request: web.Request, body: bytes) -> dict[str, list[str]]:
    """The parameters of an ``application/x-www-form-urlencoded`` body, or ``BadRequest``."""
    if request.content_type != FORM:
        raise BadRequest(f"send the token as {FORM}")
    try:
        fields = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body), max_num_fields=8, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the body is not a valid form") from None
    form: dict[str, list[str]] = {}
    for name, value in fields:
        form.setdefault(name, []).append(value)
    return form


def one(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name, [])
    if len(values) != 1 or not values[0]:
        raise BadRequest(f"send one {name} parameter")  # RFC 6749 3.1: no parameter more than once
    return values[0]


def as_bearer(request: web.Request, form: dict[str, list[str]]) -> str | None:
    """A caller's token sent as an OAuth client secret, in HTTP Basic (``client_secret_basic``, RFC 6749 2.3.1:
    any client id, the token as the password) or in the form (``client_secret_post``), as ``Bearer <token>`` for
    the gate; None: the gate reads the ``Authorization`` header itself and judges what is there."""
    lines = request.headers.getall("Authorization", ())
    secret = None
    if len(lines) == 1 and lines[0][:6].lower() == "basic ":
        try:
            _, colon, password = base64.b64decode(lines[0][6:].strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            colon = password = ""
        secret = unquote_plus(password) if colon else "-"  # "-": malformed, refused by the gate as such
    elif not lines and "client_secret" in form:
        secret = one(form, "client_secret")
    return None if secret is None else f"Bearer {secret}"


async def subject_principal(gate: Gate, caller: Admission, text: str) -> Principal | None:
    """The principal of the token asked about when it is active and the caller's account's, else None (how it
    failed is not said). ``DatabaseUnavailable`` and ``VerifierBusy`` pass: the caller asks again later."""
    assert caller.principal is not None
    if len(text) > MAX_AUTHORIZATION_LENGTH:
        return None
    try:
        # No client address: the client that presented the token to the resource server is not known here.
        subject = await gate.authenticator.authenticate(text, client_addr=None)
    except Unauthenticated:
        return None
    if subject.account_id != caller.principal.account_id:
        return None
    # The account's IP rules, for the only address known: the caller's (the gate applied them to the caller,
    # of the same account; asked again so that the answer never depends on that).
    allowed = gate.ip_guard.cached_allows(subject.account_id, caller.client_addr)
    if allowed is None:
        allowed = await gate.ip_guard.allows(subject.account_id, caller.client_addr)
    return subject if allowed else None


async def introspect(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    gate = runtime.gate
    # The form is read first (at most MAX_FORM_BYTES): the caller's own credential may be in it. A payer already
    # out of a budget is refused before it is read.
    try:
        gate.before_body(request)
    except Refusal as refusal:
        return refused(refusal)
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        return oauth_error(400, f"the body is larger than {MAX_FORM_BYTES} bytes")
    body = await read_in_time(request, runtime.config.limits.body_timeout)
    if len(body) > MAX_FORM_BYTES:
        return oauth_error(400, f"the body is larger than {MAX_FORM_BYTES} bytes")
    try:
        form = read_form(request, body)
        authorization = as_bearer(request, form)
    except BadRequest as problem:
        return oauth_error(400, str(problem))
    try:
        admitted = gate.admit(request, authorization=authorization)
        caller = admitted if isinstance(admitted, Admission) else await admitted
    except Refusal as refusal:
        return refused(refusal)
    assert caller.principal is not None  # no anonymous admission without anonymous_allowed
    try:
        text = one(form, "token")
    except BadRequest as problem:
        return oauth_error(400, str(problem))
    throttle = gate.throttle
    payer = principal_key(caller.principal)
    try:
        throttle.require(throttle.principal_failures, payer)  # past the caller's budget: no lookup at all
    except OverLimit as over:
        return refused(rate_limited(over))
    try:
        subject = await subject_principal(gate, caller, text)
    except (DatabaseUnavailable, *DATABASE_UNAVAILABLE):
        return refused(unavailable())
    except VerifierBusy:
        throttle.count("legacy_verifications")
        return refused(verifier_busy())
    if subject is None:
        throttle.principal_failures.charge(payer, 1)
        return json_response(INACTIVE)
    return json_response(active_answer(subject))


def add_routes(app: web.Application) -> None:
    app.router.add_post(ROUTE, introspect)
