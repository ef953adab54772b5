"""``/auth/check``: forward-auth for gateways (nginx ``auth_request``, Traefik ``ForwardAuth``, Envoy ``ext_authz``).

200 with the principal's ids in headers when allowed; the gate's refusals (401, 403 by IP rules, 503); 403
naming what is required when the token may not; 400 for a question that cannot be asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache

from aiohttp import web
from multidict import CIMultiDict

from tokengate.auth.gate import Admission, Gate, Refusal, single_header
from tokengate.core.catalog import ACCESS_LEVELS, READ, RESOURCES
from tokengate.core.policy import Principal
from tokengate.core.validation import shown
from tokengate.http.responses import error_response, refusal_response
from tokengate.jobs.usage_recorder import UsageRecorder
from tokengate.runtime import RUNTIME

RESOURCE_BY_NAME = {resource.upper(): resource for resource in RESOURCES}
ACCESS_BY_NAME = {access.upper(): access for access in ACCESS_LEVELS}
# The question of /auth/check/<path>, set by the gateway: each must come once (a client's extra line loses).
GATEWAY_HEADERS = "forward_auth.gateway_headers"  # the key of ``gateway_headers`` in ``Principal.derived``
QUESTION_HEADERS = ("X-Tokengate-Resource", "X-Tokengate-Access", "X-Tokengate-Project-Id")


class BadQuestion(ValueError):
    """A question that cannot be asked (400): the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class CheckQuestion:
    """What a gateway asks: only "is this a valid token?" when ``resource`` is None."""

    resource: str | None
    access: str
    project_id: str | None


@lru_cache(maxsize=1024)
def check_question(resource: str | None, access: str | None, project_id: str | None) -> CheckQuestion:
    """The parameters of ``/auth/check`` (case-insensitive names), or ``BadQuestion`` saying what is wrong."""
    if not resource:
        if access or project_id:
            raise BadQuestion("access and projectId need a resource, e.g. ?resource=JOBS&access=READ")
        return CheckQuestion(None, READ, None)
    checked_resource = RESOURCE_BY_NAME.get(resource.strip().upper())
    if checked_resource is None:
        raise BadQuestion(f"unknown resource {shown(resource)!r}: expected one of {', '.join(RESOURCES)}")
    checked_access = ACCESS_BY_NAME.get((access or READ).strip().upper())
    if checked_access is None:
        raise BadQuestion(f"unknown access {shown(access or '')!r}: expected READ or WRITE")
    return CheckQuestion(checked_resource, checked_access, project_id.strip() if project_id else None)


def principal_headers(principal: Principal) -> dict[str, str]:
    """What a gateway passes upstream: ids only, never a secret (the display prefix is not ASCII-only)."""
    return {
        "X-Tokengate-Account-Id": principal.account_id,
        "X-Tokengate-Principal": principal.name,  # the documented form: a service token's row key, no stk_
        "X-Tokengate-Principal-Kind": principal.kind,
    }


def gateway_headers(principal: Principal) -> CIMultiDict[str]:
    """``principal_headers`` as the response's header mapping, made once per principal (``Principal.derived``:
    forgotten with the principal, so a change that replaces it replaces them); the response copies it."""
    made = principal.derived.get(GATEWAY_HEADERS)
    if made is None:
        made = principal.derived[GATEWAY_HEADERS] = CIMultiDict(principal_headers(principal))
    return made  # type: ignore[no-any-return]


def allowed_response(request: web.BaseRequest, principal: Principal) -> web.StreamResponse:
    """The 200 of an allowed check: the principal's ids in headers, no body."""
    return web.Response(status=200, headers=gateway_headers(principal))


Allowed = Callable[[web.BaseRequest, Principal], web.StreamResponse]


def answer(
    question: CheckQuestion,
    admission: Admission,
    usage: UsageRecorder,
    request: web.BaseRequest,
    allowed: Allowed = allowed_response,
) -> web.StreamResponse:
    principal = admission.principal
    assert principal is not None  # the gate admits no anonymous request here
    if question.resource is not None:
        decision = principal.decide(question.resource, question.access, question.project_id)
        if not decision.allowed:
            return error_response(
                403, f"requires {question.resource}:{question.access} ({decision.reason})", "FORBIDDEN"
            )
        usage.note_grant(decision.grant_id)
    return allowed(request, principal)


def answer_check(
    gate: Gate,
    request: web.BaseRequest,
    resource: str | None,
    access: str | None,
    project_id: str | None,
    allowed: Allowed = allowed_response,
) -> web.StreamResponse | Awaitable[web.StreamResponse]:
    """The answer to a check: a response, or an awaitable of one when the gate must ask the database (so the
    fast door, doors/fast_forward_auth.py, answers a cached token without a coroutine). ``allowed`` makes the
    200 (the fast door writes the same bytes itself, fast_forward_auth.py)."""
    try:
        question = check_question(resource, access, project_id)
    except BadQuestion as problem:
        return error_response(400, str(problem), "BAD_REQUEST")
    try:
        admitted = gate.admit(request)
    except Refusal as refusal:
        return refusal_response(refusal)
    if isinstance(admitted, Admission):
        return answer(question, admitted, gate.usage, request, allowed)
    return _answer_when_admitted(gate, question, admitted, request, allowed)


async def _answer_when_admitted(
    gate: Gate, question: CheckQuestion, admitted: Awaitable[Admission], request: web.BaseRequest, allowed: Allowed
) -> web.StreamResponse:
    try:
        admission = await admitted
    except Refusal as refusal:
        return refusal_response(refusal)
    return answer(question, admission, gate.usage, request, allowed)


async def responded(answered: web.StreamResponse | Awaitable[web.StreamResponse]) -> web.StreamResponse:
    return answered if isinstance(answered, web.StreamResponse) else await answered


async def auth_check(request: web.Request) -> web.StreamResponse:
    """``/auth/check?resource=R&access=A&projectId=P`` (nginx auth_request, Traefik ForwardAuth)."""
    query = request.query
    gate = request.app[RUNTIME].gate
    return await responded(
        answer_check(gate, request, query.get("resource"), query.get("access"), query.get("projectId"))
    )


async def auth_check_by_headers(request: web.Request) -> web.StreamResponse:
    """``/auth/check/<original path>`` as Envoy's ext_authz sends it: the question comes in headers set by the
    gateway; the query string is the client's own and is ignored."""
    try:
        question = [single_header(request, name) for name in QUESTION_HEADERS]
    except Refusal as refusal:
        return refusal_response(refusal)
    return await responded(answer_check(request.app[RUNTIME].gate, request, *question))


def add_routes(app: web.Application) -> None:
    # Any method: nginx and Envoy send the client's method (with no body) to the auth service.
    app.router.add_route("*", "/auth/check", auth_check)
    app.router.add_route("*", "/auth/check/{original_path:.*}", auth_check_by_headers)
