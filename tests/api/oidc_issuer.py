"""An OIDC issuer of the tests' own on loopback: a discovery document and a JWKS over HTTP, keys made with
``cryptography``, tokens shaped as GitHub Actions and GitLab CI sign them. What it serves can be changed while it
runs (keys rotated, answers slowed or made huge)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.conftest import free_port


def rsa_key(kid: str) -> RSAKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return RSAKey.import_key(pem, parameters={"kid": kid, "use": "sig"})


def ec_key(kid: str) -> ECKey:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ECKey.import_key(pem, parameters={"kid": kid, "use": "sig"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Issuer:
    url: str = ""
    keys: list[Any] = field(default_factory=list)  # published (and used to sign)
    delay: float = 0.0  # seconds before answering
    huge: bool = False  # answer the JWKS with 10 MB
    requests: int = 0
    # GitHub's ID-token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL): the job's request token, and the claims it signs
    request_token: str = "job-request-token"
    github_claims: dict[str, Any] = field(default_factory=dict)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.keys]}

    def sign(self, claims: dict[str, Any], key: Any = None, alg: str | None = None) -> str:
        key = key or self.keys[0]
        alg = alg or ("ES256" if isinstance(key, ECKey) else "RS256")
        return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key)

    def claims(self, audience: str, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.url,
            "aud": audience,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            **extra,
        }

    def github(
        self,
        audience: str,
        repository: str = "octo-org/app",
        owner_id: str = "4242",
        ref: str = "refs/heads/main",
        **extra: Any,
    ) -> dict[str, Any]:
        owner = repository.split("/")[0]
        return self.claims(
            audience,
            sub=f"repo:{repository}:ref:{ref}",
            repository=repository,
            repository_owner=owner,
            repository_owner_id=owner_id,
            repository_id="99",
            ref=ref,
            job_workflow_ref=f"{repository}/.github/workflows/deploy.yml@{ref}",
            **extra,
        )

    def gitlab(
        self,
        audience: str,
        project_path: str = "group/app",
        namespace_id: str = "77",
        project_id: str = "88",
        ref: str = "main",
        **extra: Any,
    ) -> dict[str, Any]:
        return self.claims(
            audience,
            sub=f"project_path:{project_path}:ref_type:branch:ref:{ref}",
            project_path=project_path,
            namespace_id=namespace_id,
            namespace_path=project_path.split("/")[0],
            project_id=project_id,
            ref=ref,
            ref_type="branch",
            **extra,
        )


def unsigned(claims: dict[str, Any]) -> str:
    """``alg: none``: a header, the claims and an empty signature."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict[str, Any], key: RSAKey) -> tuple[str, bytes]:
    """The key-confusion attack: HS256 keyed with the issuer's public key (which anyone can fetch), as a verifier
    that takes the algorithm from the header would check it. Returns the token and the secret used."""
    secret = key.as_pem(private=False)
    header = b64(json.dumps({"alg": "HS256", "kid": key.kid, "typ": "JWT"}).encode())
    body = f"{header}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return f"{body}.{b64(signature)}", secret


@asynccontextmanager
async def running_issuer(issuer: Issuer | None = None) -> AsyncIterator[Issuer]:
    issuer = issuer or Issuer(keys=[rsa_key("k1")])

    async def discovery(request: web.Request) -> web.StreamResponse:
        issuer.requests += 1
        if issuer.delay:
            await asyncio.sleep(issuer.delay)
        return web.json_response({"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"})

    async def jwks(request: web.Request) -> web.StreamResponse:
        if issuer.huge:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            chunk = b" " * (1024 * 1024)
            for _ in range(10):
                await response.write(chunk)
            return response
        return web.json_response(issuer.jwks())

    async def github_id_token(request: web.Request) -> web.StreamResponse:
        """What a job's runner answers at ACTIONS_ID_TOKEN_REQUEST_URL: ``{"value": <JWT>}`` for the audience
        asked, to the bearer of ACTIONS_ID_TOKEN_REQUEST_TOKEN only."""
        if request.headers.get("Authorization", "").lower() != f"bearer {issuer.request_token}":
            return web.json_response({"message": "Bad credentials"}, status=401)
        audience = request.query.get("audience", "https://github.com/octo-org")
        return web.json_response({"value": issuer.sign(issuer.github(audience, **issuer.github_claims))})

    app = web.Application()
    app.router.add_get("/_apis/pipelines/idtoken", github_id_token)
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    async with on_loopback(app) as url:
        issuer.url = url
        yield issuer


@asynccontextmanager
async def on_loopback(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 at a free port while the block runs: its base URL. No access log: the URLs a
    provider is sent hold the flows' state (the tests check that no log line holds a secret)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
