"""A server behind a pretend proxy: the tests connect from 127.0.0.1, which is trusted, so each request
can present any client address in X-Forwarded-For."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Server, make_config, start_server

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def from_address(address: str) -> dict[str, str]:
    """Headers that make a request come from ``address`` (through the trusted loopback proxy)."""
    return {"X-Forwarded-For": address}


@pytest.fixture
async def proxied(database: str, tmp_path: Path) -> AsyncIterator[Server]:
    async for running in start_server(database, make_config(tmp_path, trusted_proxies=LOOPBACK)):
        yield running
