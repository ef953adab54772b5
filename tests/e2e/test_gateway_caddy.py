"""A real Caddy (Debian's `caddy`) in front of a service, asking tokengate through `forward_auth`, configured
with the very Caddyfile docs/gateways.md shows (read from there, so the two cannot drift apart)."""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import Seeded, free_port, make_config, start_server, store_service_token
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

CADDY = shutil.which("caddy") or "/usr/bin/caddy"
# The documented example addresses, and what this test puts in their place.
DOC_SITE = "http://127.0.0.1:8000 {"
DOC_TOKENGATE = "forward_auth 127.0.0.1:8080 {"
DOC_UPSTREAM = "reverse_proxy 127.0.0.1:9000"
DOC_PROJECT = "projectId=prj_…"
# The documented guard against paths the service could read otherwise than the route did.
DOC_PATH_GUARD = "handle @unclean {\n\t\trespond 400\n\t}"
CREATE_PROJECT = "mutation($name: String!) { createProject(name: $name) { id } }"
SET_IP_RULES = "mutation($rules: [IpRuleInput!]!) { setIpRestrictions(enabled: true, rules: $rules) { enabled } }"
ATTACKER = "127.0.0.2"  # a client address of its own on loopback


def caddyfile(*, listen: int, tokengate: int, upstream: int, project: str, guarded: bool = True) -> str:
    config = documented_config(
        "caddyfile",
        [
            # Caddy binds every interface unless told; this test's gateway is for loopback only.
            (DOC_SITE, f"http://127.0.0.1:{listen} {{\n\tbind 127.0.0.1"),
            (DOC_TOKENGATE, f"forward_auth 127.0.0.1:{tokengate} {{"),
            (DOC_UPSTREAM, f"reverse_proxy 127.0.0.1:{upstream}"),
            (DOC_PROJECT, f"projectId={project}"),
        ],
    )
    if not guarded:
        assert DOC_PATH_GUARD in config, "the documented Caddyfile no longer refuses dot segments as this test expects"
        config = config.replace(DOC_PATH_GUARD, "")
    return config


@asynccontextmanager
async def caddy(workdir: Path, config: str, listen: int) -> AsyncIterator[str]:
    """`caddy run` on ``config`` (its state and logs in ``workdir``), listening on ``listen``; yields its origin."""
    workdir.mkdir()
    path = workdir / "Caddyfile"
    path.write_text(config, encoding="utf-8")
    # Caddy keeps its autosaved config and certificates under these: the test's own directory, not $HOME.
    env = {"HOME": str(workdir), "XDG_CONFIG_HOME": str(workdir / "config"), "XDG_DATA_HOME": str(workdir / "data")}
    argv = [CADDY, "run", "--config", str(path), "--adapter", "caddyfile"]
    async with running("caddy", argv, port=listen, log=workdir / "caddy.log", env=env):
        yield f"http://127.0.0.1:{listen}"


@dataclass
class Deployment:
    gateway: Gateway
    admin: Seeded
    project: str  # the project of the documented /deploy/ route
    other_project: str
    start_caddy: Callable[..., AbstractAsyncContextManager[str]]
    stop_tokengate: Callable[[], Awaitable[None]]


@pytest.fixture
async def deployment(database: str, tmp_path: Path, loopback_site) -> AsyncIterator[Deployment]:
    upstream, seen = await protected_service(loopback_site)
    # As the docs say: tokengate trusts the gateway's X-Forwarded-For.
    config = make_config(tmp_path, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    servers = start_server(database, config)
    tokengate = await anext(servers)
    try:
        admin = await tokengate.bootstrap()
        projects = [
            (await tokengate.gql(CREATE_PROJECT, {"name": name}, token=admin.token)).data["createProject"]["id"]
            for name in ("deployed", "other")
        ]

        def start_caddy(name: str = "caddy", *, guarded: bool = True) -> AbstractAsyncContextManager[str]:
            listen = free_port()
            config = caddyfile(
                listen=listen,
                tokengate=port_of(tokengate.url),
                upstream=port_of(upstream),
                project=projects[0],
                guarded=guarded,
            )
            return caddy(tmp_path / name, config, listen)

        async with start_caddy() as url:
            yield Deployment(Gateway(url, tokengate, seen), admin, *projects, start_caddy, lambda: anext(servers, None))
    finally:
        await anext(servers, None)  # start_server's own clean-up (once; a stopped server is left as it is)


async def test_permitted_tokens_reach_the_service_with_who_is_calling(deployment):
    gateway, admin = deployment.gateway, deployment.admin
    job_viewer = await store_service_token(gateway.tokengate, admin.account_id, [Grant("JOB_VIEWER")])
    # A client cannot pose as someone else, nor add X-Tokengate-* headers of its own: the service gets
    # exactly tokengate's three, once each.
    forged = {**FORGED_IDENTITY, "X-Tokengate-Resource": "ACCOUNT_SETTINGS", "X-Tokengate-Scope": "all"}
    status, body, _ = await gateway.get("/jobs/42", job_viewer, **forged)
    assert status == 200 and body["path"] == "/jobs/42"
    assert identity_received(gateway.upstream_seen[0]) == identity(
        admin.account_id, f"service_token:{job_viewer[4:20]}", "SERVICE_TOKEN"
    )

    status, body, _ = await gateway.get("/jobs/", admin.token)  # the admin's personal token
    assert status == 200 and body["headers"]["X-Tokengate-Principal"] == f"user:{admin.user_id}"
    assert body["headers"]["X-Tokengate-Principal-Kind"] == "USER"
    assert len(gateway.upstream_seen) == 2


async def test_others_are_stopped_at_the_gateway(deployment):
    gateway, admin = deployment.gateway, deployment.admin
    webhooks_only = await store_service_token(gateway.tokengate, admin.account_id, [Grant("WEBHOOKS_ONLY")])
    forged = "tgs_" + "A" * 54  # well formed, wrong checksum

    status, body, headers = await gateway.get("/jobs/42")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await gateway.get("/jobs/42", forged))[0] == 401
    status, body, headers = await gateway.get("/jobs/42", webhooks_only)
    assert status == 403 and body["errors"][0]["message"].startswith("requires JOBS:READ")
    assert "X-Tokengate-Account-Id" not in headers
    assert (await gateway.get("/elsewhere", admin.token))[0] == 404  # no route: not passed on either
    assert gateway.upstream_seen == []


