"""What the gateway tests share (nginx in test_gateway.py, Caddy in test_gateway_caddy.py): the configuration
from docs/gateways.md, the protected service behind the gateway, which says what reached it, and a client that
calls through the gateway."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from tests.conftest import Server

ROOT = Path(__file__).resolve().parents[2]
GATEWAYS_DOC = ROOT / "docs" / "gateways.md"


def documented_config(language: str, replacements: list[tuple[str, str]]) -> str:
    """The one ```<language> block of docs/gateways.md with its example addresses replaced by the test's: the
    test runs the documented configuration, so the two cannot drift apart."""
    blocks = re.findall(rf"```{language}\n(.*?)```", GATEWAYS_DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, f"docs/gateways.md should show exactly one ```{language} block: the tested configuration"
    config = blocks[0]
    for documented, ours in replacements:
        assert documented in config, f"the documented {language} configuration no longer has {documented!r}"
        config = config.replace(documented, ours)
    return config


# What a client may send to pose as someone else: a gateway replaces each with tokengate's answer.
FORGED_IDENTITY = {
    "X-Tokengate-Account-Id": "acc_forged",
    "X-Tokengate-Principal": "user:usr_forged",
    "X-Tokengate-Principal-Kind": "USER",
}


def identity_received(seen: dict[str, Any]) -> list[tuple[str, str]]:
    """Every X-Tokengate-* header line that reached the service on one request, sorted."""
    return sorted((name, value) for name, value in seen["headers"] if name.lower().startswith("x-tokengate-"))


def identity(account_id: str, principal: str, kind: str) -> list[tuple[str, str]]:
    """The lines the service must receive, as ``identity_received`` lists them: tokengate's, once each."""
    return sorted(
        [
            ("X-Tokengate-Account-Id", account_id),
            ("X-Tokengate-Principal", principal),
            ("X-Tokengate-Principal-Kind", kind),
        ]
    )


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@dataclass
class Gateway:
    url: str
    tokengate: Server
    upstream_seen: list[dict[str, Any]] = field(default_factory=list)

    async def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        **headers: str,
    ) -> tuple[int, Any, Any]:
        """Through the gateway (with the tokengate test client's session unless another is given); ``path`` is
        sent as written, dot segments and escapes included."""
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = URL(self.url + path, encoded=True)
        async with (session or self.tokengate.session).request(method, url, headers=headers) as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body, response.headers

    async def get(self, path: str, token: str | None = None, **headers: str) -> tuple[int, Any, Any]:
        return await self.request("GET", path, token, **headers)


async def protected_service(loopback_site) -> tuple[str, list[dict[str, Any]]]:
    """The service behind the gateway on a loopback port: answers with the path and the headers that reached
    it, and notes them in the returned list."""
    seen: list[dict[str, Any]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append({"path": request.path, "query": request.query_string, "headers": list(request.headers.items())})
        return web.json_response({"path": request.path, "headers": dict(request.headers)})

    return await loopback_site(echo), seen
