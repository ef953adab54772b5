"""Usage insight: requests per token and UTC day, the last client addresses of a token, a grant's last use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from tokengate.store import Executor

MAX_ADDRESSES = 5
KEEP_DAYS = 90

# Everything collected since the last flush, in one statement: the day's request counts (added), each token's
# addresses put in front of the ones it had (newest first, distinct, at most 5; computed on the row as locked,
# so concurrent flushes from several instances keep each other's), and the grants' last allowed decision.
FLUSH = f"""
WITH used AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS u (id text, requests bigint, addresses text[])
), counted AS (
    INSERT INTO token_usage_daily AS d (token_id, day, requests)
    SELECT u.id, (now() AT TIME ZONE 'UTC')::date, u.requests
    FROM used u JOIN tokens t ON t.id = u.id  -- an id without a row would fail the whole batch, every time
    WHERE u.requests > 0
    ON CONFLICT (token_id, day) DO UPDATE SET requests = d.requests + EXCLUDED.requests
), granted AS (
    UPDATE grants AS g SET last_used_at = greatest(g.last_used_at, x.used_at)
    FROM unnest($2::bigint[], $3::timestamptz[]) AS x (id, used_at)
    WHERE g.id = x.id AND g.last_used_at IS DISTINCT FROM greatest(g.last_used_at, x.used_at)
)
UPDATE tokens AS t SET last_used_from = ARRAY(
    SELECT a.address FROM unnest(u.addresses || t.last_used_from) WITH ORDINALITY AS a (address, n)
    GROUP BY a.address ORDER BY min(a.n) LIMIT {MAX_ADDRESSES})
FROM used AS u
WHERE t.id = u.id AND cardinality(u.addresses) > 0
"""
# One row per token and day of the window (0 for days without requests), oldest first: a page of tokens in one
# statement.
DAILY_OF_TOKENS = """
SELECT t.token_id, s.day::date AS day, coalesce(d.requests, 0) AS requests
FROM unnest($1::text[]) AS t (token_id)
CROSS JOIN generate_series((now() AT TIME ZONE 'UTC')::date - ($2 - 1), (now() AT TIME ZONE 'UTC')::date,
                           interval '1 day') AS s (day)
LEFT JOIN token_usage_daily d ON d.token_id = t.token_id AND d.day = s.day::date
ORDER BY t.token_id, s.day
"""
GRANTS_LAST_USED = "SELECT id, last_used_at FROM grants WHERE id = ANY($1::bigint[]) AND last_used_at IS NOT NULL"
PRUNE = "DELETE FROM token_usage_daily WHERE day < (now() AT TIME ZONE 'UTC')::date - $1::int"


@dataclass(frozen=True, slots=True)
class TokenUse:
    """A token's requests since the last flush, and its distinct client addresses, newest first."""

    token_id: str
    requests: int
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    requests: int


async def flush(db: Executor, uses: list[TokenUse], grants_used: dict[int, datetime]) -> None:
    document = json.dumps(
        [{"id": use.token_id, "requests": use.requests, "addresses": list(use.addresses)} for use in uses]
    )
    grant_ids = sorted(grants_used)  # a stable order keeps concurrent flushes from deadlocking on the same rows
    await db.execute(FLUSH, document, grant_ids, [grants_used[grant_id] for grant_id in grant_ids])


async def daily_of_tokens(db: Executor, token_ids: list[str], days: int) -> dict[str, list[DayCount]]:
    """Each token's requests per UTC day for the last ``days`` days, oldest first."""
    found: dict[str, list[DayCount]] = {token_id: [] for token_id in token_ids}  # each token once
    for row in await db.fetch(DAILY_OF_TOKENS, list(found), days):
        found[row["token_id"]].append(DayCount(row["day"], row["requests"]))
    return found


async def grants_last_used(db: Executor, grant_ids: list[int]) -> dict[int, datetime]:
    return {row["id"]: row["last_used_at"] for row in await db.fetch(GRANTS_LAST_USED, grant_ids)}


async def prune(db: Executor, keep_days: int = KEEP_DAYS) -> None:
    await db.execute(PRUNE, keep_days)
