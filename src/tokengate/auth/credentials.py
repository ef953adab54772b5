"""Authentication: presented token text becomes a Principal with compiled grants, from the cache or the store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from tokengate.auth.principal_cache import CacheEntry, PrincipalCache
from tokengate.core import tokens
from tokengate.core.errors import Unauthenticated
from tokengate.core.policy import Principal
from tokengate.jobs.last_used import LastUsedRecorder
from tokengate.store import DATABASE_UNAVAILABLE, DatabaseUnavailable
from tokengate.store import tokens as token_store
from tokengate.store.tokens import (
    Credential,
    LegacyVerify,
    credential_state,
    find_credential,
    principal_from_credential,
    proves_v2,
)

log = logging.getLogger("tokengate.auth")

INVALID = "invalid token"


def never_authenticates(stored: Credential | None, proved: bool, audited: bool, now: datetime) -> bool:
    """May this v2 text be remembered as one that cannot authenticate? Any text that proves no stored token (an
    unknown id, or a real id with a wrong secret: alike, so that the answer says nothing about which ids exist),
    a deleted token's, and an expired one's once its first refused use is audited. What is remembered is the
    keyed hash of the whole text, never the id: ids are public (audit log, gateway headers), and a wrong secret
    sent with a live token's id must not refuse the live token's own text."""
    if stored is None or not proved or stored.state == "deleted":
        return True
    if credential_state(stored, now) != "EXPIRED":
        return False
    return stored.expiry_audited or stored.kind != "service" or audited


# Called with the credential of an expired service token at its first refused use (services audit it).
ExpiredUse = Callable[[Credential, "str | None"], Awaitable[object]]


class Authenticator:
    """Turns presented token text into a Principal, or raises ``Unauthenticated``.

    Validated principals are cached (principal_cache.py): a warm request checks the keyed hash in memory and
    touches no database. Every path that answers from memory (``remembered``, ``from_memory``,
    ``cached_principal``, the fallback of ``from_database``) applies one rule, ``tokens.may_serve_cached``:
    not expired (nor past its rotation window) by the application's clock, and validated recently enough. The
    cache is trusted only while ``cache_trusted()`` says so (the invalidation listener is connected); when the
    database cannot be reached, principals validated at most ``stale_seconds`` ago keep working from it.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        keys: tuple[bytes, ...],
        last_used: LastUsedRecorder | None = None,
        cache: PrincipalCache | None = None,
        cache_trusted: Callable[[], bool] = lambda: True,
        on_expired_use: ExpiredUse | None = None,
        verify_legacy: LegacyVerify | None = None,
        stale_seconds: float = tokens.STALE_PRINCIPAL_SECONDS,
    ):
        self.pool = pool
        self.stale_seconds = stale_seconds
        self.keys = keys
        self.newest_key_id = tokens.key_id(keys[0])
        self.last_used = last_used if last_used is not None else LastUsedRecorder(pool)
        self.cache = cache if cache is not None else PrincipalCache()
        self.cache_trusted = cache_trusted
        self.on_expired_use = on_expired_use
        self.verify_legacy = verify_legacy
        self._validating: dict[bytes, asyncio.Future[Principal]] = {}  # by keyed hash of the text, never the text

    async def authenticate(self, text: str, *, client_addr: str | None = None) -> Principal:
        principal = self.remembered(text)
        if principal is not None:
            return principal
        parsed, principal = self.from_memory(text)
        if principal is not None:
            return principal
        return await self.from_database(parsed, client_addr=client_addr)

    def remembered(self, text: str) -> Principal | None:
        """The principal of a text validated before, found by the keyed hash of the text alone (one hash and a
        lookup: no parsing, no checksum); None when the cache cannot answer so (then ``from_memory`` decides).

        The hash is the proof: the entry's alias is the hash of the text that was validated, under the newest
        key, so only that text finds it."""
        if not text.isascii() or not self.cache_trusted():
            return None
        entry = self.cache.fresh_aliased(tokens.hash_token(text, self.keys[0]))
        if entry is None:
            return None
        principal = entry.principal
        # Younger than the TTL (fresh_aliased): for a token without expiry that is all the rule asks.
        if principal.expires_at is not None and not self._may_serve(entry, datetime.now(UTC), self.cache.ttl):
            return None  # expired since cached: from_memory drops it, the database path audits it
        self.cache.touch(principal.token_id, entry)
        self.last_used.note(principal.token_id, time.time())
        return principal

    def from_memory(self, text: str) -> tuple[tokens.ParsedToken, Principal | None]:
        """The token parsed, and its principal when the cache can answer: no coroutine, no I/O.

        Raises ``Unauthenticated`` for what is refused offline (malformed token, wrong secret for a cached id, an
        id known not to authenticate).
        """
        try:
            parsed = tokens.parse_token(text)
        except tokens.MalformedToken as error:
            raise Unauthenticated(f"malformed token: {error}", "malformed") from None
        if not self.cache_trusted():
            return parsed, None
        if parsed.format == "v2" and self.cache.known_invalid(self._alias(parsed)):
            raise Unauthenticated(INVALID)
        entry = self._cached(parsed, self.cache.get)
        if entry is None:
            return parsed, None
        return parsed, self._from_entry(parsed, entry, self.cache.ttl)

    def cached_principal(self, text: str) -> Principal | None:
        """The principal the cache holds for this text, if the text proves it and the rule lets it serve (the
        cache's lifetime while it is trusted, the stale bound otherwise); no counting, no side effect (the gate's
        look before a body is read, for the rate limits)."""
        max_age = self.cache.ttl if self.cache_trusted() else self.stale_seconds
        now = datetime.now(UTC)
        if text.isascii():
            held = self.cache.fresh_aliased(tokens.hash_token(text, self.keys[0]))
            if held is not None:
                return held.principal if self._may_serve(held, now, max_age) else None
        try:
            parsed = tokens.parse_token(text)
        except tokens.MalformedToken:
            return None
        entry = self._cached(parsed, self.cache.peek)
        if entry is None or not tokens.hash_matches(parsed.text, entry.token_hash, self.keys):
            return None
        return entry.principal if self._may_serve(entry, now, max_age) else None

    def _may_serve(self, entry: CacheEntry, now: datetime, max_age: float) -> bool:
        return tokens.may_serve_cached(entry.principal.expires_at, now, self.cache.age(entry), max_age)

    def _alias(self, parsed: tokens.ParsedToken) -> bytes:
        """What a legacy token's entry (and a validation under way) is found by: its keyed hash (the text itself
        is never kept)."""
        return tokens.hash_token(parsed.text, self.keys[0])

    def _cached(self, parsed: tokens.ParsedToken, read: Callable[[str], CacheEntry | None]) -> CacheEntry | None:
        if parsed.format == "v2":
            return read(parsed.lookup)
        token_id = self.cache.aliased(self._alias(parsed))
        return read(token_id) if token_id is not None else None

    async def from_database(self, parsed: tokens.ParsedToken, *, client_addr: str | None = None) -> Principal:
        """Validate against the stored token (the cache could not answer), and cache the principal. Requests
        presenting the same text meanwhile wait for that one validation (one query, one argon2id) and share its
        answer.

        Raises ``Unauthenticated``, ``DatabaseUnavailable``, or ``VerifierBusy`` (legacy tokens, pool full)."""
        key = self._alias(parsed)
        pending = self._validating.get(key)
        if pending is None:
            pending = self._validating[key] = asyncio.ensure_future(self._validate(parsed, client_addr))
            pending.add_done_callback(lambda done: self._validated(key, done))
        return await asyncio.shield(pending)

    def _validated(self, key: bytes, done: asyncio.Future[Principal]) -> None:
        del self._validating[key]
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have gone

    async def _read(self, parsed: tokens.ParsedToken) -> tuple[Credential | None, Credential | None]:
        """The stored token the text names (v2; None for a legacy text), and the one it proves (None: none)."""
        if parsed.format == "v2":
            stored = await token_store.credential_by_id(self.pool, parsed.lookup)
            return stored, stored if stored is not None and proves_v2(parsed, stored, self.keys) else None
        return None, await find_credential(self.pool, self.keys, parsed, self.verify_legacy)

    def _changed_since(self, generation: int, credential: Credential) -> bool:
        return self.cache.changed_since(generation, credential.id, credential.user_id, credential.account_id)

    async def _validate(self, parsed: tokens.ParsedToken, client_addr: str | None) -> Principal:
        now = datetime.now(UTC)
        try:
            generation = self.cache.generation()
            stored, credential = await self._read(parsed)
            if credential is not None and self._changed_since(generation, credential):
                # A notice about this token arrived while it was read: the change committed after the read began,
                # so the read may predate it. Read again, now that the notice has been applied.
                generation = self.cache.generation()
                stored, credential = await self._read(parsed)
        except DATABASE_UNAVAILABLE:
            # What this instance validated at most stale_seconds ago still serves; anything else is a 503.
            stale = self._cached(parsed, self.cache.peek)
            principal = self._from_entry(parsed, stale, self.stale_seconds) if stale else None
            if principal is None:
                raise DatabaseUnavailable from None
            return principal
        state = credential_state(credential, now) if credential is not None else None
        if credential is None or state != "ACTIVE":
            first_expired_use = credential is not None and state == "EXPIRED" and not credential.expiry_audited
            audited = first_expired_use and credential is not None and credential.kind == "service"
            if audited and self.on_expired_use is not None:
                await self.on_expired_use(credential, client_addr)
            if parsed.format == "v2" and never_authenticates(stored, credential is not None, audited, now):
                self.cache.note_invalid(self._alias(parsed))
            raise Unauthenticated(INVALID)
        self.last_used.note(credential.id, now.timestamp())
        principal = principal_from_credential(credential)
        alias = self._alias(parsed)
        token_hash = alias  # a legacy token's entry is proved by the keyed hash of its text
        if parsed.format == "v2":  # only the first use per instance (and TTL) pays argon2id, for a legacy one
            token_hash = credential.hash
            if credential.key_id != self.newest_key_id:
                token_hash = await self._rehash(parsed.text, credential)
        # Answered from this read, but kept only if no notice about the token arrived since it began: a cached
        # principal never outlives a change that committed after its read.
        if not self._changed_since(generation, credential):
            self.cache.put(credential.id, token_hash, principal, alias=alias)
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

    def _from_entry(self, parsed: tokens.ParsedToken, entry: CacheEntry, max_age: float) -> Principal | None:
        """The cached principal if the text proves it and the rule lets it serve; None to ask the database."""
        if not tokens.hash_matches(parsed.text, entry.token_hash, self.keys):
            raise Unauthenticated(INVALID)  # same id, other secret: no stored token has this text
        principal = entry.principal
        now = datetime.now(UTC)
        if not self._may_serve(entry, now, max_age):
            # Expired since cached (the database path audits it), or too old to serve: it never gets younger.
            self.cache.invalidate_token(principal.token_id)
            return None
        self.last_used.note(principal.token_id, now.timestamp())
        return principal
