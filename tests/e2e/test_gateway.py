"""A real nginx in front of a service, asking tokengate through `auth_request`, configured with the very
snippet docs/gateways.md shows (read from there, so the two cannot drift apart)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.api.test_observability import metric
from tests.conftest import free_port, make_config, start_server, store_service_token
from tests.e2e.gateways import (
    FORGED_IDENTITY,
    Gateway,
    documented_config,
    identity,
    identity_received,
    port_of,
    protected_service,
)
from tests.e2e.processes import running
from tokengate.core.policy import Grant

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# The documented example addresses, and what this test puts in their place.
DOC_TOKENGATE = "server 127.0.0.1:8080;"
DOC_LISTEN = "listen 80;"
DOC_UPSTREAM = "proxy_pass http://127.0.0.1:9000;"


def nginx_conf(workdir: Path, *, listen: int, tokengate: int, upstream: int) -> str:
    """The documented snippet on this test's ports, inside the minimal main/events/http frame nginx needs."""
    snippet = documented_config(
        "nginx",
        [
            (DOC_TOKENGATE, f"server 127.0.0.1:{tokengate};"),
            (DOC_LISTEN, f"listen 127.0.0.1:{listen};"),
            (DOC_UPSTREAM, f"proxy_pass http://127.0.0.1:{upstream};"),
        ],
    )
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


@pytest.fixture
async def gateway(database: str, tmp_path: Path, loopback_site) -> AsyncIterator[Gateway]:
    upstream, seen = await protected_service(loopback_site)
    # As the docs say: tokengate trusts the gateway's X-Forwarded-For.
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
        log = workdir / "error.log"
        command = [NGINX, "-p", str(workdir), "-e", str(log), "-c", str(conf)]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"nginx refused the documented configuration:\n{checked.stderr}"
        async with running("nginx", [*command, "-g", "daemon off;"], port=listen, log=log):
            yield Gateway(f"http://127.0.0.1:{listen}", tokengate, seen)


async def test_permitted_tokens_reach_the_service_with_who_is_calling(gateway):
    seeded = await gateway.tokengate.bootstrap()
    job_viewer = await store_service_token(gateway.tokengate, seeded.account_id, [Grant("JOB_VIEWER")])

    # A client cannot pose as someone else: the gateway always overwrites these headers.
    status, body, _ = await gateway.get("/jobs/42", job_viewer, **FORGED_IDENTITY)
    assert status == 200 and body["path"] == "/jobs/42"
    assert identity_received(gateway.upstream_seen[0]) == identity(
        seeded.account_id, f"service_token:{job_viewer[4:20]}", "SERVICE_TOKEN"
    )

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
