"""Scale: does a cold validation (principal-cache miss) cost the same with 1,000,000 tokens as with 1,000?

`make bench-scale` (or `python bench/scale.py [--sizes 1000,1000000] [--samples 900]`):

1. loads 1,000 valid v2 service tokens (with grants: one project grant each, an account-wide second one
   for about a third; 100 tokens and 5 projects per account) by COPY, printing the insert rate;
2. validates --samples random tokens never validated before, one at a time, through
   ``tokengate.auth.credentials.Authenticator(pool, keys).authenticate(text)`` against the database — the cold path:
   a token validated once cannot be in any cache keyed by token id — after a short warm-up on other tokens;
3. loads up to 1,000,000 and validates --samples other never-seen tokens the same way;
4. prints the cost at each size and the ratio (target: at most 1.3x, on the median).

On a fresh embedded PostgreSQL in a temporary directory by default; with TOKENGATE_DATABASE_URL it uses
that database and deletes its rows afterwards. The large load takes a minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from common import (
    BenchError,
    database,
    embedded,
    environment,
    exit_on_sigterm,
    log,
    percentile,
    temporary_dir,
    tokengate_env,
    write_results,
)
from loading import TOKENS_PER_ACCOUNT, LoadStats, TokenFactory, create_accounts, load_tokens

from tokengate.auth.credentials import Authenticator
from tokengate.config import load_config
from tokengate.store.migrations import migrate

TARGET = 1.3
WARMUP = 100
WARMUP_ROUNDS = 5


def authenticator(pool: asyncpg.Pool, keys: tuple[bytes, ...]) -> Authenticator:
    """Today's constructor; if a cache argument appears, say so instead of guessing how to disable it."""
    parameters = list(inspect.signature(Authenticator).parameters)
    if parameters[:2] != ["pool", "keys"]:
        raise BenchError(f"Authenticator({', '.join(parameters)}) changed: update bench/scale.py accordingly")
    return Authenticator(pool, keys)


async def cold_costs(pool: asyncpg.Pool, keys: tuple[bytes, ...], texts: list[str]) -> list[float]:
    """Seconds per authenticate() of each token, sequentially; every token must authenticate."""
    auth = authenticator(pool, keys)
    costs = []
    for text in texts:
        started = time.perf_counter()
        principal = await auth.authenticate(text)
        costs.append(time.perf_counter() - started)
        if principal.token_id != text[4:20]:
            raise BenchError("authenticated the wrong token")
    return costs


def summary(costs: list[float]) -> dict[str, float]:
    ms = [c * 1000 for c in costs]
    return {
        "n": len(ms),
        "mean_ms": round(statistics.fmean(ms), 4),
        "p50_ms": round(statistics.median(ms), 4),
        "p99_ms": round(percentile(ms, 0.99), 4),
    }


