"""A webhook receiver on loopback, and the webhook mutations and queries as a client sends them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.conftest import Reply, Server, free_port, make_config, start_server
from tokengate.config import Config, WebhookTiming
from tokengate.core.webhook_events import SIGNATURE_HEADER, verify_signature

# Fast enough for tests: retries from 0.2 s doubling to 1 s, an idle poll every 0.2 s.
FAST = WebhookTiming(poll_seconds=0.2, retry_first_seconds=0.2, retry_max_seconds=1.0, request_timeout_seconds=3.0)

CREATE = """mutation($url: String!, $events: [String!]!, $description: String) {
  createWebhook(url: $url, events: $events, description: $description) {
    secret webhook { id url events description failingSince } } }"""
UPDATE = """mutation($id: ID!, $url: String, $events: [String!], $description: String) {
  updateWebhook(id: $id, url: $url, events: $events, description: $description) { id url events description } }"""
DELETE = "mutation($id: ID!) { deleteWebhook(id: $id) { id } }"
REDELIVER = "mutation($id: ID!) { redeliverWebhookEvent(id: $id) { id eventId status attempts } }"
SEND_TEST = "mutation($id: ID!) { sendTestWebhookEvent(id: $id) { id eventId eventType status attempts } }"
ROTATE_SECRET = """mutation($id: ID!, $seconds: Int) { rotateWebhookSecret(id: $id, expiresPreviousInSeconds: $seconds) {
  secret webhook { id previousSecretExpiresAt } } }"""
LIST = "{ account { webhooks { id url events description failingSince } } }"
DELIVERIES = """query($first: Int, $after: String) { account { webhooks { id failingSince
  deliveries(first: $first, after: $after) {
    edges { cursor node { id eventId eventType status attempts responseCode latencyMs error createdAt
                          lastAttemptAt nextAttemptAt deliveredAt } }
    pageInfo { hasNextPage endCursor } } } } }"""


def events_config(tmp_path: Path, **overrides: Any) -> Config:
    """A server that may send to the loopback receiver (TOKENGATE_WEBHOOK_ALLOW_PRIVATE), paced for tests."""
    overrides.setdefault("webhook_allow_private", True)
    overrides.setdefault("webhook_timing", FAST)
    return make_config(tmp_path, **overrides)


@asynccontextmanager
async def events_server(database: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[Server]:
    async for server in start_server(database, events_config(tmp_path, **overrides)):
        yield server


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        return verify_signature(self.headers.get(SIGNATURE_HEADER, ""), secret, self.body, time.time())


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1 that records what it is sent; it can be down, slow or failing."""

    port: int = field(default_factory=free_port)
    status: int = 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tokengate"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.received.append(Received(dict(request.headers), body))
        return web.Response(status=self.status, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/tokengate", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.received if r.event["type"] == event_type]

    async def wait_for(self, count: int, event_type: str | None = None, seconds: float = 15.0) -> list[Received]:
        """At least ``count`` events (of this type) received; then a pause, so that any extra one shows."""
        deadline = time.monotonic() + seconds
        while True:
            got = self.of_type(event_type) if event_type else self.received
            if len(got) >= count:
                await asyncio.sleep(0.5)
                return self.of_type(event_type) if event_type else list(self.received)
            assert time.monotonic() < deadline, f"{len(got)} of {count} events received in {seconds} s"
            await asyncio.sleep(0.05)


@asynccontextmanager
async def receiving(**options: Any) -> AsyncIterator[Receiver]:
    receiver = Receiver(**options)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@dataclass
class CreatedWebhook:
    id: str
    secret: str
    webhook: dict[str, Any]


async def create(server: Server, caller: str, url: str, events: list[str], description: str = "") -> Reply:
    reply = await server.gql(CREATE, {"url": url, "events": events, "description": description}, token=caller)
    answer = (reply.data or {}).get("createWebhook")
    if answer and answer.get("secret"):
        server.issued.append(answer["secret"])  # checked against every log line at the end of the run
    return reply


async def created(server: Server, caller: str, url: str, events: list[str], description: str = "") -> CreatedWebhook:
    reply = await create(server, caller, url, events, description)
    assert reply.errors == [], reply.body
    answer = reply.data["createWebhook"]
    return CreatedWebhook(answer["webhook"]["id"], answer["secret"], answer["webhook"])


async def deliveries(server: Server, caller: str, webhook_id: str, first: int = 100) -> list[dict[str, Any]]:
    reply = await server.gql(DELIVERIES, {"first": first}, token=caller)
    assert reply.errors == [], reply.body
    (webhook,) = [w for w in reply.data["account"]["webhooks"] if w["id"] == webhook_id]
    return [edge["node"] for edge in webhook["deliveries"]["edges"]]


async def eventually(condition: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        await asyncio.sleep(0.05)
