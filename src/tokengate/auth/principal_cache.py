"""Bounded, in-process caches of credentials, so a warm request touches no database.

``PrincipalCache`` holds validated credentials: what validation needs (the stored hash, state, expiry) and the
compiled principal. Entries are dropped by LISTEN/NOTIFY invalidation (see listener.py), by LRU eviction
beyond ``max_size``, and by age beyond ``ttl`` as a backstop. Whether an entry may serve (not expired, not too
old) is one rule, ``tokens.may_serve_cached``, applied by every path of credentials.py on every use. The space
is shared fairly: when the cache is full, an account that already holds ``account_share`` of it makes room from
its own entries, so one account minting and using tokens cannot evict every other account's.

Every entry is also found through an alias, the keyed hash of the token's text under the newest server key
(never the text itself): a legacy token has no id in its text, and for a v2 token it spares parsing the text
and checking its checksum on every request (the hash is what proves the text anyway).

It also remembers token texts that cannot authenticate (an unknown id, a wrong secret for a real id, a deleted
token, an expired one already audited), by the same keyed hash, so a client repeating one costs no query: ids
are 16 random base62 characters drawn when a token is created, so an id unknown now is not issued later (odds
62^-16 per token), a token's secret never changes, and deleted or expired tokens never come back. The text, not
the id, is what is remembered: ids are public, an unknown id and a real one with a wrong secret are answered
alike, and a wrong secret sent with a live token's id never refuses the live token's own text. The TTL only
bounds how long such an answer is kept.

A read from the database that started before an invalidation must not be cached after it (the change
committed after the read began; its notice has already dropped what the cache held): ``generation`` is taken
before the read, and ``changed_since`` then says whether a notice about that token, its user or its account, or
a flush, arrived meanwhile. The record of recent invalidations is bounded; what falls out of it counts as a
flush for reads older than it, so the answer errs towards "changed" (one more query), never the other way.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from tokengate.core.policy import Principal

MAX_TTL_SECONDS = 60.0
ACCOUNT_SHARE = 0.25  # of a full cache, the most one account keeps by evicting other accounts' entries
INVALID_IDS_SIZE = 10_000
INVALID_IDS_TTL_SECONDS = 60.0
RECENT_CHANGES_SIZE = 10_000  # invalidations remembered for reads under way; older ones count as a flush


@dataclass(frozen=True, slots=True)
class CacheEntry:
    token_hash: bytes
    principal: Principal
    stored_at: float
    alias: bytes | None = None  # the keyed hash of the token's text the entry is found by


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    invalidations: int = 0
    flushes: int = 0
    invalid_hits: int = 0  # requests answered from the ids known not to authenticate


class PrincipalCache:
    """LRU of token id -> CacheEntry. Not thread-safe: one event loop owns it."""

    def __init__(
        self,
        max_size: int = 10_000,
        ttl: float = MAX_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        account_share: float = ACCOUNT_SHARE,
    ):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.ttl = min(ttl, MAX_TTL_SECONDS)
        self.clock = clock
        self.account_limit = max(1, int(max_size * account_share))
        self.stats = CacheStats()
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._by_account: dict[str, OrderedDict[str, None]] = {}  # each account's keys, least recent first
        self._aliases: dict[bytes, str] = {}
        self._invalid: OrderedDict[bytes, float] = OrderedDict()  # keyed hash of a text -> when it failed
        self._generation = 0  # counts invalidations
        self._changed: OrderedDict[tuple[str, str], int] = OrderedDict()  # ("token"|"user"|"account", id) -> when
        self._flushed_at = 0  # the generation of the last flush (or of the oldest change forgotten)

    def __len__(self) -> int:
        return len(self._entries)

    def token_ids(self) -> frozenset[str]:
        """The ids of the tokens held now (what an operator or a test compares between instances)."""
        return frozenset(self._entries)

    def entries_of(self, account_id: str) -> int:
        return len(self._by_account.get(account_id, ()))

    def get(self, token_id: str) -> CacheEntry | None:
        """The entry if present and younger than the TTL; counts a hit or a miss."""
        entry = self._entries.get(token_id)
        if entry is None:
            self.stats.misses += 1
            return None
        if self.clock() - entry.stored_at > self.ttl:
            self._drop(token_id)
            self.stats.misses += 1
            return None
        self._entries.move_to_end(token_id)
        self._by_account[entry.principal.account_id].move_to_end(token_id)
        self.stats.hits += 1
        return entry

    def aliased(self, alias: bytes) -> str | None:
        """The token id of the entry found by ``alias`` (a legacy token's keyed hash), if one is held."""
        return self._aliases.get(alias)

    def fresh_aliased(self, alias: bytes) -> CacheEntry | None:
        """The entry found by ``alias`` if it is younger than the TTL, without counting or dropping anything (the
        caller counts a use with ``touch``; ``get`` decides about anything else)."""
        token_id = self._aliases.get(alias)
        if token_id is None:
            return None
        entry = self._entries.get(token_id)
        if entry is None or self.clock() - entry.stored_at > self.ttl:
            return None
        return entry

    def touch(self, token_id: str, entry: CacheEntry) -> None:
        """Count a hit on an entry found by ``fresh_aliased`` and make it the most recently used."""
        self._entries.move_to_end(token_id)
        self._by_account[entry.principal.account_id].move_to_end(token_id)
        self.stats.hits += 1

    def peek(self, token_id: str) -> CacheEntry | None:
        """The entry whatever its age, without counting: the caller bounds the age (the fallback while the
        database is down serves entries up to the stale bound, not the TTL)."""
        return self._entries.get(token_id)

    def age(self, entry: CacheEntry) -> float:
        """Seconds since the entry was validated against the database and stored."""
        return self.clock() - entry.stored_at

    def put(self, token_id: str, token_hash: bytes, principal: Principal, alias: bytes | None = None) -> None:
        if token_id in self._entries:
            self._drop(token_id)
        account_id = principal.account_id
        while len(self._entries) >= self.max_size:
            self._evict_for(account_id)
        self._entries[token_id] = CacheEntry(token_hash, principal, self.clock(), alias)
        self._by_account.setdefault(account_id, OrderedDict())[token_id] = None
        if alias is not None:
            self._aliases[alias] = token_id

    def _evict_for(self, account_id: str) -> None:
        """Make room for an entry of ``account_id``: the least recently used entry, unless that is another
        account's while this one already holds its share; then this account's own least recently used."""
        victim = next(iter(self._entries))
        own = self._by_account.get(account_id)
        if own and len(own) >= self.account_limit and self._entries[victim].principal.account_id != account_id:
            victim = next(iter(own))
        self._drop(victim)
        self.stats.evictions += 1

    def _drop(self, token_id: str) -> CacheEntry | None:
        entry = self._entries.pop(token_id, None)
        if entry is None:
            return None
        account_id = entry.principal.account_id
        keys = self._by_account[account_id]
        del keys[token_id]
        if not keys:
            del self._by_account[account_id]
        if entry.alias is not None and self._aliases.get(entry.alias) == token_id:
            del self._aliases[entry.alias]
        return entry

    def generation(self) -> int:
        """Where the invalidations stand now: taken before reading a credential, for ``changed_since``."""
        return self._generation

    def changed_since(self, generation: int, token_id: str, user_id: str | None, account_id: str) -> bool:
        """Did a notice that concerns this token (the token, its user, its account) or a flush arrive after
        ``generation`` was taken? Then what was read before it may be stale and is not to be cached."""
        if self._flushed_at > generation:
            return True
        keys = [("token", token_id), ("account", account_id)]
        if user_id is not None:
            keys.append(("user", user_id))
        return any(self._changed.get(key, 0) > generation for key in keys)

    def _note_change(self, kind: str, key: str) -> None:
        self._generation += 1
        self._changed[(kind, key)] = self._generation
        self._changed.move_to_end((kind, key))
        if len(self._changed) > RECENT_CHANGES_SIZE:
            _, forgotten = self._changed.popitem(last=False)
            self._flushed_at = max(self._flushed_at, forgotten)

    def invalidate_token(self, token_id: str) -> None:
        self._note_change("token", token_id)
        if self._drop(token_id) is not None:
            self.stats.invalidations += 1

    def _invalidate_where(self, matches: Callable[[Principal], bool]) -> None:
        """Drop every entry whose principal matches (account- or user-wide changes; rare)."""
        doomed = [key for key, entry in self._entries.items() if matches(entry.principal)]
        for key in doomed:
            self._drop(key)
        self.stats.invalidations += len(doomed)

    def invalidate_account(self, account_id: str) -> None:
        self._note_change("account", account_id)
        self._invalidate_where(lambda principal: principal.account_id == account_id)

    def invalidate_user(self, user_id: str) -> None:
        self._note_change("user", user_id)
        self._invalidate_where(lambda principal: principal.user_id == user_id)

    def clear(self) -> None:
        self._generation += 1
        self._flushed_at = self._generation
        self._changed.clear()
        self._entries.clear()
        self._by_account.clear()
        self._aliases.clear()
        self._invalid.clear()
        self.stats.flushes += 1

    def note_invalid(self, text_hash: bytes) -> None:
        """Remember that the token text whose keyed hash is ``text_hash`` cannot authenticate."""
        self._invalid[text_hash] = self.clock()
        self._invalid.move_to_end(text_hash)
        if len(self._invalid) > INVALID_IDS_SIZE:
            self._invalid.popitem(last=False)

    def known_invalid(self, text_hash: bytes) -> bool:
        """True when the text with this keyed hash was found not to authenticate within the last
        ``INVALID_IDS_TTL_SECONDS``."""
        noted = self._invalid.get(text_hash)
        if noted is None:
            return False
        if self.clock() - noted > INVALID_IDS_TTL_SECONDS:
            del self._invalid[text_hash]
            return False
        self.stats.invalid_hits += 1
        return True

    def invalid_ids(self) -> int:
        return len(self._invalid)
