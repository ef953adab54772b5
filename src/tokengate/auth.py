"""Authentication: an ``Authorization`` header becomes a Principal with compiled grants."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from tokengate import tokens
from tokengate.background import PeriodicFlush
from tokengate.cache import PrincipalCache
from tokengate.lifecycle import Actor, audit_expired_use
from tokengate.policy import SERVICE_TOKEN, USER, Principal
from tokengate.store import DATABASE_UNAVAILABLE
from tokengate.store import tokens as token_store
from tokengate.store.tokens import Credential

log = logging.getLogger("tokengate.auth")

MAX_AUTHORIZATION_LENGTH = 512
SCHEMES = ("bearer", "token")


class Unauthenticated(Exception):
    """No valid credentials. The message is safe to show: it never contains the presented text."""

    def __init__(self, message: str, outcome: str = "invalid"):
        super().__init__(message)
        self.outcome = outcome  # missing | malformed | invalid, for metrics


class DatabaseUnavailable(Exception):
    """The token is not in the cache and the database cannot be reached to check it."""


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


def is_expired(credential: Credential, now: datetime) -> bool:
    return credential.state == "active" and credential.expires_at is not None and credential.expires_at <= now


class LastUsedRecorder(PeriodicFlush):
    """Collects token id -> latest use in memory; ``flush`` writes them all in one statement.

    Requests only assign into a dict; the database sees one UPDATE every ``interval`` seconds and one at
    shutdown. ``last_used_at`` never moves backwards (``greatest`` in SQL), whichever process flushes.
    """

    def __init__(self, pool: asyncpg.Pool, interval: float = 5.0):
        self.pool = pool
        self.interval = interval
        self.task_name = "last-used-flush"
        self.pending: dict[str, datetime] = {}

    def note(self, token_id: str, when: datetime) -> None:
        self.pending[token_id] = when

    async def flush(self) -> int:
        """Write what was collected; on failure keep it for the next flush. Returns how many tokens."""
        if not self.pending:
            return 0
        batch, self.pending = self.pending, {}
        try:
            await token_store.flush_last_used(self.pool, batch)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as problem:
            log.warning(
                "could not record last use of %d tokens, retrying later: %s", len(batch), type(problem).__name__
            )
            for token_id, when in batch.items():
                newer = self.pending.get(token_id)
                if newer is None or newer < when:
                    self.pending[token_id] = when
            return 0
        return len(batch)


class Authenticator:
    """Turns presented token text into a Principal, or raises ``Unauthenticated``.

    Validated v2 principals are cached (see cache.py): a warm request checks the keyed hash and the
    expiry in memory and touches no database. The cache is trusted only while ``cache_trusted()`` says
    so (the invalidation listener is connected); when the database cannot be reached, principals
    already validated keep working from the cache.
    """

    INVALID = "invalid token"

    def __init__(
        self,
        pool: asyncpg.Pool,
        keys: tuple[bytes, ...],
        last_used: LastUsedRecorder | None = None,
        cache: PrincipalCache | None = None,
        cache_trusted: Callable[[], bool] = lambda: True,
    ):
        self.pool = pool
        self.keys = keys
        self.newest_key_id = tokens.key_id(keys[0])
        self.last_used = last_used if last_used is not None else LastUsedRecorder(pool)
        self.cache = cache if cache is not None else PrincipalCache()
        self.cache_trusted = cache_trusted

    async def authenticate_header(
        self, header: str | None, *, client_addr: str | None = None, source: str = "graphql"
    ) -> Principal:
        parsed, principal = self.from_memory(header)
        if principal is not None:
            return principal
        return await self.from_database(parsed, client_addr=client_addr, source=source)

    async def authenticate(self, text: str, *, client_addr: str | None = None, source: str = "graphql") -> Principal:
        parsed, principal = self._parsed_from_memory(text)
        if principal is not None:
            return principal
        return await self.from_database(parsed, client_addr=client_addr, source=source)

    def from_memory(self, header: str | None) -> tuple[tokens.ParsedToken, Principal | None]:
        """The header's token parsed, and its principal when the cache can answer: no coroutine, no I/O.

        Raises ``Unauthenticated`` for what is refused offline (malformed header or token, wrong secret).
        """
        return self._parsed_from_memory(token_from_header(header))

    def _parsed_from_memory(self, text: str) -> tuple[tokens.ParsedToken, Principal | None]:
        try:
            parsed = tokens.parse_token(text)
        except tokens.MalformedToken as error:
            raise Unauthenticated(f"malformed token: {error}", "malformed") from None
        if parsed.format == "v2" and self.cache_trusted():
            entry = self.cache.get(parsed.lookup)
            if entry is not None:
                return parsed, self._from_entry(parsed, entry.token_hash, entry.principal, datetime.now(UTC))
        return parsed, None

    async def from_database(
        self, parsed: tokens.ParsedToken, *, client_addr: str | None = None, source: str = "graphql"
    ) -> Principal:
        """Validate against the stored token (the cache could not answer), and cache the principal."""
        now = datetime.now(UTC)
        try:
            credential = await self.find_credential(parsed)
        except DATABASE_UNAVAILABLE:
            stale = self.cache.peek(parsed.lookup) if parsed.format == "v2" else None
            principal = self._from_entry(parsed, stale.token_hash, stale.principal, now) if stale else None
            if principal is None:
                raise DatabaseUnavailable from None
            return principal
        if credential is None or not is_usable(credential, now):
            if credential is not None and not credential.expiry_audited and is_expired(credential, now):
                await self._audit_expired_use(credential, client_addr, source)
            raise Unauthenticated(self.INVALID)
        self.last_used.note(credential.id, now)
        principal = principal_from_credential(credential)
        if parsed.format == "v2":
            token_hash = credential.hash
            if credential.key_id != self.newest_key_id:
                token_hash = await self._rehash(parsed.text, credential)
            self.cache.put(credential.id, token_hash, principal)
        return principal

    async def _rehash(self, text: str, credential: Credential) -> bytes:
        """Re-hash a token that validated under an older server key (or before key ids were recorded) under
        the newest one: the only moment the server holds its text. Authentication never fails over it."""
        new_hash = tokens.hash_token(text, self.keys[0])
        try:
            await token_store.rehash(self.pool, credential.id, credential.hash, new_hash, self.newest_key_id)
        except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as problem:
            log.warning("could not re-hash token %s under the newest key: %s", credential.id, type(problem).__name__)
            return credential.hash
        return new_hash

    def _from_entry(
        self, parsed: tokens.ParsedToken, token_hash: bytes, principal: Principal, now: datetime
    ) -> Principal | None:
        """The cached principal if the text proves it and it has not expired; None to ask the database."""
        if not tokens.hash_matches(parsed.text, token_hash, self.keys):
            raise Unauthenticated(self.INVALID)  # same id, other secret: no stored token has this text
        if principal.expires_at is not None and principal.expires_at <= now:
            self.cache.invalidate_token(parsed.lookup)  # expired since cached: the database path audits it
            return None
        self.last_used.note(principal.token_id, now)
        return principal

    def forget_token(self, token_id: str) -> None:
        self.cache.invalidate_token(token_id)

    async def _audit_expired_use(self, credential: Credential, client_addr: str | None, source: str) -> None:
        if credential.kind != "service":
            return
        actor = Actor(principal_from_credential(credential).actor, source, client_addr)
        async with self.pool.acquire() as conn, conn.transaction():
            await audit_expired_use(conn, credential.account_id, credential.id, actor)

    async def find_credential(self, parsed: tokens.ParsedToken) -> Credential | None:
        """The stored token this text proves, whatever its state; None when no hash matches."""
        if parsed.format == "v2":
            credential = await token_store.credential_by_id(self.pool, parsed.lookup)
            if credential is None or credential.kind != parsed.kind:
                return None
            return credential if tokens.hash_matches(parsed.text, credential.hash, self.keys) else None
        for candidate in await token_store.credentials_by_hint(self.pool, parsed.lookup):
            # argon2id takes tens of milliseconds: verify off the event loop so other requests go on.
            if await asyncio.to_thread(tokens.legacy_matches, parsed.text, candidate.hash):
                return candidate
        return None