async def test_ip_restrictions_see_the_client_behind_the_gateway(deployment):
    gateway, admin = deployment.gateway, deployment.admin
    job_viewer = await store_service_token(gateway.tokengate, admin.account_id, [Grant("JOB_VIEWER")])
    attacker = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(ATTACKER, 0)))
    async with attacker:
        # Before any rule, the token works from either address.
        assert (await gateway.get("/jobs/1", job_viewer))[0] == 200
        assert (await gateway.request("GET", "/jobs/1", job_viewer, session=attacker))[0] == 200
        rules = [{"name": "attackers", "type": "DENY", "cidrs": [f"{ATTACKER}/32"]}]
        reply = await gateway.tokengate.gql(SET_IP_RULES, {"rules": rules}, token=admin.token)
        assert reply.errors == [], reply.body

        status, body, _ = await gateway.request("GET", "/jobs/1", job_viewer, session=attacker)
        assert status == 403 and body["errors"][0]["message"] == "Forbidden: Access denied"
        # Caddy replaces a client's own X-Forwarded-For: claiming the allowed address does not help.
        spoofed = await gateway.request(
            "GET", "/jobs/1", job_viewer, session=attacker, **{"X-Forwarded-For": "127.0.0.1"}
        )
        assert spoofed[0] == 403
        assert (await gateway.get("/jobs/1", job_viewer))[0] == 200  # from the allowed address: still fine
    assert len(gateway.upstream_seen) == 3


async def test_a_client_cannot_change_the_question(deployment):
    """The route's question (resource, access, project) is the gateway's: a query string, X-Tokengate-*
    question headers or a path with dot segments sent by the client change nothing."""
    gateway, admin, tokengate = deployment.gateway, deployment.admin, deployment.gateway.tokengate
    webhooks_only = await store_service_token(tokengate, admin.account_id, [Grant("WEBHOOKS_ONLY")])
    job_viewer = await store_service_token(tokengate, admin.account_id, [Grant("JOB_VIEWER")])
    runs_other = await store_service_token(
        tokengate, admin.account_id, [Grant("JOB_ADMIN", False, (deployment.other_project,))]
    )
    runs_deployed = await store_service_token(
        tokengate, admin.account_id, [Grant("JOB_ADMIN", False, (deployment.project,))]
    )
    # Precondition: asked the client's questions, tokengate would let each of these tokens through.
    for token, question in [
        (webhooks_only, "?resource=WEBHOOKS&access=READ"),
        (runs_other, f"?resource=JOBS&access=WRITE&projectId={deployment.other_project}"),
    ]:
        status, _, _ = await tokengate.get("/auth/check" + question, headers={"Authorization": f"Bearer {token}"})
        assert status == 200, question
    by_headers = {"X-Tokengate-Resource": "WEBHOOKS", "X-Tokengate-Access": "READ"}
    status, _, _ = await tokengate.get(
        "/auth/check/jobs/1", headers={"Authorization": f"Bearer {webhooks_only}", **by_headers}
    )
    assert status == 200

    # Through the gateway the route's question stands.
    status, _, _ = await gateway.get("/jobs/1?resource=WEBHOOKS&access=READ", webhooks_only, **by_headers)
    assert status == 403
    other = deployment.other_project
    status, _, _ = await gateway.get(f"/deploy/1?projectId={other}", runs_other, **{"X-Tokengate-Project-Id": other})
    assert status == 403
    assert gateway.upstream_seen == []
    status, _, _ = await gateway.get("/deploy/1", runs_deployed)  # the route's own project: allowed
    assert status == 200 and len(gateway.upstream_seen) == 1

    # Dot segments: Caddy routes on the cleaned path but passes the path on as sent. Without the documented
    # guard a JOBS:READ answer lets a path the service may read as /deploy/... through.
    async with deployment.start_caddy("unguarded", guarded=False) as unguarded:
        status, body, _ = await Gateway(unguarded, tokengate).get("/deploy/../jobs/1", job_viewer)
        assert status == 200 and body["path"].startswith("/deploy/")
    gateway.upstream_seen.clear()
    for path in ["/deploy/../jobs/1", "/deploy/%2e%2e/jobs/1", "/deploy%2F..%2Fjobs/1", "/jobs//1", "/jobs/./1"]:
        status, _, _ = await gateway.get(path, job_viewer)
        assert status == 400, path
    assert gateway.upstream_seen == []


async def test_the_gateway_fails_closed_when_tokengate_is_down(deployment):
    gateway, admin = deployment.gateway, deployment.admin
    job_viewer = await store_service_token(gateway.tokengate, admin.account_id, [Grant("JOB_VIEWER")])
    assert (await gateway.get("/jobs/1", job_viewer))[0] == 200
    await deployment.stop_tokengate()

    async with aiohttp.ClientSession() as client:  # the test client of the stopped server is closed with it
        for token in (job_viewer, admin.token, None):
            status, _, _ = await gateway.request("GET", "/jobs/1", token, session=client)
            assert status == 502, status
    assert len(gateway.upstream_seen) == 1  # only the request made while tokengate was up
