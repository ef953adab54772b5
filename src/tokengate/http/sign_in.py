"""Signing in without a pasted token: the pages and the JSON endpoints of the passkey ceremonies, and sign-out.

- ``GET /sign-in``: "Sign in with a passkey"; ``GET /invitation``: the invitee registers a passkey (the link's
  secret is in the URL's fragment, so it never reaches a server log or a ``Referer``).
- ``POST /sign-in/invitation/options`` ``{"invitation"}`` and ``POST /sign-in/invitation/verify``
  ``{"invitation", "ceremony", "credential"}``: register a passkey from an invitation; signed in.
- ``POST /sign-in/passkey/options`` ``{}`` and ``POST /sign-in/passkey/verify`` ``{"ceremony", "credential"}``.
- ``POST /sign-out``: ends the session of the cookie and clears the cookie.

Each sign-in answers ``{"signedIn": true, "user": {...}}`` with a new session cookie (core/browser_sessions.py).
The JSON endpoints take the same CSRF defence as GraphQL (the pages' header, same origin): a sign-in cannot be
forced on a browser from another site. Refusals are ``{"errors": [...]}`` with 400, 401, 403 or 429.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from tokengate.auth.gate import Refusal
from tokengate.core.browser_sessions import (
    COOKIE,
    CSRF_HEADER,
    NotAHostName,
    RelyingParty,
    cookie_attributes,
    csrf_refusal,
    relying_party,
)
from tokengate.core.errors import DomainError, InvalidInput, Unauthenticated
from tokengate.core.single_sign_on import pages_origin
from tokengate.http.bodies import read_in_time
from tokengate.http.pages import html_response, render_plain_page
from tokengate.http.responses import error_response, json_response, refusal_response
from tokengate.runtime import RUNTIME, Runtime
from tokengate.services import sign_in
from tokengate.services.sign_in import Browser, SignedIn, sign_in_timeouts
from tokengate.store import DATABASE_UNAVAILABLE

MAX_BODY_BYTES: Final = 16 * 1024
STATUS: Final = {"BAD_USER_INPUT": 400, "UNAUTHENTICATED": 401, "FORBIDDEN": 403, "NOT_FOUND": 404}

Handler = Callable[[web.Request, Runtime, dict[str, Any], str | None], Awaitable[web.Response]]


def relying_party_of(request: web.Request, runtime: Runtime) -> RelyingParty:
    return relying_party(runtime.config.sign_in.public_url, request.headers.get("Host"))


def from_pages(request: web.BaseRequest) -> str | None:
    """Why a request that a session cookie carries (or that makes one) is refused: not from the pages."""
    headers = request.headers
    return csrf_refusal(
        headers.get(CSRF_HEADER), headers.get("Sec-Fetch-Site"), headers.get("Origin"), headers.get("Host")
    )


async def hand_over_session(
    request: web.Request, runtime: Runtime, response: web.StreamResponse, signed_in: SignedIn, client_addr: str | None
) -> None:
    """Every sign-in's last step (passkeys here, single sign-on's callback): the session this browser had before,
    if any, ends (one browser, one session), and ``response`` carries the new session's cookie, kept by the
    browser as long as the session may live (an SSO session's is capped by its provider's setting)."""
    previous = request.cookies.get(COOKIE)
    if previous:
        await sign_in.sign_out(runtime.backend, previous, client_addr, sign_in.SIGNED_IN_AGAIN)
    session = signed_in.session
    lifetime = (session.absolute_expires_at - session.created_at).total_seconds()
    response.set_cookie(COOKIE, signed_in.secret, **cookie_attributes(lifetime))  # type: ignore[arg-type]


async def signed_in_response(
    request: web.Request, runtime: Runtime, signed_in: SignedIn, client_addr: str | None
) -> web.Response:
    """A passkey sign-in's answer, with the new session's cookie."""
    user = signed_in.user
    response = json_response(
        {"signedIn": True, "user": {"id": user.id, "email": user.email}, "session": {"id": signed_in.session.id}}
    )
    await hand_over_session(request, runtime, response, signed_in, client_addr)
    response.headers["Cache-Control"] = "no-store"
    return response


def endpoint(handle: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The shared frame of the JSON endpoints: CSRF defence, rates, a bounded JSON object body, refusals."""

    async def answer(request: web.Request) -> web.Response:
        runtime = request.app[RUNTIME]
        refusal = from_pages(request)
        if refusal is not None:
            return error_response(403, refusal, "FORBIDDEN")
        try:
            client_addr = runtime.gate.admit_sign_in(request)
        except Refusal as refused:
            return refusal_response(refused)
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return error_response(413, f"the body is larger than {MAX_BODY_BYTES} bytes", "BAD_REQUEST")
        try:
            body = json.loads(await read_in_time(request, runtime.config.limits.body_timeout) or b"{}")
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            return error_response(400, "the body must be a JSON object", "BAD_REQUEST")
        try:
            return await handle(request, runtime, body, client_addr)
        except NotAHostName as problem:
            return error_response(400, str(problem), "BAD_REQUEST")
        except DomainError as problem:
            if isinstance(problem, Unauthenticated):
                runtime.gate.sign_in_failed(client_addr)
            return error_response(STATUS.get(problem.code, 400), str(problem), problem.code)
        except DATABASE_UNAVAILABLE:
            return error_response(503, "the database is unreachable; try again shortly", "SERVICE_UNAVAILABLE")

    return answer


