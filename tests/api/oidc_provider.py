"""An OpenID provider of the tests' own on loopback, for single sign-on (tests/api/test_single_sign_on.py): the
keyless CI issuer of tests/api/oidc_issuer.py (discovery, JWKS, keys made with ``cryptography``) plus an
authorization endpoint that sends the browser straight back with a code (the person is whoever ``person`` says)
and a token endpoint that checks the client, the code (once), the redirect URI and the PKCE verifier, and answers
a signed ID token. The test makes it misbehave: ``tamper`` changes the claims it signs, ``forge`` replaces the ID
token, ``strict`` off lets a code be used again and skips its PKCE check (to show that tokengate's own checks refuse the
replay). ``scopes_supported`` set, it is listed in the discovery document and a request for any other scope is
answered ``invalid_scope`` (as most providers do); ``groups_need_scope`` puts the ``groups`` claim in the ID token
only when the ``groups`` scope was asked for (as Okta does)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.api.oidc_issuer import Issuer, on_loopback, rsa_key

CLIENT_ID = "tokengate-test"
CLIENT_SECRET = "provider-client-secret-0123456789"


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str
    person: dict[str, Any]
    scopes: list[str] = field(default_factory=list)
    used: bool = False


@dataclass
class Provider(Issuer):
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    # Who signs in at the authorization endpoint: the claims of their ID token beyond iss/aud/exp/iat/nonce.
    person: dict[str, Any] = field(
        default_factory=lambda: {"sub": "okta|1001", "email": "ada@acme.example", "email_verified": True}
    )
    tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # the claims as signed
    forge: Callable[[dict[str, Any]], str] | None = None  # the ID token answered instead of a signed one
    strict: bool = True  # codes once, PKCE checked
    auth_methods: list[str] = field(default_factory=lambda: ["client_secret_basic", "client_secret_post"])
    scopes_supported: list[str] | None = None
    groups_need_scope: bool = False
    codes: dict[str, Code] = field(default_factory=dict)
    token_requests: list[dict[str, Any]] = field(default_factory=list)  # how the client authenticated, the form
    id_tokens: list[str] = field(default_factory=list)  # every ID token answered, oldest first

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": self.url + "/jwks",
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": self.auth_methods,
        } | ({"scopes_supported": self.scopes_supported} if self.scopes_supported is not None else {})

    def id_token_claims(self, code: Code) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "aud": code.client_id, "iat": now, "exp": now + 300, "nonce": code.nonce}
        claims.update(code.person)
        if self.groups_need_scope and "groups" not in code.scopes:
            claims.pop("groups", None)
        return self.tamper(claims) if self.tamper else claims


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _client(request: web.Request, form: Any) -> tuple[str | None, str | None, str]:
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return client_id, secret, "client_secret_basic"
    return form.get("client_id"), form.get("client_secret"), "client_secret_post"


@asynccontextmanager
async def running_provider(provider: Provider | None = None) -> AsyncIterator[Provider]:
    provider = provider or Provider(keys=[rsa_key("k1")])

    async def discovery(request: web.Request) -> web.StreamResponse:
        provider.requests += 1
        return web.json_response(provider.discovery())

    async def jwks(request: web.Request) -> web.StreamResponse:
        return web.json_response(provider.jwks())

    async def authorize(request: web.Request) -> web.StreamResponse:
        query = request.query
        if query.get("client_id") != provider.client_id or query.get("response_type") != "code":
            return web.Response(status=400, text="unknown client")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return web.Response(status=400, text="PKCE S256 required")
        scopes = query.get("scope", "").split()
        unknown = [scope for scope in scopes if scope not in (provider.scopes_supported or scopes)]
        if unknown:
            back = query["redirect_uri"] + "?" + urlencode({"error": "invalid_scope", "state": query["state"]})
            return web.Response(status=302, headers={"Location": back})
        code = secrets.token_urlsafe(24)
        provider.codes[code] = Code(
            provider.client_id,
            query["redirect_uri"],
            query["nonce"],
            query["code_challenge"],
            dict(provider.person),
            scopes,
        )
        back = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        return web.Response(status=302, headers={"Location": back})

    async def token(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        client_id, secret, method = _client(request, form)
        provider.token_requests.append({"method": method, "form": dict(form)})
        if client_id != provider.client_id or secret != provider.client_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        code = provider.codes.get(str(form.get("code")))
        if code is None or (code.used and provider.strict):
            return web.json_response({"error": "invalid_grant"}, status=400)
        verifier_ok = s256(str(form.get("code_verifier"))) == code.challenge or not provider.strict
        if form.get("redirect_uri") != code.redirect_uri or not verifier_ok:
            return web.json_response({"error": "invalid_grant"}, status=400)
        code.used = True
        claims = provider.id_token_claims(code)
        id_token = provider.forge(claims) if provider.forge else provider.sign(claims)
        provider.id_tokens.append(id_token)
        return web.json_response(
            {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "id_token": id_token}
        )

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_get("/authorize", authorize)
    app.router.add_post("/token", token)
    async with on_loopback(app) as url:
        provider.url = url
        yield provider
