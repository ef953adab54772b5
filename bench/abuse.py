"""`make bench-abuse`: the attacks of issues 13 and 20, one phase each, against a steady legitimate client.

tokengate runs with its default limits, pinned to core 0 (its embedded PostgreSQL with it). Every client is a
separate process pinned to core 1: the legitimate client from 127.0.0.1, sending a steady mix (open loop, so
a slow answer does not slow its schedule) of forward-auth checks with a v2 token, GraphQL `viewer` + `check`
with that token, and forward-auth checks with a legacy token (a legacy user); the attackers from 127.0.0.2, at
a lower CPU priority (the server is measured, not their share of core 1). Per phase the script prints the
legitimate client's p50, p99 and errors (any answer but 200, or none within 5 s) and what the attackers got;
a phase holds when the legitimate client sees no error and a p99 within 5x its quiet p99 and at most 50 ms.

Phases (two attacker connections unless said):

  quiet             no attack: the reference p99
  megabyte          POST /graphql with a ~1 MB query, no credentials
  introspection     50 aliases of __schema { types { fields ... } }, no credentials
  typename          __typename x 4,900 behind a random comment (defeats every cache), no credentials
  checks            checks(requests: $r) of 1,000 requests x 50 aliases, with a JOB_VIEWER token
  unknown-ids       well-formed v2 tokens (valid checksum) with unknown ids, as fast as answered
  legacy-hints      40-hex tokens whose first 8 characters match the stored legacy hint, 20/s
  leak-reports      reportLeakedToken x 50 aliases of hint-matching legacy tokens, no credentials
  slow-connections  60 connections: 20 silent, 20 trickling headers, 20 trickling a 1 MB body (10 of them
                    with the attacker's token, so that only the body timeout can stop them) (30 s)
  float-pages       50 aliases of serviceTokenConnection(first: $n) { ... usage(days: $d) } with $n = 100.0 and
                    $d = 90.0 (floats graphql-core runs as Ints), with an ACCOUNT_VIEWER token; the account holds
                    100 service tokens, so each request would answer 5,000 tokens and 450,000 days of usage
  scanning-flood    POST /secret-scanning/github with ~480 KB reports signed by a key that is not GitHub's
                    (each would be hashed and ECDSA-checked), naming a configured key id

Options: --duration (15 s a phase), --slow-duration (30 s), --rate (legitimate requests/s, 100), --only
a,b (phase names; quiet always runs first). Results: bench/results/abuse-<stamp>.{json,md}.
tests/api/test_bench_abuse.py runs the client and one attack in-process for a second, so this script keeps to
the API.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

LEGIT_ADDRESS = "127.0.0.1"
ATTACKER_ADDRESS = "127.0.0.2"
TIMEOUT_SECONDS = 5.0
MAX_P99_MS = 50.0
P99_FACTOR = 5.0
CHECK = "/auth/check?resource=JOBS&access=READ&projectId={project}"
LEGIT_QUERY = 'query { viewer { kind } check(resource: JOBS, access: WRITE, projectId: "%s") { allowed } }'
ALIASED_CHECKS = " ".join(f"a{i}: checks(requests: $r) {{ allowed reason }}" for i in range(50))
CHECKS = "query($r: [CheckInput!]!) { " + ALIASED_CHECKS + " }"
SCHEMA = "__schema { types { name fields { name args { name } type { name } } } }"
SCHEMA_ALIASES = "{ " + " ".join(f"s{i}: {SCHEMA}" for i in range(50)) + " }"
PAGE_ALIASES = " ".join(
    f"p{i}: serviceTokenConnection(first: $n) {{ edges {{ node {{ id name usage(days: $d) {{ day count }} }} }} }}"
    for i in range(50)
)
FLOAT_PAGES = "query($n: Int, $d: Int!) { account { " + PAGE_ALIASES + " } }"
FLOAT_PAGE_TOKENS = 100  # service tokens in the account: a page of 100 is full
SCANNING_ROUTE = "/secret-scanning/github"
SCANNING_KEY_ID = "bench-github-key"  # the id of the key tokengate is configured with (GitHub publishes its ids)
SCANNING_BODY_BYTES = 480_000
SLOW_BODY_HEAD = (
    b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
)
PHASES = (
    "quiet",
    "megabyte",
    "introspection",
    "typename",
    "checks",
    "unknown-ids",
    "legacy-hints",
    "leak-reports",
    "slow-connections",
    "float-pages",
    "scanning-flood",
)
DESCRIPTIONS = {
    "quiet": "no attack",
    "megabyte": "POST /graphql, ~1 MB query, no credentials",
    "introspection": "50 aliases of __schema { types { fields … } }, no credentials",
    "typename": "__typename x 4,900 + random comment, no credentials",
    "checks": "checks of 1,000 requests x 50 aliases, JOB_VIEWER token",
    "unknown-ids": "v2 tokens with valid checksums, unknown ids",
    "legacy-hints": "40-hex tokens matching a stored hint, 20/s",
    "leak-reports": "reportLeakedToken x 50 aliases, hint-matching, no credentials",
    "slow-connections": "60 slow connections: silent, trickled headers, trickled 1 MB body",
    "float-pages": "serviceTokenConnection(first: 100.0) { … usage(days: 90.0) } x 50 aliases, ACCOUNT_VIEWER token",
    "scanning-flood": "POST /secret-scanning/github, ~480 KB reports with a forged signature",
}


@dataclass
class Secrets:
    """What the clients use: written to a 0600 file for the client processes, never printed."""

    url: str
    project_id: str
    v2_token: str
    legacy_token: str
    viewer_token: str
    reader_token: str  # ACCOUNT_VIEWER: reads the account's service tokens


@dataclass
class LegitReport:
    sent: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_kinds: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def at(fraction: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, max(0, int(fraction * len(ordered) + 0.5) - 1))], 2)

        return {
            "sent": self.sent,
            "answered": len(ordered),
            "errors": self.errors,
            "error_kinds": dict(self.error_kinds),
            "p50_ms": at(0.50),
            "p99_ms": at(0.99),
            "max_ms": round(ordered[-1], 2) if ordered else None,
        }


@dataclass
class AttackReport:
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self, duration: float) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "sent": self.sent,
            "per_second": round(self.sent / duration, 1) if duration else None,
            "statuses": dict(self.statuses.most_common()),
            "p50_ms": round(ordered[len(ordered) // 2], 2) if ordered else None,
            "notes": self.notes,
        }


# --------------------------------------------------------------------------- tokens


BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def well_formed_unknown_token() -> str:
    """A v2 service token whose checksum holds and whose id was never issued."""
    import zlib

    body = "tgs_" + "".join(random.choices(BASE62, k=48))
    number = zlib.crc32(body.encode("ascii"))
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    return body + digits.rjust(6, "0")


def hint_matching(legacy_token: str) -> str:
    return legacy_token[:8] + "".join(random.choices("0123456789abcdef", k=32))


def forged_scanning_report() -> tuple[bytes, dict[str, str]]:
    """A ~480 KB report (well-formed tokens' shapes, no real token) signed by the attacker's own P-256 key under
    the configured key id: a valid signature encoding that does not verify, so without a limit the server hashes
    the whole body and runs ECDSA every time."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    item = '{"token":"%s","type":"tokengate_service_token","url":"https://github.com/x/y/blob/1/a","source":"content"}'
    items: list[str] = []
    size = 2
    while size < SCANNING_BODY_BYTES:
        items.append(item % well_formed_unknown_token())
        size += len(items[-1]) + 1
    body = ("[" + ",".join(items) + "]").encode()
    signature = ec.generate_private_key(ec.SECP256R1()).sign(body, ec.ECDSA(hashes.SHA256()))
    return body, {
        "Content-Type": "application/json",
        "Github-Public-Key-Identifier": SCANNING_KEY_ID,
        "Github-Public-Key-Signature": base64.b64encode(signature).decode(),
    }


def scanning_keys_file(directory: Path) -> Path:
    """A ``public_keys`` document as GitHub publishes it, holding a key nobody in the run signs with."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    path = directory / "github-public-keys.json"
    path.write_text(json.dumps({"public_keys": [{"key_identifier": SCANNING_KEY_ID, "key": pem, "is_current": True}]}))
    return path


# --------------------------------------------------------------------------- clients


def session(address: str, connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=connections, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS))


async def legit(secrets: Secrets, duration: float, rate: float, address: str = LEGIT_ADDRESS) -> LegitReport:
    """The steady client: one request every 1/rate seconds whatever the answers, round robin over three kinds."""
    report = LegitReport()
    check_url = secrets.url + CHECK.format(project=secrets.project_id)
    query = json.dumps({"query": LEGIT_QUERY % secrets.project_id})

    async with session(address, 16) as client:

        async def one(kind: int) -> None:
            started = time.perf_counter()
            try:
                if kind == 1:
                    headers = {"Authorization": f"Bearer {secrets.v2_token}", "Content-Type": "application/json"}
                    async with client.post(secrets.url + "/graphql", data=query, headers=headers) as response:
                        body = await response.read()
                        ok = response.status == 200 and b'"allowed":true' in body
                        status = response.status
                else:
                    token = secrets.v2_token if kind == 0 else secrets.legacy_token
                    async with client.get(check_url, headers={"Authorization": f"Bearer {token}"}) as response:
                        await response.read()
                        ok, status = response.status == 200, response.status
            except (aiohttp.ClientError, TimeoutError) as problem:
                report.errors += 1
                report.error_kinds[type(problem).__name__] += 1
                return
            if not ok:
                report.errors += 1
                report.error_kinds[f"HTTP {status}"] += 1
                return
            report.latencies_ms.append((time.perf_counter() - started) * 1000)

        tasks = []
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < duration:
            tasks.append(asyncio.ensure_future(one(report.sent % 3)))
            report.sent += 1
            await asyncio.sleep(max(0.0, report.sent / rate - elapsed))
        await asyncio.gather(*tasks)
    return report


async def timed_request(report: AttackReport, send: Callable[[], Any]) -> None:
    started = time.perf_counter()
    report.sent += 1
    try:
        async with send() as response:
            body = await response.read()
            refused = response.status == 200 and b'"code":"BAD_USER_INPUT"' in body  # over the cost budget
            report.statuses[f"{response.status} BAD_USER_INPUT" if refused else str(response.status)] += 1
    except (aiohttp.ClientError, TimeoutError) as problem:
        report.statuses[type(problem).__name__] += 1
        await asyncio.sleep(0.01)  # a refused connection must not spin
    report.latencies_ms.append((time.perf_counter() - started) * 1000)


async def flood(
    secrets: Secrets,
    duration: float,
    request: Callable[[aiohttp.ClientSession], Any],
    connections: int = 2,
    per_second: float | None = None,
    address: str = ATTACKER_ADDRESS,
) -> AttackReport:
    """``connections`` loops sending ``request`` back to back (or ``per_second`` in all) for ``duration``."""
    report = AttackReport()
    deadline = time.perf_counter() + duration
    async with session(address, connections) as client:

        async def loop(index: int) -> None:
            sent = 0
            begun = time.perf_counter()
            while time.perf_counter() < deadline:
                await timed_request(report, lambda: request(client))
                sent += 1
                if per_second:
                    wait = begun + sent * connections / per_second - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)

        await asyncio.gather(*(loop(i) for i in range(connections)))
    return report


def post(client: aiohttp.ClientSession, secrets: Secrets, body: str | bytes, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(secrets.url + "/graphql", data=body, headers=headers)


async def attack(name: str, secrets: Secrets, duration: float, address: str = ATTACKER_ADDRESS) -> AttackReport:
    """One phase's attack for ``duration`` seconds."""
    if name == "quiet":
        await asyncio.sleep(duration)
        return AttackReport()
    if name == "megabyte":
        megabyte = json.dumps({"query": "{ " + "__typename " * 95_000 + "}"})
        return await flood(secrets, duration, lambda c: post(c, secrets, megabyte), address=address)
    if name == "introspection":
        body = json.dumps({"query": SCHEMA_ALIASES})
        return await flood(secrets, duration, lambda c: post(c, secrets, body), address=address)
    if name == "typename":

        def typename(c: aiohttp.ClientSession) -> Any:
            text = f"# {random.random()}\n{{ " + "__typename " * 4900 + "}"
            return post(c, secrets, json.dumps({"query": text}))

        return await flood(secrets, duration, typename, address=address)
    if name == "checks":
        requests = [{"resource": "JOBS", "access": "READ", "projectId": secrets.project_id}] * 1000
        body = json.dumps({"query": CHECKS, "variables": {"r": requests}})
        return await flood(secrets, duration, lambda c: post(c, secrets, body, secrets.viewer_token), address=address)
    if name == "unknown-ids":
        url = secrets.url + "/auth/check"
        return await flood(
            secrets,
            duration,
            lambda c: c.get(url, headers={"Authorization": f"Bearer {well_formed_unknown_token()}"}),
            address=address,
        )
    if name == "legacy-hints":
        url = secrets.url + "/auth/check"
        return await flood(
            secrets,
            duration,
            lambda c: c.get(url, headers={"Authorization": f"Bearer {hint_matching(secrets.legacy_token)}"}),
            per_second=20,
            address=address,
        )
    if name == "leak-reports":

        def reports(c: aiohttp.ClientSession) -> Any:
            fields = " ".join(
                f'r{i}: reportLeakedToken(token: "{hint_matching(secrets.legacy_token)}")' for i in range(50)
            )
            return post(c, secrets, json.dumps({"query": "mutation { " + fields + " }"}))

        return await flood(secrets, duration, reports, address=address)
    if name == "slow-connections":
        return await slow_connections(secrets, duration, address)
    if name == "float-pages":
        body = json.dumps({"query": FLOAT_PAGES, "variables": {"n": 100.0, "d": 90.0}})
        return await flood(secrets, duration, lambda c: post(c, secrets, body, secrets.reader_token), address=address)
    if name == "scanning-flood":
        report_body, headers = forged_scanning_report()
        url = secrets.url + SCANNING_ROUTE
        return await flood(secrets, duration, lambda c: c.post(url, data=report_body, headers=headers), address=address)
    raise SystemExit(f"unknown phase {name!r}: one of {', '.join(PHASES)}")


async def slow_connections(secrets: Secrets, duration: float, address: str, each: int = 20) -> AttackReport:
    """``each`` silent connections, ``each`` trickling headers and ``each`` trickling a 1 MB body (half of them
    with the attacker's token, so the body is not refused by its size alone), reopened when the server closes
    them; reports how long the server kept them and what it answered."""
    report = AttackReport()
    host, port = secrets.url.removeprefix("http://").split(":")
    deadline = time.perf_counter() + duration
    lifetimes: dict[str, list[float]] = {"silent": [], "headers": [], "body": [], "body with token": []}
    counts = {"silent": each, "headers": each, "body": each // 2, "body with token": each - each // 2}
    with_token = f"Authorization: Bearer {secrets.viewer_token}\r\n".encode()

    async def hold(kind: str) -> None:
        opened = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection(host, int(port), local_addr=(address, 0))
        except OSError as problem:
            report.statuses[f"{kind}: {type(problem).__name__}"] += 1
            await asyncio.sleep(0.1)
            return
        report.sent += 1
        if kind == "body":
            writer.write(SLOW_BODY_HEAD)
        elif kind == "body with token":
            writer.write(SLOW_BODY_HEAD.replace(b"Host: x\r\n", b"Host: x\r\n" + with_token))
        elif kind == "headers":
            writer.write(b"GET /healthz HTTP/1.1\r\n")
        answer, closed = b"", False
        try:
            while time.perf_counter() < deadline:
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), 0.5)
                except TimeoutError:
                    if kind != "silent":  # a byte of header, or a hundred of body, every half second
                        writer.write(b"X" if kind == "headers" else b" " * 100)
                        await writer.drain()
                    continue
                if not chunk:
                    closed = True
                    break
                answer += chunk
        except OSError:
            closed = True
        writer.close()
        if closed:
            status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"
            report.statuses[f"{kind}: {status}"] += 1
            lifetimes[kind].append(time.perf_counter() - opened)
        else:
            report.statuses[f"{kind}: open at the end"] += 1

    async def hold_forever(kind: str) -> None:
        while time.perf_counter() < deadline:
            await hold(kind)

    await asyncio.gather(*(hold_forever(kind) for kind, count in counts.items() for _ in range(count)))
    for kind, seen in lifetimes.items():
        if seen:
            report.notes.append(f"{kind}: closed by the server after {sum(seen) / len(seen):.1f} s on average")
    return report


