"""Single sign-on's door (docs/sign-in.md "Single sign-on"): two top-level browser navigations.

- ``GET /sign-in/sso?account=<account id>``: 302 to the provider's authorization endpoint (code flow, PKCE S256,
  state, nonce); the flow is bound to this browser by the ``__Host-tokengate_sso`` cookie (``SameSite=Lax``: the
  provider's redirect back is a cross-site top-level GET, which Lax cookies ride and Strict ones do not).
- ``GET /sign-in/sso/callback?code=&state=``: the provider sends the browser back; a session cookie
  (``SameSite=Strict``, as every session's) and a small page that goes on to ``/settings`` (a same-site
  navigation, so the Strict cookie is sent), or a page saying why not (400, 401, 403, 502), audited.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Final

from aiohttp import web

from tokengate.auth.gate import Refusal
from tokengate.core import single_sign_on as rules
from tokengate.core.browser_sessions import RelyingParty
from tokengate.core.errors import NotFound
from tokengate.http.pages import PAGE_HEADERS, html_response
from tokengate.http.responses import refusal_response
from tokengate.http.sign_in import browser_of, hand_over_session, pages_origin_of
from tokengate.http.token_exchange import ISSUER_KEYS
from tokengate.runtime import RUNTIME
from tokengate.services import sign_in
from tokengate.services import single_sign_on as service
from tokengate.store import DATABASE_UNAVAILABLE

log = logging.getLogger("tokengate.sign_in")

AFTER_SIGN_IN: Final = "/settings"
MAX_PARAM_LENGTH: Final = 4096
UNAVAILABLE: Final = "The database is unreachable; try again shortly."


def page(title: str, message: str, status: int = 200, refresh_to: str | None = None) -> web.Response:
    """A small page of its own (no script): the outcome in words, and where to go next."""
    refresh = f'\n  <meta http-equiv="refresh" content="0;url={escape(refresh_to)}">' if refresh_to else ""
    link = escape(refresh_to or "/sign-in")
    onward = "Continue to the settings" if refresh_to else "Back to the sign-in page"
    text = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">{refresh}
  <title>{escape(title)} · tokengate</title>
  <link rel="icon" href="/favicon.ico" type="image/svg+xml">
  <link rel="stylesheet" href="/static/settings/settings.css">
</head>
<body>
  <header class="topbar">
    <span class="brand">tokengate</span>
    <span class="area">{escape(title)}</span>
  </header>
  <main id="main" tabindex="-1">
    <h1>{escape(title)}</h1>
    <p role="status">{escape(message)}</p>
    <p><a href="{link}">{escape(onward)}</a></p>
  </main>
</body>
</html>
"""
    response = html_response(text, {**PAGE_HEADERS, "Cache-Control": "no-store"})
    response.set_status(status)
    return response


def _flow_cookie(response: web.StreamResponse, value: str) -> None:
    response.set_cookie(
        rules.FLOW_COOKIE,
        value,
        secure=True,
        httponly=True,
        path="/",
        samesite="Lax",
        max_age=rules.FLOW_SECONDS,
    )


def _forget_flow_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(rules.FLOW_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")


async def start(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    try:
        runtime.gate.admit_sign_in(request)
    except Refusal as refused:
        return refusal_response(refused)
    account_id = request.query.get("account", "")
    try:
        started = await service.start(
            runtime.backend,
            request.app[ISSUER_KEYS],
            account_id,
            rules.redirect_uri(pages_origin_of(request, runtime)),
            runtime.config.webhook_allow_private,
        )
    except NotFound:
        return page("Single sign-on", "Single sign-on is not configured for this account.", 404)
    except service.Refused as refused:
        log.warning("single sign-on could not start: %s", refused.reason)
        return page("Single sign-on", refused.message, refused.status)
    except DATABASE_UNAVAILABLE:
        return page("Single sign-on", UNAVAILABLE, 503)
    response = web.Response(
        status=302,
        headers={"Location": started.location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
    _flow_cookie(response, started.browser_secret)
    return response


async def callback(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    try:
        client_addr = runtime.gate.admit_sign_in(request)
    except Refusal as refused:
        return refusal_response(refused)
    params = {
        name: value[:MAX_PARAM_LENGTH]
        for name in ("code", "state", "error")
        if isinstance(value := request.query.get(name), str) and value
    }
    browser = browser_of_request(request, client_addr)
    try:
        signed_in = await service.finish(
            runtime.backend,
            request.app[ISSUER_KEYS],
            request.cookies.get(rules.FLOW_COOKIE),
            params,
            browser,
            runtime.config.webhook_allow_private,
        )
    except service.Refused as refused:
        runtime.gate.sign_in_failed(client_addr)
        log.info("single sign-on refused: %s", refused.reason)
        response = page("Not signed in", refused.message, refused.status)
        _forget_flow_cookie(response)
        return response
    except DATABASE_UNAVAILABLE:
        return page("Not signed in", UNAVAILABLE, 503)
    response = page("Signed in", f"Signed in as {signed_in.user.email}.", 200, refresh_to=AFTER_SIGN_IN)
    await hand_over_session(request, runtime, response, signed_in, client_addr)
    _forget_flow_cookie(response)
    return response


def browser_of_request(request: web.Request, client_addr: str | None) -> sign_in.Browser:
    """The browser as the sign-in service sees it. The relying party (passkeys only) is not needed here: a page
    opened at an IP address may still sign in through the provider."""
    runtime = request.app[RUNTIME]
    try:
        return browser_of(request, runtime, client_addr)
    except ValueError:
        return sign_in.Browser(
            RelyingParty("", ()),
            sign_in.sign_in_timeouts(runtime.config),
            client_addr,
            request.headers.get("User-Agent"),
        )


def add_routes(app: web.Application) -> None:
    app.router.add_get(rules.START_PATH, start)
    app.router.add_get(rules.CALLBACK_PATH, callback)