def text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise InvalidInput(f"{name} must be a non-empty string")
    return value


def pages_origin_of(request: web.BaseRequest, runtime: Runtime) -> str:
    """The origin the pages are served at for this request: the configured public URL, else the request's own."""
    return pages_origin(runtime.config.sign_in.public_url, request.scheme, request.headers.get("Host"))


def browser_of(request: web.Request, runtime: Runtime, client_addr: str | None) -> Browser:
    return Browser(
        relying_party_of(request, runtime),
        sign_in_timeouts(runtime.config),
        client_addr,
        request.headers.get("User-Agent"),
    )


async def invitation_options(
    request: web.Request, runtime: Runtime, body: dict[str, Any], client_addr: str | None
) -> web.Response:
    browser = browser_of(request, runtime, client_addr)
    ceremony, options = await sign_in.registration_options(runtime.backend, text(body, "invitation"), browser)
    return json_response({"ceremony": ceremony, "publicKey": options})


async def invitation_verify(
    request: web.Request, runtime: Runtime, body: dict[str, Any], client_addr: str | None
) -> web.Response:
    browser = browser_of(request, runtime, client_addr)
    signed_in = await sign_in.register_passkey(
        runtime.backend, text(body, "invitation"), text(body, "ceremony"), body.get("credential"), browser
    )
    return await signed_in_response(request, runtime, signed_in, client_addr)


async def passkey_options(
    request: web.Request, runtime: Runtime, body: dict[str, Any], client_addr: str | None
) -> web.Response:
    ceremony, options = await sign_in.authentication_options(
        runtime.backend, relying_party_of(request, runtime), sign_in_timeouts(runtime.config)
    )
    return json_response({"ceremony": ceremony, "publicKey": options})


async def passkey_verify(
    request: web.Request, runtime: Runtime, body: dict[str, Any], client_addr: str | None
) -> web.Response:
    browser = browser_of(request, runtime, client_addr)
    signed_in = await sign_in.sign_in_with_passkey(
        runtime.backend, text(body, "ceremony"), body.get("credential"), browser
    )
    return await signed_in_response(request, runtime, signed_in, client_addr)


async def sign_out(
    request: web.Request, runtime: Runtime, body: dict[str, Any], client_addr: str | None
) -> web.Response:
    secret = request.cookies.get(COOKIE)
    ended = await sign_in.sign_out(runtime.backend, secret, client_addr) if secret else None
    response = json_response({"signedOut": ended is not None})
    response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    return response


async def sign_in_page(request: web.Request) -> web.Response:
    return html_response(render_plain_page("sign-in", "Sign in"))


async def invitation_page(request: web.Request) -> web.Response:
    return html_response(render_plain_page("invitation", "Accept your invitation"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sign-in", sign_in_page)
    app.router.add_get("/invitation", invitation_page)
    app.router.add_post("/sign-in/invitation/options", endpoint(invitation_options))
    app.router.add_post("/sign-in/invitation/verify", endpoint(invitation_verify))
    app.router.add_post("/sign-in/passkey/options", endpoint(passkey_options))
    app.router.add_post("/sign-in/passkey/verify", endpoint(passkey_verify))
    app.router.add_post("/sign-out", endpoint(sign_out))
