"""A real nginx in front of a service, asking tokengate through `auth_request`, configured with the very
snippet the README shows (read from README.md here, so the two cannot drift apart)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.api.test_observability import metric
from tests.conftest import Server, free_port, make_config, start_server, store_service_token
from tokengate.policy import Grant

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The README's example addresses, and what this test puts in their place.
README_TOKENGATE = "server 127.0.0.1:8080;"
README_LISTEN = "listen 80;"
README_UPSTREAM = "proxy_pass http://127.0.0.1:9000;"


def readme_nginx_snippet() -> str:
    blocks = re.findall(r"```nginx\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, "README.md should show exactly one ```nginx block: the gateway configuration"
    return blocks[0]


def nginx_conf(workdir: Path, *, listen: int, tokengate: int, upstream: int) -> str:
    """The README snippet on this test's ports, inside the minimal main/events/http frame nginx needs."""
    snippet = readme_nginx_snippet()
    for readme_text, ours in [
        (README_TOKENGATE, f"server 127.0.0.1:{tokengate};"),
        (README_LISTEN, f"listen 127.0.0.1:{listen};"),
        (README_UPSTREAM, f"proxy_pass http://127.0.0.1:{upstream};"),
    ]:
        assert snippet.count(readme_text) == 1, f"the README nginx snippet no longer has {readme_text!r} once"
        snippet = snippet.replace(readme_text, ours)
    temp = {name: workdir / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    return "\n".join(
        [
            # Workers run as root when the master does, so they can use this test's private directory.
            "user root;" if os.geteuid() == 0 else "",
            "worker_processes 1;",
            f"pid {workdir / 'nginx.pid'};",
            f"error_log {workdir / 'error.log'} warn;",
            "events { worker_connections 64; }",
            "http {",
            f"    access_log {workdir / 'access.log'};",
            *(f"    {name}_temp_path {path};" for name, path in temp.items()),
            snippet,
            "}",
            "",
        ]
    )


@dataclass
class Gateway:
    url: str
    tokengate: Server
    upstream_seen: list[dict[str, Any]] = field(default_factory=list)

    async def get(self, path: str, token: str | None = None, **headers: str) -> tuple[int, Any, Any]:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.tokengate.session.get(self.url + path, headers=headers) as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body, response.headers


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def wait_listening(port: int, process: subprocess.Popen, error_log: Path) -> None:
    for _ in range(100):
        if process.poll() is not None:
            log = error_log.read_text() if error_log.exists() else ""
            raise AssertionError(f"nginx exited with {process.returncode}:\n{log}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError("nginx did not start listening")


@pytest.fixture
async def gateway(database: str, tmp_path: Path, loopback_site) -> AsyncIterator[Gateway]:
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        """The protected service: says what reached it."""
        seen.append({"path": request.path, **request.headers})
        return web.json_response({"path": request.path, "headers": dict(request.headers)})

    upstream = await loopback_site(echo)
    # As the README says: tokengate trusts the gateway's X-Forwarded-For.
    config = make_config(tmp_path, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    async for tokengate in start_server(database, config):
        workdir = tmp_path / "nginx"
        workdir.mkdir()
        listen = free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(
            nginx_conf(workdir, listen=listen, tokengate=port_of(tokengate.url), upstream=port_of(upstream)),
            encoding="utf-8",
        )
        command = [NGINX, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"nginx refused the README configuration:\n{checked.stderr}"
        process = subprocess.Popen([*command, "-g", "daemon off;"])
        try:
            await wait_listening(listen, process, workdir / "error.log")
            yield Gateway(f"http://127.0.0.1:{listen}", tokengate, seen)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


async def test_permitted_tokens_reach_the_service_with_who_is_calling(gateway):
    seeded = await gateway.tokengate.bootstrap()
    job_viewer = await store_service_token(gateway.tokengate, seeded.account_id, [Grant("JOB_VIEWER")])

    # A client cannot pose as someone else: the gateway always overwrites these headers.
    status, body, _ = await gateway.get("/jobs/42", job_viewer, **{"X-Tokengate-Principal": "user:usr_forged"})
    assert status == 200 and body["path"] == "/jobs/42"
    assert body["headers"]["X-Tokengate-Account-Id"] == seeded.account_id
    assert body["headers"]["X-Tokengate-Principal"] == f"service_token:{job_viewer[4:20]}"

    status, body, _ = await gateway.get("/jobs/", seeded.token)  # the admin's personal token: JOBS:WRITE
    assert status == 200 and body["headers"]["X-Tokengate-Principal"] == f"user:{seeded.user_id}"
    assert len(gateway.upstream_seen) == 2


async def test_others_are_stopped_at_the_gateway(gateway):
    seeded = await gateway.tokengate.bootstrap()
    webhooks_only = await store_service_token(gateway.tokengate, seeded.account_id, [Grant("WEBHOOKS_ONLY")])
    forged = "tgs_" + "A" * 54  # well formed, wrong checksum

    status, _, headers = await gateway.get("/jobs/42")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert (await gateway.get("/jobs/42", forged))[0] == 401
    assert (await gateway.get("/jobs/42", webhooks_only))[0] == 403
    assert gateway.upstream_seen == []


async def test_metrics_count_what_the_gateway_asked(gateway):
    """`curl /metrics` after traffic through the gateway: every metric shows the traffic where it went."""
    seeded = await gateway.tokengate.bootstrap()
    webhooks_only = await store_service_token(gateway.tokengate, seeded.account_id, [Grant("WEBHOOKS_ONLY")])
    forged = "tgs_" + "A" * 54  # well formed, wrong checksum
    for token, times in [(seeded.token, 3), (None, 2), (forged, 1), (webhooks_only, 1)]:
        for _ in range(times):
            await gateway.get("/jobs/1", token)
    await gateway.tokengate.gql("{ account { members { id } } }", token=webhooks_only)  # a field-level denial

    async with aiohttp.ClientSession() as curl:  # a fresh client, as a Prometheus scraper is
        async with curl.get(gateway.tokengate.url + "/metrics") as response:
            assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
    requests = "tokengate_http_requests_total"
    assert metric(text, requests, route="/auth/check", status="200") == 3
    assert metric(text, requests, route="/auth/check", status="401") == 3
    assert metric(text, requests, route="/auth/check", status="403") == 1
    assert metric(text, requests, route="/graphql", status="200") == 1
    authentications = "tokengate_authentications_total"
    assert metric(text, authentications, outcome="ok") == 5
    assert metric(text, authentications, outcome="missing") == 2
    assert metric(text, authentications, outcome="malformed") == 1
    assert metric(text, "tokengate_token_validation_seconds_count") == 8
    assert metric(text, "tokengate_token_validation_seconds_sum") > 0
    assert metric(text, "tokengate_permission_denials_total", resource="MEMBERS", access="READ") == 1
    # Each token is looked up once, then answered from the cache.
    assert metric(text, "tokengate_principal_cache", stat="misses") == 2
    assert metric(text, "tokengate_principal_cache", stat="hits") == 3
    pool = [metric(text, "tokengate_db_pool_connections", state=state) for state in ("in_use", "idle")]
    assert sum(pool) >= 1
