"""Usage insight in GraphQL: a token's requests per day, read for every token of an answer at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import date

import asyncpg
import strawberry

from tokengate.core.errors import InvalidInput
from tokengate.store import usage as usage_store
from tokengate.store.usage import KEEP_DAYS


@strawberry.type(description="Requests a token made on one UTC day.")
class DailyUsage:
    day: date
    count: int


class UsageBatch:
    """The daily usage of every token of one answer (a list, a page), read in one query for all of them the
    first time any of them is asked (per ``days``): ``usage`` on a page of 50 tokens is one query, not 50.
    Sibling resolvers run concurrently; the lock lets the first read while the others wait for its answer."""

    __slots__ = ("_keys", "_lock", "_read")

    def __init__(self, token_keys: Iterable[str]) -> None:
        self._keys = list(dict.fromkeys(token_keys))
        self._lock = asyncio.Lock()
        self._read: dict[int, dict[str, list[DailyUsage]]] = {}

    async def of(self, pool: asyncpg.Pool, token_key: str, days: int) -> list[DailyUsage]:
        if not 1 <= days <= KEEP_DAYS:
            raise InvalidInput(f"days must be between 1 and {KEEP_DAYS}")
        async with self._lock:
            if days not in self._read:
                found = await usage_store.daily_of_tokens(pool, self._keys, days)
                self._read[days] = {
                    key: [DailyUsage(day=count.day, count=count.requests) for count in counts]
                    for key, counts in found.items()
                }
        return self._read[days][token_key]
