"""Authentication: an ``Authorization`` header becomes a Principal with compiled grants."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg

from tokengate import tokens
from tokengate.policy import SERVICE_TOKEN, USER, Principal
from tokengate.store import tokens as token_store
from tokengate.store.tokens import Credential

log = logging.getLogger("tokengate.auth")

MAX_AUTHORIZATION_LENGTH = 512
SCHEMES = ("bearer", "token")


class Unauthenticated(Exception):
    """No valid credentials. The message is safe to show: it never contains the presented text."""


def token_from_header(header: str | None) -> str:
    """The token text from ``Authorization: Bearer <token>`` or ``Authorization: Token <token>``."""
    if header is None or not header.strip():
        raise Unauthenticated("authentication required: send Authorization: Bearer <token>")
    if len(header) > MAX_AUTHORIZATION_LENGTH:
        raise Unauthenticated("malformed Authorization header")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() not in SCHEMES or not value or " " in value:
        raise Unauthenticated("malformed Authorization header: expected 'Bearer <token>'")
    return value


def principal_from_credential(credential: Credential) -> Principal:
    kind = credential.kind  # "service" | "user"
    return Principal(
        kind=SERVICE_TOKEN if kind == "service" else USER,
        token_id=credential.id,
        display_prefix=tokens.display_prefix_for(
            kind,  # type: ignore[arg-type]
            credential.format,
            credential.lookup_hint or credential.id,
        ),
        account_id=credential.account_id,
        account_name=credential.account_name,
        account_plan=credential.account_plan,
        user_id=credential.user_id,
        license=credential.license,
        grants=credential.grants,
        project_ids=credential.project_ids,
        expires_at=credential.expires_at,
    )


def is_usable(credential: Credential, now: datetime) -> bool:
    return credential.state == "active" and (credential.expires_at is None or credential.expires_at > now)


class Authenticator:
    """Turns presented token text into a Principal, or raises ``Unauthenticated``."""

    INVALID = "invalid token"

    def __init__(self, pool: asyncpg.Pool, keys: tuple[bytes, ...]):
        self.pool = pool
        self.keys = keys

    async def authenticate_header(self, header: str | None) -> Principal:
        return await self.authenticate(token_from_header(header))

    async def authenticate(self, text: str) -> Principal:
        try:
            parsed = tokens.parse_token(text)
        except tokens.MalformedToken as error:
            raise Unauthenticated(f"malformed token: {error}") from None
        credential = await self.find_credential(parsed)
        if credential is None or not is_usable(credential, datetime.now(UTC)):
            raise Unauthenticated(self.INVALID)
        return principal_from_credential(credential)

    async def find_credential(self, parsed: tokens.ParsedToken) -> Credential | None:
        """The stored token this text proves, whatever its state; None when no hash matches."""
        if parsed.format == "v2":
            credential = await token_store.credential_by_id(self.pool, parsed.lookup)
            if credential is None or credential.kind != parsed.kind:
                return None
            return credential if tokens.hash_matches(parsed.text, credential.hash, self.keys) else None
        for candidate in await token_store.credentials_by_hint(self.pool, parsed.lookup):
            if tokens.legacy_matches(parsed.text, candidate.hash):
                return candidate
        return None