# --------------------------------------------------------------------------- the run


def client_main(args: argparse.Namespace) -> None:
    """A child process: one role for one phase, its report as JSON on stdout."""
    secrets = Secrets(**json.loads(Path(args.secrets).read_text()))
    if args.role == "legit":
        with contextlib.suppress(OSError):  # a measuring client ahead of other work on its core, where allowed
            os.nice(-5)
        result = asyncio.run(legit(secrets, args.duration, args.rate)).summary()
    else:
        os.nice(10)  # the server is what is measured, not the attacker's share of core 1
        result = asyncio.run(attack(args.phase, secrets, args.duration)).summary(args.duration)
    print(json.dumps(result))


def verdict(legit_result: dict[str, Any], quiet_p99: float | None) -> str:
    p99 = legit_result["p99_ms"]
    if legit_result["errors"] or p99 is None:
        return f"MISSED ({legit_result['errors']} errors)"
    bound = min(MAX_P99_MS, P99_FACTOR * quiet_p99) if quiet_p99 else MAX_P99_MS
    return "holds" if p99 <= bound else f"MISSED (p99 over {bound:.1f} ms)"


def attacker_text(result: dict[str, Any]) -> str:
    if not result.get("sent"):
        return "—"
    statuses = ", ".join(f"{status} x{count}" for status, count in result["statuses"].items())
    rate = f"{result['per_second']:,.0f}/s"
    notes = ("; " + "; ".join(result["notes"])) if result.get("notes") else ""
    return f"{result['sent']:,} requests ({rate}): {statuses}{notes}"


