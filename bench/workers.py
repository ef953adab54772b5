"""Workers: does `tokengate serve --workers 2` answer /auth/check faster than one process, and at what cost?

`python bench/workers.py [--duration 10] [--connections 32] [--threads 2]`:

1. starts `tokengate serve --workers 1`, seeds an account, a project and a service token, and loads
   `GET /auth/check?resource=JOBS&access=WRITE&projectId=…` with wrk (after a warm-up), reading the CPU time
   (user + system, /proc/<pid>/stat) the serving processes spent during the measured run;
2. the same with `--workers 2` (the parent serves nothing: its workers' CPU time is counted);
3. prints requests/s of each, the ratio (2 workers / 1), and the server's CPU time per request of each (the
   coordination cost: what a request costs more when two processes serve).

The server is not pinned (its workers use every core); wrk is pinned to one core when possible, so on a
2-core machine the load generator shares a core with a worker: the ratio is bounded by that, not by the
server. Other work on the machine shows in the load average printed with the results.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    LOOPBACK,
    BenchError,
    Load,
    Processes,
    bootstrap,
    create_project,
    create_service_token,
    ensure_wrk,
    environment,
    exit_on_sigterm,
    free_port,
    http,
    log,
    run_wrk,
    temporary_dir,
    tokengate_env,
    venv_tool,
    wait_http,
    write_results,
    wrk_script,
)

TICKS = os.sysconf("SC_CLK_TCK")
WORKER_PIDS = re.compile(r"with \d+ workers \(pids ([\d ]+)\)")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def serving_pids(parent: int, log_path: Path, workers: int) -> list[int]:
    if workers == 1:
        return [parent]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = WORKER_PIDS.search(log_path.read_text(errors="replace"))
        if found:
            return [int(pid) for pid in found[1].split()]
        time.sleep(0.1)
    raise BenchError(f"no workers' serving line in {log_path}")


def measure(workers: int, load: Load, scratch: Path) -> dict[str, Any]:
    wrk = ensure_wrk()
    data_dir = scratch / f"data-{workers}"
    env = tokengate_env()
    with Processes(scratch / f"logs-{workers}") as procs:
        port = free_port()
        argv = [venv_tool("tokengate"), "serve", "--host", LOOPBACK, "--port", str(port), "--data-dir", str(data_dir)]
        child = procs.start(f"tokengate-{workers}", [*argv, "--workers", str(workers)], cpu=None, env=env)
        base = f"http://{LOOPBACK}:{port}"
        wait_http(f"{base}/healthz", child, timeout=120)
        pids = serving_pids(child.pid, child.log_path, workers)
        admin = bootstrap(data_dir, env, "Workers")
        project = create_project(f"{base}/graphql", admin["token"], "bench")
        _, secret = create_service_token(f"{base}/graphql", admin["token"], "bench", [{"permissionSet": "JOB_ADMIN"}])
        url = f"{base}/auth/check?resource=JOBS&access=WRITE&projectId={project}"
        headers = {"Authorization": f"Bearer {secret}"}
        status, _, _ = http("GET", url, headers=headers)
        if status != 200:
            raise BenchError(f"/auth/check answered {status}")
        script = wrk_script(scratch / f"auth-{workers}.lua", method="GET", headers=headers)
        run_wrk(wrk, url, script, load, load.warmup)
        before = sum(cpu_seconds(pid) for pid in pids)
        result = run_wrk(wrk, url, script, load, load.duration)
        spent = sum(cpu_seconds(pid) for pid in pids) - before
        procs.stop(child)
        if child.proc.returncode != 0:
            raise BenchError(f"serve --workers {workers} exited with {child.proc.returncode}:\n{child.tail()}")
    return {
        "workers": workers,
        **result.row(),
        "server_cpu_s": round(spent, 3),
        "server_cpu_us_per_request": round(spent / result.requests * 1e6, 1),
    }


def main() -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    load = Load(duration=args.duration, warmup=args.warmup, connections=args.connections, threads=args.threads)
    about = environment()
    with temporary_dir("tokengate-bench-workers-") as scratch:
        one = measure(1, load, scratch)
        two = measure(2, load, scratch)
    ratio = two["requests_per_s"] / one["requests_per_s"]
    cost = two["server_cpu_us_per_request"] / one["server_cpu_us_per_request"] - 1
    rows = "\n".join(
        f"| {row['workers']} | {row['requests_per_s']:.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
        f"{row['server_cpu_us_per_request']:.1f} |"
        for row in (one, two)
    )
    markdown = (
        f"# /auth/check with --workers 2 against 1\n\n{about['when']}, load average {about['load_average_1m']} "
        f"before the run, {about['cores']} cores, wrk pinned: {about['pinned']}\n\n"
        "| workers | req/s | p50 ms | p99 ms | server CPU µs/request |\n|---|---|---|---|---|\n"
        f"{rows}\n\nthroughput ratio {ratio:.2f}x; CPU time per request {cost:+.1%} with 2 workers\n"
    )
    write_results("workers", {"environment": about, "load": vars(args), "runs": [one, two]}, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as problem:
        log(f"workers: {problem}")
        sys.exit(1)
