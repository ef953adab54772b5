"""Usage insight in GraphQL: a token's requests per day."""

from __future__ import annotations

from datetime import date

import asyncpg
import strawberry

from tokengate.errors import InvalidInput
from tokengate.store import usage as usage_store
from tokengate.store.usage import KEEP_DAYS


@strawberry.type(description="Requests a token made on one UTC day.")
class DailyUsage:
    day: date
    count: int


async def daily_usage(pool: asyncpg.Pool, token_id: str, days: int) -> list[DailyUsage]:
    if not 1 <= days <= KEEP_DAYS:
        raise InvalidInput(f"days must be between 1 and {KEEP_DAYS}")
    return [DailyUsage(day=row.day, count=row.requests) for row in await usage_store.daily(pool, token_id, days)]