def run_main(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import (
        CLIENT_CPU,
        RESULTS,
        SERVER_CPU,
        BenchError,
        Processes,
        bootstrap,
        cli_json,
        create_project,
        create_service_token,
        environment,
        exit_on_sigterm,
        log,
        pinned,
        postgres_cpus,
        start_tokengate,
        temporary_dir,
        tokengate_env,
        write_results,
    )

    exit_on_sigterm()
    phases = [p.strip() for p in args.only.split(",")] if args.only else list(PHASES)
    if phases[0] != "quiet":
        phases.insert(0, "quiet")  # every verdict compares with the quiet p99
    env_info = environment()
    rows: list[dict[str, Any]] = []
    with temporary_dir("tokengate-abuse-") as data_dir, Processes(RESULTS / "logs") as procs:
        # The defaults a deployment keeps, with GitHub's secret-scanning intake open.
        env = tokengate_env({"TOKENGATE_GITHUB_SCANNING_KEYS": str(scanning_keys_file(data_dir))}, capacity=False)
        server = start_tokengate(procs, "tokengate", data_dir, env, cpu=SERVER_CPU)
        seeded = bootstrap(data_dir, env, "Abuse")
        project = create_project(server.graphql, seeded["token"], "jobs")
        _, v2 = create_service_token(
            server.graphql, seeded["token"], "legit", [{"permissionSet": "JOB_ADMIN", "allProjects": True}]
        )
        _, viewer = create_service_token(
            server.graphql, seeded["token"], "viewer", [{"permissionSet": "JOB_VIEWER", "allProjects": True}]
        )
        _, reader = create_service_token(
            server.graphql, seeded["token"], "reader", [{"permissionSet": "ACCOUNT_VIEWER"}]
        )
        for number in range(FLOAT_PAGE_TOKENS - 3):  # 100 in all: a page of 100 is full
            create_service_token(
                server.graphql, seeded["token"], f"ci {number}", [{"permissionSet": "JOB_VIEWER", "allProjects": True}]
            )
        legacy = cli_json(
            [
                "import-legacy-token",
                *("--account-id", seeded["account_id"], "--name", "legacy user"),
                *("--created-at", "2022-03-01T12:00:00Z", "--grant", "job_admin", "--data-dir", str(data_dir)),
            ],
            env,
        )["token"]
        secrets_file = data_dir / "secrets.json"
        secrets_file.touch(mode=0o600)
        secrets_file.write_text(json.dumps(asdict(Secrets(server.url, project, v2, legacy, viewer, reader))))
        pg_cpus = postgres_cpus(data_dir)
        log("warm-up: the legitimate client for 3 s (caches, the legacy token's first argon2id), not measured")
        warm = [sys.executable, __file__, "client", "--secrets", str(secrets_file), "--duration", "3"]
        subprocess.run(pinned([*warm, "--role", "legit"], CLIENT_CPU), stdout=subprocess.DEVNULL, check=True)
        quiet_p99: float | None = None
        for phase in phases:
            duration = args.slow_duration if phase == "slow-connections" else args.duration
            log(f"{phase}: {DESCRIPTIONS[phase]} ({duration:.0f} s)")
            lag_before = loop_lag(server.url)
            base = [sys.executable, __file__, "client", "--secrets", str(secrets_file), "--duration", str(duration)]
            attacker = subprocess.Popen(
                pinned([*base, "--role", "attack", "--phase", phase], CLIENT_CPU), stdout=subprocess.PIPE, text=True
            )
            time.sleep(0.5 if phase != "quiet" else 0)  # the attack is under way before the measured client starts
            client = subprocess.Popen(
                pinned([*base, "--role", "legit", "--rate", str(args.rate)], CLIENT_CPU),
                stdout=subprocess.PIPE,
                text=True,
            )
            legit_out, _ = client.communicate(timeout=duration + 120)
            attack_out, _ = attacker.communicate(timeout=duration + 120)
            if client.returncode or attacker.returncode:
                codes = f"legit {client.returncode}, attacker {attacker.returncode}"
                raise BenchError(f"{phase}: a client process failed ({codes})")
            legit_result, attack_result = json.loads(legit_out), json.loads(attack_out)
            lag = {bound: count - lag_before.get(bound, 0) for bound, count in loop_lag(server.url).items()}
            if phase == "quiet":
                quiet_p99 = legit_result["p99_ms"]
            row = {
                "phase": phase,
                "attack": DESCRIPTIONS[phase],
                "legit": legit_result,
                "attacker": attack_result,
                "verdict": verdict(legit_result, quiet_p99),
                "server_loop_lag": lag_text(lag),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
            rows.append(row)
            log(
                f"  legit p50 {legit_result['p50_ms']} ms, p99 {legit_result['p99_ms']} ms, "
                f"errors {legit_result['errors']} {legit_result['error_kinds'] or ''}; {row['verdict']}"
            )
            log(f"  attacker: {attacker_text(attack_result)}")
            log(f"  server event loop: {row['server_loop_lag']}")
            if server.child.proc.poll() is not None:
                raise BenchError(f"tokengate died during {phase}:\n{server.child.tail()}")
        metrics = server_metrics(server.url)
    table = markdown(rows, env_info, args, pg_cpus)
    print(table)
    write_results("abuse", {"environment": env_info, "phases": rows, "metrics": metrics}, table)
    return 0 if all(row["verdict"] == "holds" for row in rows) else 1


def loop_lag(url: str) -> dict[str, float]:
    """The server's event-loop lag histogram now: upper bound -> samples at or below it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import http

    _, _, raw = http("GET", url + "/metrics")
    counts = {}
    for line in raw.decode().splitlines():
        if line.startswith("tokengate_event_loop_lag_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            counts[bound] = float(line.rsplit(" ", 1)[1])
    return counts


def lag_text(lag: dict[str, float]) -> str:
    """How often, during a phase, the loop woke a 100 ms sleeper more than 10 and 50 ms late."""
    total = lag.get("+Inf", 0)
    late_10 = total - lag.get("0.01", 0)
    late_50 = total - lag.get("0.05", 0)
    return f"{late_10:.0f} of {total:.0f} wake-ups over 10 ms late, {late_50:.0f} over 50 ms"


def server_metrics(url: str) -> dict[str, str]:
    """The refusal counters and loop lag at the end, for the record."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import http

    _, _, raw = http("GET", url + "/metrics")
    wanted = ("tokengate_refusals_total", "tokengate_event_loop_lag_seconds_bucket", "tokengate_authentications_total")
    lines = [line for line in raw.decode().splitlines() if line.startswith(wanted)]
    return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in lines}


def markdown(rows: list[dict[str, Any]], env: dict[str, Any], args: argparse.Namespace, pg_cpus: str | None) -> str:
    lines = [
        "| phase | attack (from 127.0.0.2) | legit p50 ms | legit p99 ms | legit errors | verdict "
        "| what the attacker got | server event loop |",
        "| --- | --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for row in rows:
        legit_result = row["legit"]
        lines.append(
            f"| {row['phase']} | {row['attack']} | {legit_result['p50_ms']} | {legit_result['p99_ms']} | "
            f"{legit_result['errors']} | {row['verdict']} | {attacker_text(row['attacker'])} | "
            f"{row['server_loop_lag']} |"
        )
    lines += [
        "",
        f"`make bench-abuse` at {env['git']}, {env['when']}: {env['cpu']}, {env['cores']} cores; tokengate "
        f"(default limits) on core 0 with its embedded PostgreSQL (cores {pg_cpus}), clients on core 1; the "
        f"legitimate client at {args.rate:g} requests/s from 127.0.0.1 for {args.duration:g} s a phase "
        f"({args.slow_duration:g} s for slow-connections); load average {env['load_average_1m']} at the start.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    client = commands.add_parser("client", help="(internal) one client process")
    client.add_argument("--secrets", required=True)
    client.add_argument("--role", choices=["legit", "attack"], required=True)
    client.add_argument("--phase", default="quiet")
    client.add_argument("--duration", type=float, required=True)
    client.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", 15)))
    parser.add_argument("--slow-duration", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    if args.command == "client":
        client_main(args)
        return 0
    return run_main(args)


if __name__ == "__main__":
    sys.exit(main())
