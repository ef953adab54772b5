"""Memory: after validating 100,000 distinct tokens, the server's RSS stays under 250 MB and its principal
cache holds no more than its configured size (TOKENGATE_CACHE_SIZE, default 10000).

`make bench-memory` (or `python bench/memory.py [--tokens 100000] [--concurrency 32]`):

1. starts `tokengate serve` on a fresh database (server on core 0, this client on core 1);
2. writes --tokens valid service tokens (with grants) straight into the tokens table by COPY — creating
   100,000 through the API would measure the mutation, not the cache; this is seeding only;
3. validates every one of them once against the server with `GET /auth/check` (authentication only);
   every answer must be 200;
4. reads VmRSS (and the peak, VmHWM) of the server process from /proc/<pid>/status, and the principal
   cache's entries and size limit from /metrics (``tokengate_principal_cache{stat="entries"}`` and
   ``{stat="max_entries"}``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from typing import Any

import aiohttp
import asyncpg
from common import (
    CLIENT_CPU,
    RESULTS,
    SERVER_CPU,
    BenchError,
    Processes,
    bootstrap,
    can_pin,
    database,
    environment,
    exit_on_sigterm,
    http,
    log,
    read_rss_kib,
    start_tokengate,
    temporary_dir,
    tokengate_env,
    write_results,
)
from loading import TokenFactory, create_accounts, load_tokens

from tokengate.config import load_config

TARGET_MB = 250.0
DEFAULT_CACHE_SIZE = 10_000
METRIC_LINE = re.compile(r"^(\w+)(\{[^}]*\})?\s+([0-9.eE+-]+)$")
CACHE_METRIC = "tokengate_principal_cache"
ENTRIES = f'{CACHE_METRIC}{{stat="entries"}}'
LIMIT = f'{CACHE_METRIC}{{stat="max_entries"}}'


async def seed_tokens(dsn: str, key: bytes, account_number: int, count: int) -> list[str]:
    """``count`` valid tokens in one new account (tagged ``m``), by COPY; returns their texts."""
    conn = await asyncpg.connect(dsn)
    try:
        await create_accounts(conn, account_number, 1, "m")
        stats = await load_tokens(
            conn,
            TokenFactory(key, seed=11),
            count=count,
            accounts=range(account_number, account_number + 1),
            tag="m",
            keep=range(count),
            progress=log,
        )
        await conn.execute("VACUUM (ANALYZE) tokens")
    finally:
        await conn.close()
    log(f"  {stats.tokens:,} tokens + {stats.grants:,} grants written in {stats.seconds:.1f}s")
    return [stats.kept[i] for i in range(count)]


async def validate_all(url: str, texts: list[str], concurrency: int, pid: int) -> dict[str, Any]:
    """Validate each token once, ``concurrency`` at a time; the first wrong answer is an error."""
    queue = iter(texts)
    done = 0
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one(text: str) -> None:
            headers = {"Authorization": f"Bearer {text}"}
            async with session.get(f"{url}/auth/check", headers=headers) as response:
                if response.status != 200:
                    raise BenchError(f"/auth/check answered {response.status}: {await response.text()}")

        async def worker() -> None:
            nonlocal done
            for text in queue:  # one shared iterator: each token exactly once
                await one(text)
                done += 1
                if done % 10_000 == 0:
                    rate = done / (time.perf_counter() - started)
                    rss = read_rss_kib(pid)["VmRSS"] / 1024
                    log(f"    {done:,}/{len(texts):,} validated ({rate:,.0f}/s), server RSS {rss:,.1f} MiB")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {"validated": done, "seconds": round(seconds, 1), "per_s": round(done / seconds)}


def cache_metrics(url: str) -> tuple[dict[str, float], list[str]]:
    """The principal cache's gauges (``tokengate_principal_cache{stat=…}``) from /metrics, and their lines."""
    status, _, raw = http("GET", f"{url}/metrics")
    if status != 200:
        raise BenchError(f"/metrics answered {status}")
    values: dict[str, float] = {}
    lines = []
    for line in raw.decode().splitlines():
        match = METRIC_LINE.match(line)
        if match and match.group(1) == CACHE_METRIC:
            lines.append(line)
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    missing = [name for name in (ENTRIES, LIMIT) if name not in values]
    if missing:
        raise BenchError(f"/metrics lacks {', '.join(missing)}")
    return values, lines


def main() -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if args.tokens < 1 or args.concurrency < 1:
        parser.error("--tokens and --concurrency must be positive")
    configured = int(os.environ.get("TOKENGATE_CACHE_SIZE", DEFAULT_CACHE_SIZE))
    env = tokengate_env()
    info = environment()
    if can_pin():
        os.sched_setaffinity(0, {CLIENT_CPU})  # the load generator stays off the server's core
    with temporary_dir("tokengate-memory-") as data_dir, Processes(RESULTS / "logs") as procs:
        server = start_tokengate(procs, "tokengate-memory", data_dir, env, cpu=SERVER_CPU)
        bootstrap(data_dir, env, "Memory bench")  # migrates, and proves the CLI door works on this database
        rss_start = read_rss_kib(server.child.pid)
        key = load_config(data_dir, env).secret_keys[0]
        log(f"seeding {args.tokens:,} service tokens by COPY (seeding only: the API is not what is measured) ...")
        with database(data_dir, env) as dsn:
            texts = asyncio.run(seed_tokens(dsn, key, 900_000, args.tokens))
        log("validating each token once through /auth/check ...")
        load = asyncio.run(validate_all(server.url, texts, args.concurrency, server.child.pid))
        rss = read_rss_kib(server.child.pid)
        values, lines = cache_metrics(server.url)
    entries, limit = values[ENTRIES], values[LIMIT]
    cache: dict[str, Any] = {"entries": entries, "max_entries": limit, "lines": lines}
    cache["holds"] = entries <= configured and limit == configured
    rss_mb = rss["VmRSS"] * 1024 / 1e6
    holds = rss_mb < TARGET_MB
    lines_md = [
        f"Memory after validating {load['validated']:,} distinct tokens through "
        f"/auth/check ({load['per_s']:,}/s, {load['seconds']}s):",
        "",
        "| measure | value | target | verdict |",
        "| --- | ---: | ---: | --- |",
        f"| server RSS (VmRSS) | {rss_mb:,.1f} MB | < {TARGET_MB:.0f} MB | {'holds' if holds else 'MISSED'} |",
        f"| server peak RSS (VmHWM) | {rss['VmHWM'] * 1024 / 1e6:,.1f} MB | | |",
        f"| server RSS before | {rss_start['VmRSS'] * 1024 / 1e6:,.1f} MB | | |",
        f"| {ENTRIES} | {entries:,.0f} | ≤ {configured:,} (configured) | "
        f"{'holds' if entries <= configured else 'MISSED'} |",
        f"| {LIMIT} | {limit:,.0f} | = {configured:,} (configured) | {'holds' if limit == configured else 'MISSED'} |",
    ]
    markdown = "\n".join(lines_md) + "\n"
    payload = {
        "environment": info,
        "tokens": args.tokens,
        "route": "/auth/check",
        "load": load,
        "rss_kib": rss,
        "rss_start_kib": rss_start,
        "rss_mb": round(rss_mb, 1),
        "target_mb": TARGET_MB,
        "holds": holds,
        "configured_cache_size": configured,
        "cache": cache,
    }
    json_path, _ = write_results("memory", payload, markdown)
    print(markdown)
    print(f"results: bench/results/{json_path.name}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as problem:
        log(f"memory: error: {problem}")
        sys.exit(1)
