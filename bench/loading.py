"""Bulk loading for the scale and memory benchmarks: valid v2 service tokens written with COPY.

Rows are generated in Python in batches (memory stays flat) with ids, checksums, keyed BLAKE2b hashes and
key ids exactly as tokengate makes them, so every generated token authenticates as a current one. Only the
texts the caller asks to keep (a sample) are held in memory. Randomness comes from a seeded PRNG: these are
benchmark fixtures, not secrets.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field

import asyncpg

from tokengate.core.tokens import (
    BASE62,
    ID_LENGTH,
    SECRET_LENGTH,
    SERVICE_PREFIX,
    checksum,
    hash_token,
    key_id,
)

# key_id as tokengate.store.tokens.insert_v2 writes it: without one, each token's first validation
# would also re-hash it and record the id (the path of tokens hashed before migration 004), which is not
# what a cold validation of a current token costs.
TOKEN_COLUMNS = ("id", "account_id", "kind", "format", "hash", "key_id", "name", "created_by")
GRANT_COLUMNS = ("account_id", "token_id", "permission_set", "all_projects", "project_ids", "position")
PROJECTS_PER_ACCOUNT = 5
TOKENS_PER_ACCOUNT = 100
PROJECT_SETS = ("JOB_ADMIN", "DEVELOPER", "ANALYST", "JOB_VIEWER", "JOB_RUNNER")
ACCOUNT_SETS = ("ACCOUNT_VIEWER", "ACCOUNT_ADMIN")
_BYTE_TO_BASE62 = bytes(ord(BASE62[b % 62]) for b in range(256))


@dataclass
class LoadStats:
    tokens: int = 0
    grants: int = 0
    seconds: float = 0.0  # generation + COPY, wall clock
    copy_seconds: float = 0.0
    kept: dict[int, str] = field(default_factory=dict)  # index -> token text, for the sample asked for

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


class TokenFactory:
    def __init__(self, key: bytes, seed: int):
        self.key = key
        self.key_id = key_id(key)
        self.rng = random.Random(seed)  # fixtures, not secrets

    def base62(self, length: int) -> str:
        # A byte-to-digit table: fast, and the slight modulo bias does not matter for fixtures.
        return self.rng.randbytes(length).translate(_BYTE_TO_BASE62).decode("ascii")

    def token(self) -> tuple[str, str]:
        """(id, text) of a valid v2 service token."""
        token_id = self.base62(ID_LENGTH)
        body = SERVICE_PREFIX + token_id + self.base62(SECRET_LENGTH)
        return token_id, body + checksum(body)


def account_id(number: int, tag: str) -> str:
    return f"acc_{tag}{number:0{max(1, 16 - len(tag))}d}"


def project_id(account_number: int, index: int, tag: str) -> str:
    return f"prj_{tag}{account_number:0{max(1, 14 - len(tag))}d}{index:02d}"


async def create_accounts(conn: asyncpg.Connection, first: int, count: int, tag: str, plan: str = "ENTERPRISE") -> None:
    """Accounts ``first .. first+count-1`` with PROJECTS_PER_ACCOUNT projects each, by COPY."""
    numbers = range(first, first + count)
    await conn.copy_records_to_table(
        "accounts",
        records=[(account_id(n, tag), f"scale {tag} {n}", plan) for n in numbers],
        columns=("id", "name", "plan"),
    )
    await conn.copy_records_to_table(
        "projects",
        records=[
            (project_id(n, i, tag), account_id(n, tag), f"project {i}")
            for n in numbers
            for i in range(PROJECTS_PER_ACCOUNT)
        ],
        columns=("id", "account_id", "name"),
    )


def grants_for(factory: TokenFactory, token_id: str, account_number: int, tag: str) -> Iterator[tuple]:
    """One project grant per token, and an account-wide second grant for about a third of them."""
    rng = factory.rng
    projects = rng.sample(range(PROJECTS_PER_ACCOUNT), rng.randint(1, 3))
    yield (
        account_id(account_number, tag),
        token_id,
        rng.choice(PROJECT_SETS),
        False,
        [project_id(account_number, p, tag) for p in projects],
        0,
    )
    if rng.random() < 0.33:
        yield (account_id(account_number, tag), token_id, rng.choice(ACCOUNT_SETS), True, [], 1)


def make_batch(
    factory: TokenFactory, first: int, size: int, accounts: range, tag: str, keep: Container[int]
) -> tuple[list[tuple], list[tuple], dict[int, str]]:
    token_rows: list[tuple] = []
    grant_rows: list[tuple] = []
    kept: dict[int, str] = {}
    for index in range(first, first + size):
        number = accounts[index % len(accounts)]
        token_id, text = factory.token()
        if index in keep:
            kept[index] = text
        token_rows.append(
            (
                token_id,
                account_id(number, tag),
                "service",
                "v2",
                hash_token(text, factory.key),
                factory.key_id,
                f"bulk {index}",
                "bench",
            )
        )
        grant_rows.extend(grants_for(factory, token_id, number, tag))
    return token_rows, grant_rows, kept


async def load_tokens(
    conn: asyncpg.Connection,
    factory: TokenFactory,
    *,
    count: int,
    accounts: range,
    tag: str,
    keep: Container[int] = frozenset(),
    batch: int = 50_000,
    progress: Callable[[str], None] | None = None,
) -> LoadStats:
    """COPY ``count`` tokens (and their grants) spread evenly over ``accounts`` (account numbers).

    The next batch is generated in a thread while PostgreSQL takes the current one.
    """
    stats = LoadStats()
    started = time.perf_counter()

    def generate(first: int) -> asyncio.Future[tuple[list[tuple], list[tuple], dict[int, str]]]:
        size = min(batch, count - first)
        return asyncio.ensure_future(asyncio.to_thread(make_batch, factory, first, size, accounts, tag, keep))

    pending = generate(0) if count else None
    done = 0
    while pending is not None:
        token_rows, grant_rows, kept = await pending
        done += len(token_rows)
        pending = generate(done) if done < count else None
        copy_started = time.perf_counter()
        await conn.copy_records_to_table("tokens", records=token_rows, columns=TOKEN_COLUMNS)
        await conn.copy_records_to_table("grants", records=grant_rows, columns=GRANT_COLUMNS)
        stats.copy_seconds += time.perf_counter() - copy_started
        stats.tokens += len(token_rows)
        stats.grants += len(grant_rows)
        stats.kept.update(kept)
        stats.seconds = time.perf_counter() - started
        if progress and count >= 5 * batch and (done // batch) % 4 == 0:
            progress(f"    {done:,}/{count:,} tokens ({stats.tokens_per_s:,.0f}/s)")
    stats.seconds = time.perf_counter() - started
    return stats
