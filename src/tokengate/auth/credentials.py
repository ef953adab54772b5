"""Authentication: presented token text becomes a Principal with compiled grants, from the cache or the store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import asyncpg

from tokengate.auth.principal_cache import CacheEntry, PrincipalCache
from tokengate.core import tokens
from tokengate.core.errors import Unauthenticated
from tokengate.core.policy import SERVICE_TOKEN, USER, Principal
from tokengate.jobs.batching import PeriodicFlush
from tokengate.store import DATABASE_UNAVAILABLE, Executor
from tokengate.store import tokens as token_store
from tokengate.store.tokens import Credential

log = logging.getLogger("tokengate.auth")

INVALID = "invalid token"


class DatabaseUnavailable(Exception):
    """The token is not in the cache and the database cannot be reached to check it."""


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
        created_at=credential.created_at,
    )


def credential_state(credential: Credential, now: datetime) -> tokens.TokenState:
    return tokens.token_state(credential.state, credential.expires_at, now)


# Finds which (credential, argon2id hash) a legacy token's text proves; LegacyVerifier.first_match in a server.
LegacyVerify = Callable[[str, Sequence[tuple[Credential, bytes]]], Awaitable["Credential | None"]]


async def verify_in_thread(text: str, candidates: Sequence[tuple[Credential, bytes]]) -> Credential | None:
    """argon2id in a thread, one candidate after the other: for the command line, which keeps no pool."""
    for credential, stored in candidates:
        if await asyncio.to_thread(tokens.legacy_matches, text, stored):
            return credential
    return None


def proves_v2(parsed: tokens.ParsedToken, credential: Credential, keys: tuple[bytes, ...]) -> bool:
    return credential.kind == parsed.kind and tokens.hash_matches(parsed.text, credential.hash, keys)


async def find_credential(
    db: Executor, keys: tuple[bytes, ...], parsed: tokens.ParsedToken, verify_legacy: LegacyVerify | None = None
) -> Credential | None:
    """The stored token this text proves, whatever its state; None when no hash matches."""
    if parsed.format == "v2":
        credential = await token_store.credential_by_id(db, parsed.lookup)
        return credential if credential is not None and proves_v2(parsed, credential, keys) else None
    candidates = await token_store.credentials_by_hint(db, parsed.lookup)
    # argon2id takes tens of milliseconds: verified off the event loop so other requests go on.
    return await (verify_legacy or verify_in_thread)(parsed.text, [(c, c.hash) for c in candidates])


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

    def __init__(
        self,
        pool: asyncpg.Pool,
        keys: tuple[bytes, ...],
        last_used: LastUsedRecorder | None = None,
        cache: PrincipalCache | None = None,
        cache_trusted: Callable[[], bool] = lambda: True,
        on_expired_use: ExpiredUse | None = None,
        verify_legacy: LegacyVerify | None = None,
    ):
        self.pool = pool
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
        now = datetime.now(UTC)
        expires_at = principal.expires_at
        if expires_at is not None and expires_at <= now:
            return None  # expired since cached: from_memory drops it, the database path audits it
        self.cache.touch(principal.token_id, entry)
        self.last_used.note(principal.token_id, now)
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
        return parsed, self._from_entry(parsed, entry.token_hash, entry.principal, datetime.now(UTC))

    def cached_principal(self, text: str) -> Principal | None:
        """The principal the cache holds for this text, if the text proves it; no counting, no side effect (the
        gate's look before a body is read)."""
        if text.isascii():
            held = self.cache.fresh_aliased(tokens.hash_token(text, self.keys[0]))
            if held is not None:
                return held.principal
        try:
            parsed = tokens.parse_token(text)
        except tokens.MalformedToken:
            return None
        entry = self._cached(parsed, self.cache.peek)
        if entry is None or not tokens.hash_matches(parsed.text, entry.token_hash, self.keys):
            return None
        return entry.principal

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
            stale = self._cached(parsed, self.cache.peek)
            principal = self._from_entry(parsed, stale.token_hash, stale.principal, now) if stale else None
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
        self.last_used.note(credential.id, now)
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

    def _from_entry(
        self, parsed: tokens.ParsedToken, token_hash: bytes, principal: Principal, now: datetime
    ) -> Principal | None:
        """The cached principal if the text proves it and it has not expired; None to ask the database."""
        if not tokens.hash_matches(parsed.text, token_hash, self.keys):
            raise Unauthenticated(INVALID)  # same id, other secret: no stored token has this text
        if tokens.token_state("active", principal.expires_at, now) == "EXPIRED":
            self.cache.invalidate_token(principal.token_id)  # expired since cached: the database path audits it
            return None
        self.last_used.note(principal.token_id, now)
        return principal
