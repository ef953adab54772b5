"""A bounded, in-process cache of validated credentials, so a warm request touches no database.

Entries hold what validation needs (the stored hash, state, expiry) and the compiled principal. They are
dropped by LISTEN/NOTIFY invalidation (see invalidation.py), by LRU eviction beyond ``max_size``, and by
age beyond ``ttl`` as a backstop. Expiry is checked against the cached ``expires_at`` on every use.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from tokengate.policy import Principal

MAX_TTL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class CacheEntry:
    token_hash: bytes
    principal: Principal
    stored_at: float


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    invalidations: int = 0
    flushes: int = 0


class PrincipalCache:
    """LRU of token id -> CacheEntry. Not thread-safe: one event loop owns it."""

    def __init__(
        self, max_size: int = 10_000, ttl: float = MAX_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.ttl = min(ttl, MAX_TTL_SECONDS)
        self.clock = clock
        self.stats = CacheStats()
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def token_ids(self) -> frozenset[str]:
        """The ids of the tokens held now (what an operator or a test compares between instances)."""
        return frozenset(self._entries)

    def get(self, token_id: str) -> CacheEntry | None:
        """The entry if present and younger than the TTL; counts a hit or a miss."""
        entry = self._entries.get(token_id)
        if entry is None:
            self.stats.misses += 1
            return None
        if self.clock() - entry.stored_at > self.ttl:
            del self._entries[token_id]
            self.stats.misses += 1
            return None
        self._entries.move_to_end(token_id)
        self.stats.hits += 1
        return entry

    def peek(self, token_id: str) -> CacheEntry | None:
        """The entry whatever its age, without counting: the fallback while the database is down."""
        return self._entries.get(token_id)

    def put(self, token_id: str, token_hash: bytes, principal: Principal) -> None:
        self._entries[token_id] = CacheEntry(token_hash, principal, self.clock())
        self._entries.move_to_end(token_id)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
            self.stats.evictions += 1

    def invalidate_token(self, token_id: str) -> None:
        if self._entries.pop(token_id, None) is not None:
            self.stats.invalidations += 1

    def invalidate_where(self, matches: Callable[[Principal], bool]) -> None:
        """Drop every entry whose principal matches (account- or user-wide changes; rare)."""
        doomed = [key for key, entry in self._entries.items() if matches(entry.principal)]
        for key in doomed:
            del self._entries[key]
        self.stats.invalidations += len(doomed)

    def invalidate_account(self, account_id: str) -> None:
        self.invalidate_where(lambda principal: principal.account_id == account_id)

    def invalidate_user(self, user_id: str) -> None:
        self.invalidate_where(lambda principal: principal.user_id == user_id)

    def clear(self) -> None:
        self._entries.clear()
        self.stats.flushes += 1
