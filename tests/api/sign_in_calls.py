"""Signing in over HTTP as a browser would, with a software authenticator written here (ES256, attestation
"none", built with ``cryptography`` and ``cbor2``): invitations, passkey ceremonies, the session cookie.

The tests' servers listen on 127.0.0.1; a passkey's relying party must be a host name, so every call here
says ``Host: localhost:PORT`` and comes from that origin, as a browser at ``http://localhost:PORT`` does. The
cookie is kept by hand (aiohttp's jar keeps none for an IP address, nor sends ``Secure`` ones over http):
``Browser.cookie`` is what a browser would send back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import Reply, Server
from tokengate.core import tokens
from tokengate.core.browser_sessions import COOKIE, CSRF_HEADER
from tokengate.store import sign_in as sign_in_store

CREATE_INVITATION = (
    "mutation($userId: ID!) { createInvitation(userId: $userId) { secret path invitation { id userId expiresAt } } }"
)
SESSIONS = "{ viewer { user { email } sessions { id method current expiresAt absoluteExpiresAt } } }"
END_ALL = "mutation { endAllSessions }"
END_ONE = "mutation($id: ID!) { endSession(id: $id) { id } }"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Authenticator:
    """A passkey authenticator in software: one ES256 credential, attestation "none", user verification done."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(16))
    sign_count: int = 0
    user_handle: bytes = b""

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def create(self, options: dict[str, Any], origin: str) -> dict[str, Any]:
        """``navigator.credentials.create``'s answer for these options, as JSON (``toJSON()``)."""
        self.user_handle = unb64(options["user"]["id"])
        client_data = json.dumps(
            {"type": "webauthn.create", "challenge": options["challenge"], "origin": origin, "crossOrigin": False}
        ).encode()
        auth_data = (
            hashlib.sha256(options["rp"]["id"].encode()).digest()
            + bytes([0x45])  # user present, user verified, attested credential data
            + self.sign_count.to_bytes(4, "big")
            + bytes(16)  # AAGUID
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self.cose_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {"clientDataJSON": b64(client_data), "attestationObject": b64(attestation)},
            "clientExtensionResults": {},
        }

    def get(self, options: dict[str, Any], origin: str) -> dict[str, Any]:
        """``navigator.credentials.get``'s answer: an assertion signed over authenticator data and client data."""
        self.sign_count += 1
        client_data = json.dumps(
            {"type": "webauthn.get", "challenge": options["challenge"], "origin": origin, "crossOrigin": False}
        ).encode()
        auth_data = (
            hashlib.sha256(options["rpId"].encode()).digest() + bytes([0x05]) + self.sign_count.to_bytes(4, "big")
        )
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": b64(self.user_handle),
            },
            "clientExtensionResults": {},
        }


@dataclass
class Answer:
    status: int
    body: Any
    set_cookie: list[str]


@dataclass
class Browser:
    """A browser at ``http://localhost:PORT`` of ``server``: its requests come from the pages' origin."""

    server: Server
    cookie: str | None = None

    @property
    def host(self) -> str:
        return "localhost:" + str(urlsplit(self.server.url).port)

    @property
    def origin(self) -> str:
        return "http://" + self.host

    def page_headers(self, **extra: str) -> dict[str, str]:
        headers = {"Host": self.host, "Origin": self.origin, "Sec-Fetch-Site": "same-origin", CSRF_HEADER: "1"}
        if self.cookie is not None:
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        headers.update(extra)
        return headers

    async def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Answer:
        sent = headers if headers is not None else self.page_headers()
        async with self.server.session.post(self.server.url + path, json=body, headers=sent) as response:
            answer = Answer(
                response.status, await response.json(content_type=None), response.headers.getall("Set-Cookie", [])
            )
        for line in answer.set_cookie:
            morsel = SimpleCookie(line).get(COOKIE)
            if morsel is not None:
                self.cookie = morsel.value or None
                if self.cookie:
                    self.server.issued.append(self.cookie)  # never in a log line (tests/conftest.py)
        return answer

    async def gql(self, query: str, variables: dict[str, Any] | None = None, **headers: str) -> Reply:
        return await self.server.gql(query, variables, headers=self.page_headers(**headers))

    async def register(self, secret: str, authenticator: Authenticator) -> Answer:
        """Open the invitation and register the authenticator's passkey (both ceremony steps)."""
        options = await self.post("/sign-in/invitation/options", {"invitation": secret})
        assert options.status == 200, options.body
        credential = authenticator.create(options.body["publicKey"], self.origin)
        return await self.post(
            "/sign-in/invitation/verify",
            {"invitation": secret, "ceremony": options.body["ceremony"], "credential": credential},
        )

    async def sign_in(self, authenticator: Authenticator) -> Answer:
        verify = await self.passkey_answer(authenticator)
        return await self.post("/sign-in/passkey/verify", verify)

    async def passkey_answer(self, authenticator: Authenticator) -> dict[str, Any]:
        """A fresh authentication ceremony and the authenticator's answer to it (not sent yet)."""
        options = await self.post("/sign-in/passkey/options", {})
        assert options.status == 200, options.body
        return {
            "ceremony": options.body["ceremony"],
            "credential": authenticator.get(options.body["publicKey"], self.origin),
        }


async def stored_session(server: Server, account_id: str, user_id: str) -> str:
    """A live session of the user written straight to the store (for tables of ids); its id."""
    row = await sign_in_store.insert_session(
        server.pool, tokens.new_id("ses"), os.urandom(32), account_id, user_id, "passkey", None, 600, 600, None, None
    )
    return row.id


async def invite(server: Server, admin_token: str, user_id: str) -> str:
    """createInvitation by an admin's token: the link's secret."""
    reply = await server.gql(CREATE_INVITATION, {"userId": user_id}, token=admin_token)
    assert reply.errors == [], reply.body
    created = reply.data["createInvitation"]
    assert created["path"] == "/invitation#" + created["secret"]
    server.issued.append(created["secret"])
    return created["secret"]
