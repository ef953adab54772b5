"""Memory: after validating 100,000 distinct tokens, the server's RSS stays under 250 MB and its principal
cache holds no more than its configured size (TOKENGATE_CACHE_SIZE, default 10000).

`make bench-memory` (or `python bench/memory.py [--tokens 100000] [--concurrency 32]`):

1. starts `tokengate serve` on a fresh database (server on core 0, this client on core 1);
2. writes --tokens valid service tokens (with grants) straight into the tokens table by COPY — creating
   100,000 through the API would measure the mutation, not the cache; this is seeding only;
3. validates every one of them once against the server: `GET /auth/check` (authentication only) when
   the build has that route, else `POST /graphql { viewer { kind } }`; every answer must be 200;
4. reads VmRSS (and the peak, VmHWM) of the server process from /proc/<pid>/status, and the cache size
   from /metrics when the server exposes one (a metric named like ``tokengate_principal_cache_entries``;
   any ``*cache*`` metric is shown), else reports that part "unavailable".
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
    Unavailable,
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
SIZE_WORDS = re.compile(r"entries|size|items")
NOT_OCCUPANCY = re.compile(r"max|capacity|limit|configured|bytes")  # the bound, not what is held


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


async def validate_all(url: str, route: str, texts: list[str], concurrency: int, pid: int) -> dict[str, Any]:
    """Validate each token once, ``concurrency`` at a time; the first wrong answer is an error."""
    queue = iter(texts)
    done = 0
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one(text: str) -> None:
            headers = {"Authorization": f"Bearer {text}"}
            if route == "auth-check":
                async with session.get(f"{url}/auth/check", headers=headers) as response:
                    if response.status != 200:
                        raise BenchError(f"/auth/check answered {response.status}: {await response.text()}")
                return
            payload = {"query": "{ viewer { kind } }"}
            async with session.post(f"{url}/graphql", json=payload, headers=headers) as response:
                body = await response.json(content_type=None)
                if response.status != 200 or body.get("errors") or body["data"]["viewer"]["kind"] != "SERVICE_TOKEN":
                    raise BenchError(f"/graphql answered {response.status}: {body}")

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
    """(size-like cache metrics, every cache metric line) from /metrics; Unavailable without them."""
    status, _, raw = http("GET", f"{url}/metrics")
    if status == 404:
        raise Unavailable("the server has no /metrics route")
    if status != 200:
        raise BenchError(f"/metrics answered {status}")
    lines = [line for line in raw.decode().splitlines() if "cache" in line and not line.startswith("#")]
    sizes = {}
    for line in lines:
        match = METRIC_LINE.match(line)
        if not match:
            continue
        name, labels = match.group(1), match.group(2) or ""
        described = name + labels
        is_cache = name.startswith("tokengate_") and "cache" in name
        if is_cache and SIZE_WORDS.search(described) and not NOT_OCCUPANCY.search(described):
            sizes[described] = float(match.group(3))
    if not sizes:
        raise Unavailable("/metrics exposes no principal-cache size (e.g. tokengate_principal_cache_entries)")
    return sizes, lines


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
        status, _, _ = http("GET", f"{server.url}/auth/check", headers={"Authorization": f"Bearer {texts[0]}"})
        route = "graphql" if status == 404 else "auth-check"
        log(f"validating each token once through {'/auth/check' if route == 'auth-check' else '/graphql'} ...")
        load = asyncio.run(validate_all(server.url, route, texts, args.concurrency, server.child.pid))
        rss = read_rss_kib(server.child.pid)
        try:
            sizes, lines = cache_metrics(server.url)
            cache: dict[str, Any] = {"status": "measured", "sizes": sizes, "lines": lines}
            cache["holds"] = all(value <= configured for value in sizes.values())
        except Unavailable as why:
            cache = {"status": "unavailable", "reason": str(why)}
    rss_mb = rss["VmRSS"] * 1024 / 1e6
    holds = rss_mb < TARGET_MB
    lines_md = [
        f"Memory after validating {load['validated']:,} distinct tokens through "
        f"{'/auth/check' if route == 'auth-check' else '/graphql'} ({load['per_s']:,}/s, {load['seconds']}s):",
        "",
        "| measure | value | target | verdict |",
        "| --- | ---: | ---: | --- |",
        f"| server RSS (VmRSS) | {rss_mb:,.1f} MB | < {TARGET_MB:.0f} MB | {'holds' if holds else 'MISSED'} |",
        f"| server peak RSS (VmHWM) | {rss['VmHWM'] * 1024 / 1e6:,.1f} MB | | |",
        f"| server RSS before | {rss_start['VmRSS'] * 1024 / 1e6:,.1f} MB | | |",
    ]
    if cache["status"] == "measured":
        for name, value in cache["sizes"].items():
            verdict = "holds" if value <= configured else "MISSED"
            lines_md.append(f"| {name} | {value:,.0f} | ≤ {configured:,} (configured) | {verdict} |")
    else:
        lines_md.append(f"| principal cache size | unavailable: {cache['reason']} | ≤ {configured:,} | — |")
    markdown = "\n".join(lines_md) + "\n"
    payload = {
        "environment": info,
        "tokens": args.tokens,
        "route": route,
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
