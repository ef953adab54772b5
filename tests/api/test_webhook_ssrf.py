"""The SSRF guard: private, loopback and link-local receivers are refused when a webhook is saved and, after
DNS, when the sender connects, unless the operator allows private networks (TOKENGATE_WEBHOOK_ALLOW_PRIVATE).
No test here sends anything off this machine: refused addresses are never connected to."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from typing import Any

import aiohttp.abc
import pytest

from tests.api import webhook_calls as hooks
from tests.api.webhook_calls import FAST, events_server, receiving
from tests.conftest import TEST_SECRET_KEY
from tokengate.config import parse_secret_keys
from tokengate.core.webhook_events import seal_secret
from tokengate.jobs.webhook_delivery import (
    REFUSED_ADDRESS,
    Outcome,
    RefusedAddress,
    WebhookSender,
    guarded_socket,
)
from tokengate.store.webhooks import ClaimedDelivery

KEYS = parse_secret_keys(TEST_SECRET_KEY)
PRIVATE_URLS = [
    "https://10.1.2.3/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.10/hook",
    "https://127.0.0.1:8443/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/hook",
    "https://0.0.0.0/hook",
    "https://[::1]/hook",
    "https://[fd00::1]/hook",
    "https://[fe80::1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://[64:ff9b::a00:1]/hook",
    "https://localhost/hook",
    "https://api.localhost/hook",
    "http://hooks.example.com/hook",  # plain http
]
# Numeric spellings of loopback that resolvers read as 127.0.0.1 or 0.0.0.0 (inet_aton), and a trailing dot.
LOOPBACK_SPELLINGS = [
    "https://2130706433/hook",
    "https://0x7f.1/hook",
    "https://0177.0.0.1/hook",
    "https://127.1/hook",
    "https://0/hook",
    "https://127.0.0.1./hook",
    "https://localhost./hook",
]
NEVER_SENT = ["service_token.unused"]  # nothing in these tests makes that event, so nothing is sent anywhere


async def test_a_private_range_url_is_refused_without_the_operator_flag(server):
    admin = await server.bootstrap()
    for url in PRIVATE_URLS + LOOPBACK_SPELLINGS:
        reply = await hooks.create(server, admin.token, url, NEVER_SENT)
        assert reply.codes == ["BAD_USER_INPUT"], url
        assert reply.data == {"createWebhook": None}
    assert (await server.gql(hooks.LIST, token=admin.token)).data["account"]["webhooks"] == []
    # The caller could create webhooks: a public receiver is accepted, by name and by address.
    for url in ("https://hooks.example.com/tokengate", "https://93.184.216.34:8443/hook", "https://[2606:4700::1]/"):
        assert (await hooks.create(server, admin.token, url, NEVER_SENT)).errors == [], url
    listed = (await server.gql(hooks.LIST, token=admin.token)).data["account"]["webhooks"]
    assert len(listed) == 3
    # Changing a webhook to a private URL is refused the same way.
    reply = await server.gql(hooks.UPDATE, {"id": listed[0]["id"], "url": "https://10.0.0.1/"}, token=admin.token)
    assert reply.codes == ["BAD_USER_INPUT"]
    listed = (await server.gql(hooks.LIST, token=admin.token)).data["account"]["webhooks"]
    assert listed[0]["url"] == "https://hooks.example.com/tokengate"


async def test_with_the_operator_flag_private_urls_are_accepted(database, tmp_path):
    async with events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        for url in PRIVATE_URLS:
            assert (await hooks.create(server, admin.token, url, NEVER_SENT)).errors == [], url


class Rebinding(aiohttp.abc.AbstractResolver):
    """DNS that answers a public-looking name with a loopback address (what a rebinding attack does)."""

    def __init__(self, address: str):
        self.address = address

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[Any]:
        return [
            {"hostname": host, "host": self.address, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
        ]

    async def close(self) -> None:
        pass


def claimed(url: str) -> ClaimedDelivery:
    sealed, key_id = seal_secret("whsec_" + "A" * 32, KEYS[0])
    now = datetime.now(UTC)
    return ClaimedDelivery(
        id=1,
        webhook_id="whk_test",
        account_id="acc_test",
        event_id="audit-1",
        event_type="project.created",
        subject="prj_1",
        occurred_at=now,
        data={"details": {}},
        attempts=1,
        created_at=now,
        url=url,
        sealed_secret=sealed,
        secret_key_id=key_id,
        failing=False,
    )


async def send_once(url: str, allow_private: bool, resolver: aiohttp.abc.AbstractResolver | None = None) -> Outcome:
    sender = WebhookSender(KEYS, FAST, allow_private=allow_private, resolver=resolver)
    await sender.open()
    try:
        return await sender.send(claimed(url))
    finally:
        await sender.close()


async def test_the_sender_refuses_a_name_that_resolves_to_loopback_before_connecting():
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    listener = await asyncio.start_server(count, "127.0.0.1", 0)
    url = f"https://rebound.example:{listener.sockets[0].getsockname()[1]}/hook"
    try:
        outcome = await send_once(url, allow_private=False, resolver=Rebinding("127.0.0.1"))
        assert outcome.status is None and outcome.error == REFUSED_ADDRESS
        assert connections == 0
        # The same name resolving to the listener is connected to when the address rule passes: the refusal
        # above came from the address, not from the name or the port.
        outcome = await send_once(url, allow_private=True, resolver=Rebinding("127.0.0.1"))
        assert outcome.status is None and outcome.error != REFUSED_ADDRESS
        assert connections == 1
    finally:
        listener.close()
        await listener.wait_closed()


async def test_a_receiver_found_through_dns_is_sent_to_when_private_networks_are_allowed():
    async with receiving() as receiver:
        url = f"http://rebound.example:{receiver.port}/hooks/tokengate"
        outcome = await send_once(url, allow_private=True, resolver=Rebinding("127.0.0.1"))
        assert outcome.delivered and outcome.status == 200 and len(receiver.received) == 1


async def test_a_webhook_saved_while_allowed_is_refused_once_the_flag_is_off():
    async with receiving() as receiver:
        outcome = await send_once(receiver.url, allow_private=False)
        assert outcome.error is not None and outcome.error.startswith("url not allowed")
        assert receiver.received == []


async def test_redirects_are_not_followed():
    async with receiving(status=307) as receiver:
        outcome = await send_once(receiver.url, allow_private=True)
        assert outcome.status == 307 and not outcome.delivered and "redirect" in (outcome.error or "")
        assert len(receiver.received) == 1


@pytest.mark.parametrize(
    ("family", "address"),
    [
        (socket.AF_INET, ("127.0.0.1", 443)),
        (socket.AF_INET, ("10.0.0.8", 443)),
        (socket.AF_INET, ("169.254.169.254", 80)),
        (socket.AF_INET6, ("::1", 443, 0, 0)),
        (socket.AF_INET6, ("::ffff:192.168.0.1", 443, 0, 0)),
        (socket.AF_INET6, ("fe80::1%1", 443, 0, 1)),
    ],
)
def test_the_socket_factory_refuses_every_private_address(family, address):
    with pytest.raises(RefusedAddress):
        guarded_socket(False)((family, socket.SOCK_STREAM, 6, "", address))
    guarded_socket(True)((family, socket.SOCK_STREAM, 6, "", address)).close()


def test_the_socket_factory_lets_public_addresses_through():
    guarded_socket(False)((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))).close()
    guarded_socket(False)((socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:4700::1", 443, 0, 0))).close()
