"""API fixtures: a server behind a pretend proxy (the tests connect from 127.0.0.1, which is trusted, so each
request can present any client address in X-Forwarded-For), and a server in its own thread for synchronous
drivers."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.api.live_server import LiveServer
from tests.conftest import Server, make_config, start_server

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def from_address(address: str) -> dict[str, str]:
    """Headers that make a request come from ``address`` (through the trusted loopback proxy)."""
    return {"X-Forwarded-For": address}


@pytest.fixture
async def proxied(database: str, tmp_path: Path) -> AsyncIterator[Server]:
    async for running in start_server(database, make_config(tmp_path, trusted_proxies=LOOPBACK)):
        yield running


@pytest.fixture
def live_server(database: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A server in its own thread and loop, for synchronous drivers (hypothesis, schemathesis)."""
    with LiveServer(database, make_config(tmp_path)) as running:
        yield running