async def run(
    dsn: str, keys: tuple[bytes, ...], sizes: list[int], samples: int, tag: str, external: bool
) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    assert pool is not None
    factory = TokenFactory(keys[0], seed=5)
    rng = random.Random(7)
    stages: list[dict[str, Any]] = []
    accounts_made = 0
    try:
        await migrate(conn)
        loaded = 0
        for size in sizes:
            delta = size - loaded
            accounts_needed = -(-size // TOKENS_PER_ACCOUNT)
            await create_accounts(conn, accounts_made, accounts_needed - accounts_made, tag)
            # New accounts get the new tokens: every account ends up with about TOKENS_PER_ACCOUNT.
            new_accounts = range(accounts_made, accounts_needed)
            accounts_made = accounts_needed
            wanted = min(delta, WARMUP + samples)
            keep = set(rng.sample(range(delta), wanted))
            log(f"loading {delta:,} tokens (table: {loaded:,} -> {size:,}) ...")
            stats: LoadStats = await load_tokens(
                conn, factory, count=delta, accounts=new_accounts, tag=tag, keep=keep, progress=log
            )
            loaded = size
            log(
                f"  {stats.tokens:,} tokens + {stats.grants:,} grants in {stats.seconds:.1f}s: "
                f"{stats.tokens_per_s:,.0f} tokens/s ({(stats.tokens + stats.grants) / stats.seconds:,.0f} rows/s, "
                f"COPY alone {stats.copy_seconds:.1f}s)"
            )
            # Settle the table as a live one would be, and keep autovacuum from waking up mid-measurement.
            for table in ("tokens", "grants", "projects", "accounts"):
                await conn.execute(f"VACUUM (ANALYZE) {table}")
            try:  # the bulk load's dirty pages written now, not during the measurement
                await conn.execute("CHECKPOINT")
            except asyncpg.InsufficientPrivilegeError:
                log("  (no CHECKPOINT: the database user may not; the load's writes may overlap the measurement)")
            texts = list(stats.kept.values())
            rng.shuffle(texts)
            warm, measured = texts[:WARMUP], texts[WARMUP:]
            if len(measured) < 10:
                raise BenchError(f"stage {size:,} leaves only {len(measured)} unseen tokens: lower --samples")
            for _ in range(WARMUP_ROUNDS):  # connection, prepared statement, plan and CPU caches
                await cold_costs(pool, keys, warm)
            cost = summary(await cold_costs(pool, keys, measured))
            log(
                f"  cold validation at {size:,}: median {cost['p50_ms']:.3f} ms, mean {cost['mean_ms']:.3f} ms, "
                f"p99 {cost['p99_ms']:.3f} ms over {cost['n']} never-seen tokens"
            )
            table_bytes = await conn.fetchval("SELECT pg_total_relation_size('tokens')")
            stages.append(
                {
                    "size": size,
                    "loaded": stats.tokens,
                    "grants": stats.grants,
                    "load_seconds": round(stats.seconds, 2),
                    "tokens_per_s": round(stats.tokens_per_s),
                    "copy_seconds": round(stats.copy_seconds, 2),
                    "tokens_table_mb": round(table_bytes / 1e6, 1),
                    **cost,
                }
            )
    finally:
        await pool.close()
        if external:
            await cleanup(conn, tag)
        await conn.close()
    return {"stages": stages}


async def cleanup(conn: asyncpg.Connection, tag: str) -> None:
    """External database: remove what this run loaded (its accounts are tagged)."""
    pattern = f"acc_{tag}%"
    log("removing the loaded rows from the external database ...")
    for statement in (
        "DELETE FROM grants WHERE account_id LIKE $1",
        "DELETE FROM tokens WHERE account_id LIKE $1",
        "DELETE FROM projects WHERE account_id LIKE $1",
        "DELETE FROM accounts WHERE id LIKE $1",
    ):
        await conn.execute(statement, pattern)


def main() -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,1000000", help="table sizes, ascending (default 1000,1000000)")
    parser.add_argument("--samples", type=int, default=900, help="never-seen tokens validated per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes != sorted(sizes) or sizes[0] < WARMUP + 10 or len(sizes) < 2:
        parser.error(f"--sizes needs at least two ascending sizes, the first at least {WARMUP + 10}")
    env = tokengate_env()
    tag = "s" + datetime.now(UTC).strftime("%H%M%S")
    with temporary_dir("tokengate-scale-") as data_dir, database(data_dir, env) as dsn:
        config = load_config(data_dir, env)
        result = asyncio.run(run(dsn, config.secret_keys, sizes, args.samples, tag, external=not embedded(env)))
    stages = result["stages"]
    small, large = stages[0], stages[-1]
    ratio = large["p50_ms"] / small["p50_ms"]
    mean_ratio = large["mean_ms"] / small["mean_ms"]
    verdict = "holds" if ratio <= TARGET else "MISSED"
    lines = [
        "| tokens in table | insert rate (tokens/s) | cold validation median ms | mean ms | p99 ms | samples |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for stage in stages:
        lines.append(
            f"| {stage['size']:,} | {stage['tokens_per_s']:,} | {stage['p50_ms']:.3f} | {stage['mean_ms']:.3f} "
            f"| {stage['p99_ms']:.3f} | {stage['n']} |"
        )
    lines += [
        "",
        f"Cold validation at {large['size']:,} vs {small['size']:,}: **{ratio:.2f}x** on the median "
        f"({mean_ratio:.2f}x on the mean); target ≤ {TARGET}x: {verdict}. Measured through "
        "`Authenticator(pool, keys).authenticate(text)` on never-seen tokens (the database lookup of a cache miss).",
    ]
    markdown = "\n".join(lines) + "\n"
    env_info = environment()
    payload = {"environment": env_info, "stages": stages, "ratio_median": ratio, "ratio_mean": mean_ratio}
    payload.update({"target": TARGET, "verdict": verdict})
    json_path, _ = write_results("scale", payload, markdown)
    print()
    print(markdown)
    print(f"results: {Path(json_path).name} in bench/results/")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as problem:
        log(f"scale: error: {problem}")
        sys.exit(1)
