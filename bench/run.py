"""`make bench`: tokengate side by side with a raw aiohttp handler and a bare Strawberry app, in one run.

Each server runs pinned to core 0 (``taskset -c 0``; an embedded PostgreSQL started by tokengate inherits
that pinning), wrk runs on core 1. Scenarios:

  (a)  raw aiohttp JSON handler on uvloop, no access log          GET  /json
  (a') aiohttp's low-level web.Server, fixed 200, uvloop           GET  /
  (b)  bare Strawberry on aiohttp, defaults, static resolvers      POST /graphql   (kept for continuity)
  (b') tuned Strawberry (ParserCache + ValidationCache, uvloop)    POST /graphql   the query of (c), static data
  (c)  tokengate: viewer + check with a JOB_ADMIN service token    POST /graphql
  (d)  tokengate: forward-auth with that service token             GET  /auth/check?resource=JOBS&access=WRITE&…
  (e)  tokengate: 50 service tokens with grants and projects       POST /graphql (admin user token)
  (e') tuned Strawberry, 50 static tokens of the shape of (e)      POST /graphql

The targets compare tokengate with the fair anchors: c/b' (a tuned Strawberry answering the same query from
static data), e/e' and d/a; c/b is printed for continuity with the first benchmark.

Each scenario is checked with one real request before and after it is loaded (HTTP 200 and the expected
JSON), and warmed up; a wrong answer fails the scenario and the run (exit 1). Then every server is measured in
``--rounds`` rounds of ``--duration`` seconds, interleaved: in each round a tokengate scenario runs right next
to its anchor ((a, d), (b', c), (e', e), which goes first alternating from round to round), so that a change
in the machine's speed (on a shared VM, the anchor alone moved 20,440-32,648 req/s over eight 4-second runs
on 2026-12-06) weighs on both sides of a ratio alike. A scenario's figures are its median round's; a ratio is
the median of the rounds' own ratios (each round's pair measured back to back).

--check (the test suite's smoke run, tests/bench/test_bench_smoke.py): every scenario started and its answer
checked before and after a short wrk run (--duration, no warm-up), which may complete any number of
requests, none at all on a busy machine: it fails on a wrong answer (or a non-2xx under load), never on
speed. No figure comes of it: no ratios, results in bench/results/bench-check-latest.json.

Options (or the environment): --rounds (BENCH_ROUNDS, 7), --duration (BENCH_DURATION, 3 s a round),
--warmup (BENCH_WARMUP, 3 s),
--connections (BENCH_CONNECTIONS, 32), --threads (BENCH_THREADS, 1), --only a,c, --update-readme
(rewrite the table in docs/performance.md), --profile (py-spy flame graph of tokengate per scenario, when
py-spy is installed). With TOKENGATE_DATABASE_URL (and TOKENGATE_SECRET_KEY) set, tokengate runs on that
database instead of a fresh embedded one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from baseline_raw import PAYLOAD as RAW_PAYLOAD
from common import (
    BENCH,
    CLIENT_CPU,
    LOOPBACK,
    REPO,
    RESULTS,
    SERVER_CPU,
    BenchError,
    Child,
    Load,
    Processes,
    WrkResult,
    bootstrap,
    create_project,
    create_service_token,
    embedded,
    ensure_wrk,
    environment,
    exit_on_sigterm,
    free_port,
    http,
    log,
    pinned,
    post_json,
    postgres_cpus,
    run_wrk,
    start_tokengate,
    temporary_dir,
    tokengate_env,
    venv_tool,
    wait_http,
    write_results,
    wrk_script,
)

TITLES = {
    "a": "(a) raw aiohttp JSON handler, uvloop",
    "a'": "(a') aiohttp low-level server, fixed 200",
    "b": "(b) bare Strawberry on aiohttp (defaults)",
    "b'": "(b') tuned Strawberry, query of (c)",
    "c": "(c) tokengate viewer + check, service token",
    "d": "(d) tokengate GET /auth/check, service token",
    "e": "(e) tokengate 50 service tokens + grants + projects",
    "e'": "(e') tuned Strawberry, 50 static tokens",
}
# (name, numerator, denominator, target, stretch); c/b only for continuity with the first benchmark
RATIOS = [
    ("c/b'", "c", "b'", 2.5, 4.0),
    ("e/e'", "e", "e'", 1.5, 3.0),
    ("d/a", "d", "a", 0.8, 0.9),
    ("c/b", "c", "b", 3.0, None),
]
LISTED_TOKENS = 50
PROJECTS = 10
SCENARIO_QUERY = (
    '{ viewer { kind account { name plan } } check(resource: JOBS, access: WRITE, projectId: "%s") { allowed reason } }'
)
LIST_QUERY = (
    "{ account { serviceTokens { id name displayPrefix grants { permissionSet allProjects projects { id name } } } } }"
)
# Measured in this order in every round: each tokengate scenario next to its anchor, the order within a pair
# alternating from round to round; the anchors kept only for continuity last.
ROUND_ORDER = [("a", "d"), ("b'", "c"), ("e'", "e"), ("a'",), ("b",)]
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
CHECK_NOTE = "A check run (`--check`): answers verified around a short load; the figures mean nothing."


@dataclass
class Outcome:
    key: str
    status: str = "skipped"  # ready (checked, warmed up) | measured | checked (--check) | failed | skipped
    reason: str | None = None
    result: WrkResult | None = None  # the median round's
    rounds: list[WrkResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": TITLES[self.key],
            "status": self.status,
            "reason": self.reason,
            "notes": self.notes,
            "rounds_requests_per_s": [r.requests_per_s for r in self.rounds],
            **(self.result.row() if self.result else {}),
        }


@dataclass
class Target:
    """A started, checked and warmed-up scenario, waiting for its rounds."""

    outcome: Outcome
    url: str
    script: Path | None
    verify: Callable[[], None]
    server: Child


class Bench:
    def __init__(
        self,
        wrk: str,
        load: Load,
        procs: Processes,
        scratch: Path,
        profile: bool,
        wanted: set[str],
        check: bool = False,
    ):
        self.wrk, self.load, self.procs, self.scratch = wrk, load, procs, scratch
        self.profile, self.wanted, self.check = profile, wanted, check
        self.outcomes = {key: Outcome(key) for key in TITLES}
        self.targets: dict[str, Target] = {}

    def run(self, key: str, body: Callable[[Outcome], None]) -> None:
        """Run one scenario, turning a BenchError into its reported status."""
        outcome = self.outcomes[key]
        if key not in self.wanted:
            return
        log(f"{TITLES[key]} ...")
        try:
            body(outcome)
            outcome.status = "ready"  # measured in the rounds (measure_rounds)
        except BenchError as problem:
            outcome.status, outcome.reason = "failed", str(problem)
            log(f"  FAILED: {problem}")

    def prepare(
        self, outcome: Outcome, url: str, script: Path | None, verify: Callable[[], None], server: Child
    ) -> None:
        """Check the scenario's answer and warm it up; its rounds come later (``measure_rounds``)."""
        verify()  # one real request: a benchmark of error responses is worthless
        if not self.check:
            run_wrk(self.wrk, url, script, self.load, self.load.warmup)
        self.targets[outcome.key] = Target(outcome, url, script, verify, server)

    def measure_rounds(self) -> None:
        """Every target's rounds, interleaved (ROUND_ORDER), then its answer checked again."""
        for number in range(self.load.rounds):
            log(f"round {number + 1} of {self.load.rounds} ...")
            for pair in ROUND_ORDER:
                for key in pair if number % 2 == 0 else tuple(reversed(pair)):
                    if key in self.targets:
                        self._round(self.targets[key])
        for target in list(self.targets.values()):
            self._finish(target)

    def _round(self, target: Target) -> None:
        outcome = target.outcome
        try:
            result = run_wrk(
                self.wrk, target.url, target.script, self.load, self.load.duration, require_requests=not self.check
            )
        except BenchError as problem:
            outcome.status, outcome.reason = "failed", str(problem)
            log(f"  {TITLES[outcome.key]} FAILED: {problem}")
            del self.targets[outcome.key]
            return
        outcome.rounds.append(result)
        log(f"  {TITLES[outcome.key]:<54}{result.requests_per_s:>10,.0f} req/s")

    def _finish(self, target: Target) -> None:
        outcome, server = target.outcome, target.server
        try:
            target.verify()  # and still right after the load
            if server.proc.poll() is not None:
                raise BenchError(f"{server.name} died during the run:\n{server.tail()}")
        except BenchError as problem:
            outcome.status, outcome.reason = "failed", str(problem)
            return
        outcome.status = "checked" if self.check else "measured"
        ordered = sorted(outcome.rounds, key=lambda r: r.requests_per_s)
        result = outcome.result = ordered[len(ordered) // 2]
        if self.check:
            outcome.notes.append(f"answered right before and after {result.requests} requests under load")
            return
        if len(ordered) > 1:
            outcome.notes.append(f"rounds {ordered[0].requests_per_s:,.0f}-{ordered[-1].requests_per_s:,.0f} req/s")
        errors = [r.socket_errors for r in outcome.rounds if r.socket_errors]
        if errors:
            outcome.notes.append(f"wrk socket errors: {'; '.join(errors)}")
        if self.profile and outcome.key in ("c", "d", "e"):
            self.record_profile(outcome, target.url, target.script, server)

    def record_profile(self, outcome: Outcome, url: str, script: Path | None, server: Child) -> None:
        """A py-spy flame graph of the server under the same load (an extra run, not the measured one)."""
        try:
            py_spy = venv_tool("py-spy")
        except BenchError:
            outcome.notes.append("profile skipped: py-spy not installed (.venv/bin/pip install py-spy)")
            return
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        target = RESULTS / f"profile-{outcome.key}-{stamp}.svg"
        argv = [py_spy, "record", "--pid", str(server.pid), "--duration", str(self.load.duration)]
        recorder = subprocess.Popen(
            [*argv, "--rate", "200", "--output", str(target), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            run_wrk(self.wrk, url, script, self.load, self.load.duration)
            recorder.wait(self.load.duration + 30)
        finally:
            if recorder.poll() is None:
                recorder.kill()
                recorder.wait()
        outcome.notes.append(f"profile: {target.relative_to(REPO)}")

    def start_python(self, name: str, script: str, path: str, *options: str) -> tuple[Child, str]:
        port = free_port()
        child = self.procs.start(
            name,
            [sys.executable, str(BENCH / script), "--port", str(port), *options],
            cpu=SERVER_CPU,
            env=dict(os.environ),
        )
        url = f"http://{LOOPBACK}:{port}{path}"
        wait_http(url, child, timeout=30)
        return child, url


# --------------------------------------------------------------------------- baselines


def scenario_a(bench: Bench, outcome: Outcome) -> None:
    child, url = bench.start_python("baseline-raw", "baseline_raw.py", "/json")

    def verify() -> None:
        status, _, raw = http("GET", url)
        if status != 200 or json.loads(raw) != RAW_PAYLOAD:
            raise BenchError(f"raw baseline answered {status}: {raw[:200]!r}")

    bench.prepare(outcome, url, None, verify, child)  # stopped at the end of the run


def scenario_query_baseline(
    bench: Bench, outcome: Outcome, name: str, script: str, options: tuple[str, ...], label: str
) -> None:
    """A Strawberry baseline answering the query of (c) on static data, checked before and after."""
    child, url = bench.start_python(name, script, "/graphql", *options)
    query = SCENARIO_QUERY % "prj_bench"

    def verify() -> None:
        status, _, body = post_json(url, {"query": query})
        expected = {
            "viewer": {"kind": "SERVICE_TOKEN", "account": {"name": "Bench", "plan": "ENTERPRISE"}},
            "check": {"allowed": True, "reason": "allowed by JOB_ADMIN on prj_bench"},
        }
        if status != 200 or body != {"data": expected}:
            raise BenchError(f"{label} answered {status}: {body}")

    script = wrk_script(
        bench.scratch / f"{name}.lua",
        method="POST",
        headers={"Content-Type": "application/json"},
        body=_json({"query": query}),
    )
    bench.prepare(outcome, url, script, verify, child)  # stopped at the end of the run


def scenario_b(bench: Bench, outcome: Outcome) -> None:
    scenario_query_baseline(bench, outcome, "baseline-strawberry", "baseline_strawberry.py", (), "Strawberry baseline")


def scenario_a_low_level(bench: Bench, outcome: Outcome) -> None:
    child, url = bench.start_python("baseline-low-level", "baseline_raw.py", "/", "--low-level")

    def verify() -> None:
        status, _, _ = http("GET", url)
        if status != 200:
            raise BenchError(f"low-level baseline answered {status}")

    bench.prepare(outcome, url, None, verify, child)  # stopped at the end of the run


def scenario_b_tuned(bench: Bench, outcome: Outcome) -> None:
    scenario_query_baseline(
        bench, outcome, "baseline-tuned-c", "baseline_tuned.py", ("--scenario", "c"), "tuned Strawberry (b')"
    )


def scenario_e_tuned(bench: Bench, outcome: Outcome) -> None:
    child, url = bench.start_python("baseline-tuned-e", "baseline_tuned.py", "/graphql", "--scenario", "e")

    def verify() -> None:
        status, _, body = post_json(url, {"query": LIST_QUERY})
        listed = (body.get("data") or {}).get("account", {}).get("serviceTokens") if isinstance(body, dict) else None
        if status != 200 or not listed or len(listed) != LISTED_TOKENS or not all(t["grants"] for t in listed):
            raise BenchError(f"tuned Strawberry (e') answered {status}: {str(body)[:300]}")

    script = wrk_script(
        bench.scratch / "e-tuned.lua",
        method="POST",
        headers={"Content-Type": "application/json"},
        body=_json({"query": LIST_QUERY}),
    )
    bench.prepare(outcome, url, script, verify, child)  # stopped at the end of the run


def _json(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


# --------------------------------------------------------------------------- tokengate


@dataclass
class Seeded:
    account_id: str
    account_name: str
    admin_token: str
    project_ids: list[str]
    service_token: str


def listed_token_grants(index: int, projects: list[str]) -> list[dict[str, Any]]:
    """Varied, realistic grants: project lists of one to three projects, some all-projects sets."""
    pick = [projects[(index + step) % len(projects)] for step in range(1 + index % 3)]
    shapes = [
        [{"permissionSet": "JOB_ADMIN", "allProjects": False, "projectIds": pick}],
        [
            {"permissionSet": "ANALYST", "allProjects": True, "projectIds": []},
            {"permissionSet": "JOB_VIEWER", "allProjects": False, "projectIds": pick},
        ],
        [
            {"permissionSet": "DEVELOPER", "allProjects": False, "projectIds": pick},
            {"permissionSet": "ACCOUNT_VIEWER", "allProjects": True, "projectIds": []},
        ],
    ]
    return shapes[index % len(shapes)]


def seed(url: str, data_dir: Path, env: dict[str, str]) -> Seeded:
    """Through the public doors: bootstrap (CLI), createProject, createServiceToken."""
    name = "Bench" if embedded(env) else f"Bench {datetime.now(UTC):%Y%m%d-%H%M%S}"
    boot = bootstrap(data_dir, env, name)
    admin = boot["token"]
    projects = [create_project(url, admin, f"bench-project-{i:02d}") for i in range(PROJECTS)]
    _, secret = create_service_token(
        url, admin, "bench-c", [{"permissionSet": "JOB_ADMIN", "allProjects": False, "projectIds": [projects[0]]}]
    )
    for index in range(LISTED_TOKENS - 1):  # with bench-c, the account holds exactly LISTED_TOKENS
        create_service_token(url, admin, f"bench-listed-{index:02d}", listed_token_grants(index, projects))
    return Seeded(boot["account_id"], name, admin, projects, secret)


def scenario_c(bench: Bench, outcome: Outcome, server: Child, url: str, seeded: Seeded) -> None:
    query = SCENARIO_QUERY % seeded.project_ids[0]

    def verify() -> None:
        status, _, body = post_json(url, {"query": query}, seeded.service_token)
        expected_viewer = {"kind": "SERVICE_TOKEN", "account": {"name": seeded.account_name, "plan": "ENTERPRISE"}}
        try:
            ok = (
                status == 200
                and not body.get("errors")
                and body["data"]["viewer"] == expected_viewer
                and body["data"]["check"]["allowed"] is True
            )
        except (AttributeError, KeyError, TypeError):
            ok = False
        if not ok:
            raise BenchError(f"tokengate (c) answered {status}: {body}")

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {seeded.service_token}"}
    script = wrk_script(bench.scratch / "c.lua", method="POST", headers=headers, body=_json({"query": query}))
    bench.prepare(outcome, url, script, verify, server)


def scenario_d(bench: Bench, outcome: Outcome, server: Child, base: str, seeded: Seeded) -> None:
    url = f"{base}/auth/check?resource=JOBS&access=WRITE&projectId={seeded.project_ids[0]}"
    headers = {"Authorization": f"Bearer {seeded.service_token}"}

    def verify() -> None:
        status, response_headers, raw = http("GET", url, headers=headers)
        lowered = {k.lower(): v for k, v in response_headers.items()}
        if (
            status != 200
            or lowered.get("x-tokengate-account-id") != seeded.account_id
            or not lowered.get("x-tokengate-principal")
        ):
            raise BenchError(f"/auth/check answered {status} {lowered} {raw[:200]!r}")

    script = wrk_script(bench.scratch / "d.lua", method="GET", headers=headers)
    bench.prepare(outcome, url, script, verify, server)


def scenario_e(bench: Bench, outcome: Outcome, server: Child, url: str, seeded: Seeded) -> None:
    def verify() -> None:
        status, _, body = post_json(url, {"query": LIST_QUERY}, seeded.admin_token)
        if status != 200 or not isinstance(body, dict) or body.get("errors"):
            raise BenchError(f"tokengate (e) answered {status}: {str(body)[:500]}")
        listed = body["data"]["account"]["serviceTokens"]
        if len(listed) != LISTED_TOKENS:
            raise BenchError(f"expected {LISTED_TOKENS} service tokens, got {len(listed)}")
        for token in listed:
            if not token["grants"]:
                raise BenchError(f"token {token['id']} lists no grants")
            for grant in token["grants"]:
                if not grant["allProjects"] and not all(
                    p["name"].startswith("bench-project-") for p in grant["projects"]
                ):
                    raise BenchError(f"grant of {token['id']} lists wrong projects: {grant}")
                if not grant["allProjects"] and not grant["projects"]:
                    raise BenchError(f"grant of {token['id']} lists no projects: {grant}")

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {seeded.admin_token}"}
    script = wrk_script(bench.scratch / "e.lua", method="POST", headers=headers, body=_json({"query": LIST_QUERY}))
    bench.prepare(outcome, url, script, verify, server)


def tokengate_scenarios(bench: Bench, stack: contextlib.ExitStack) -> dict[str, Any]:
    """Start tokengate on a fresh database (kept until ``stack`` closes: the rounds come later), seed it, and
    check and warm up (c), (d), (e)."""
    if not bench.wanted & {"c", "d", "e"}:
        return {}
    env = tokengate_env()
    info: dict[str, Any] = {}
    data_dir = stack.enter_context(temporary_dir("tokengate-bench-"))
    log("tokengate: starting on a fresh " + ("embedded database" if embedded(env) else "account"))
    server = start_tokengate(bench.procs, "tokengate", data_dir, env, cpu=SERVER_CPU)
    stack.callback(bench.procs.stop, server.child)  # before its data directory goes
    try:
        started = time.monotonic()
        seeded = seed(server.graphql, data_dir, env)
        log(f"  seeded in {time.monotonic() - started:.1f}s")
        if embedded(env):
            info["embedded_postgres_cpus"] = postgres_cpus(data_dir)
        for key, scenario in (("c", scenario_c), ("d", scenario_d), ("e", scenario_e)):
            target = server.url if key == "d" else server.graphql
            bench.run(key, lambda outcome, s=scenario, t=target: s(bench, outcome, server.child, t, seeded))
    except BenchError as problem:  # seeding broke: every tokengate scenario fails with it
        for key in ("c", "d", "e"):
            if key in bench.wanted and bench.outcomes[key].status == "skipped":
                bench.outcomes[key].status, bench.outcomes[key].reason = "failed", f"seeding: {problem}"
        log(f"  FAILED while seeding: {problem}")
    return info


# --------------------------------------------------------------------------- report


def ratios(outcomes: dict[str, Outcome]) -> list[dict[str, Any]]:
    rows = []
    for name, top, bottom, target, stretch in RATIOS:
        a, b = outcomes[top], outcomes[bottom]
        row: dict[str, Any] = {"ratio": name, "target": target, "stretch": stretch, "value": None}
        if a.result and b.result:
            # Each round's pair was measured back to back: the median of their ratios (rounds both completed).
            paired = [x.requests_per_s / y.requests_per_s for x, y in zip(a.rounds, b.rounds, strict=False)]
            value = statistics.median(paired)
            row["value"] = round(value, 2)
            row["rounds"] = [round(ratio, 2) for ratio in paired]
            if value < target:
                row["verdict"] = "MISSED"
            elif stretch is not None and value < stretch:
                row["verdict"] = "holds (stretch missed)"
            else:
                row["verdict"] = "holds" + (" (stretch too)" if stretch is not None else "")
        else:
            missing = [k for k in (top, bottom) if not outcomes[k].result]
            row["verdict"] = f"n/a ({', '.join(missing)} not measured)"
        rows.append(row)
    return rows


def scenario_cells(outcome: Outcome) -> list[str]:
    if outcome.result:
        r = outcome.result
        return [f"{r.requests_per_s:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}"]
    return ["—", "—", "—"]


def status_text(outcome: Outcome) -> str:
    if outcome.status in ("measured", "checked"):
        return "; ".join(outcome.notes)
    return f"{outcome.status}: {outcome.reason}" if outcome.reason else outcome.status


def markdown(
    outcomes: dict[str, Outcome], ratio_rows: list[dict[str, Any]], env: dict[str, Any], load: Load, check: bool = False
) -> str:
    lines = [
        *([CHECK_NOTE, ""] if check else []),
        "| scenario | req/s | p50 ms | p99 ms | note |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for key, outcome in outcomes.items():
        lines.append(f"| {TITLES[key]} | " + " | ".join(scenario_cells(outcome)) + f" | {status_text(outcome)} |")
    if ratio_rows:
        lines += [
            "",
            "| ratio | value (median) | rounds | target | stretch | verdict |",
            "| --- | ---: | --- | ---: | ---: | --- |",
        ]
    for row in ratio_rows:
        value = f"{row['value']:.2f}" if row["value"] is not None else "—"
        rounds = ", ".join(f"{ratio:.2f}" for ratio in row.get("rounds", ())) or "—"
        stretch = f"≥ {row['stretch']}" if row["stretch"] is not None else "—"
        lines.append(f"| {row['ratio']} | {value} | {rounds} | ≥ {row['target']} | {stretch} | {row['verdict']} |")
    versions = env["versions"]
    lines += [
        "",
        f"`make bench` at {env['git']}, {env['when']}: {env['cpu']}, {env['cores']} cores, "
        f"server on core {SERVER_CPU} and wrk on core {CLIENT_CPU} ({'pinned' if env['pinned'] else 'NOT pinned'}), "
        f"wrk -t{load.threads} -c{load.connections} -d{load.duration}s "
        + ("without warm-up; " if check else f"after a {load.warmup}s warm-up, {load.rounds} interleaved rounds; ")
        + f"Python {env['python']}, strawberry-graphql {versions['strawberry-graphql']}, "
        f"aiohttp {versions['aiohttp']}; {env['database']} PostgreSQL"
        + (
            f" pinned with tokengate to core(s) {env['embedded_postgres_cpus']}"
            if env.get("embedded_postgres_cpus")
            else ""
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


def console(outcomes: dict[str, Outcome], ratio_rows: list[dict[str, Any]]) -> str:
    lines = [f"{'scenario':<54}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}"]
    for key, outcome in outcomes.items():
        if outcome.result:
            r = outcome.result
            lines.append(f"{TITLES[key]:<54}{r.requests_per_s:>10,.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}")
        else:
            lines.append(f"{TITLES[key]:<54}{'—':>10}{'—':>10}{'—':>10}")
        if status_text(outcome):
            lines.append(f"    {status_text(outcome)}")
    lines.append("")
    lines.append(f"{'ratio':<8}{'value':>8}{'target':>10}{'stretch':>10}   verdict")
    for row in ratio_rows:
        value = f"{row['value']:.2f}" if row["value"] is not None else "—"
        stretch = f">={row['stretch']}" if row["stretch"] is not None else "—"
        rounds = " ".join(f"{ratio:.2f}" for ratio in row.get("rounds", ()))
        lines.append(
            f"{row['ratio']:<8}{value:>8}{'>=' + str(row['target']):>10}{stretch:>10}   {row['verdict']}"
            + (f"   (rounds: {rounds})" if rounds else "")
        )
    return "\n".join(lines)


def update_readme(table: str) -> None:
    readme = REPO / "docs" / "performance.md"
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise BenchError(f"docs/performance.md has no {README_START} … {README_END} block to update")
    readme.write_text(text[: start + len(README_START)] + "\n" + table + text[end:])
    log("docs/performance.md: the table updated")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "7")))
    parser.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "3")))
    parser.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", "3")))
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "32")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "1")))
    parser.add_argument("--only", default=os.environ.get("BENCH_ONLY", ",".join(TITLES)), help="scenarios, e.g. a,c")
    parser.add_argument("--update-readme", action="store_true", help="rewrite the table in docs/performance.md")
    parser.add_argument("--profile", action="store_true", help="py-spy flame graph per tokengate scenario")
    parser.add_argument("--check", action="store_true", help="answers checked around a short load, no figures")
    args = parser.parse_args()
    if args.check and (args.update_readme or args.profile):
        parser.error("--check makes no figures: it takes neither --update-readme nor --profile")
    args.only = {key.strip() for key in args.only.split(",") if key.strip()}
    if not args.only <= set(TITLES):
        parser.error(f"--only takes scenarios among {', '.join(TITLES)}")
    if min(args.rounds, args.duration, args.warmup, args.connections, args.threads) < 1:
        parser.error("--rounds, --duration, --warmup, --connections and --threads must be at least 1")
    return args


def main() -> int:
    exit_on_sigterm()
    args = parse_args()
    load = Load(
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads,
        rounds=1 if args.check else args.rounds,
    )
    wrk = ensure_wrk()
    env = environment()
    if not env["pinned"]:
        log("WARNING: fewer than 2 cores or no taskset: servers and wrk are NOT pinned; figures are not comparable")
    started = time.monotonic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (
        temporary_dir("tokengate-bench-scratch-") as scratch,
        Processes(RESULTS / "logs") as procs,
        contextlib.ExitStack() as stack,
    ):
        bench = Bench(wrk, load, procs, scratch, args.profile, args.only, args.check)
        bench.run("a", lambda outcome: scenario_a(bench, outcome))
        bench.run("a'", lambda outcome: scenario_a_low_level(bench, outcome))
        bench.run("b", lambda outcome: scenario_b(bench, outcome))
        bench.run("b'", lambda outcome: scenario_b_tuned(bench, outcome))
        bench.run("e'", lambda outcome: scenario_e_tuned(bench, outcome))
        env.update(tokengate_scenarios(bench, stack))
        bench.measure_rounds()
    ratio_rows = [] if args.check else ratios(bench.outcomes)
    table = markdown(bench.outcomes, ratio_rows, env, load, args.check)
    payload = {
        "environment": env,
        "load": load.__dict__,
        "command": " ".join(pinned(["wrk", f"-t{load.threads}", f"-c{load.connections}", f"-d{load.duration}s"], 1)),
        "scenarios": {key: outcome.as_dict() for key, outcome in bench.outcomes.items()},
        "ratios": ratio_rows,
        "seconds": round(time.monotonic() - started, 1),
    }
    json_path, md_path = write_results("bench-check" if args.check else "bench", payload, table)
    print()
    print(console(bench.outcomes, ratio_rows))
    print()
    print(f"results: {json_path.relative_to(REPO)} and {md_path.relative_to(REPO)} ({payload['seconds']}s)")
    if args.update_readme:
        update_readme(table)
    failed = [key for key, outcome in bench.outcomes.items() if outcome.status == "failed"]
    if failed:
        print(f"FAILED scenarios: {', '.join(failed)} (see above; server logs in bench/results/logs/)")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as problem:
        log(f"bench: error: {problem}")
        sys.exit(1)
