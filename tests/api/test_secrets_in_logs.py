"""The suite-wide no-secret check (tests/conftest.py) hears everything: the service's and its libraries'
loggers at DEBUG, and the access log, which is written without the logging module."""

from __future__ import annotations

import asyncio
import logging

from tests.api.service_token_calls import created, works
from tests.conftest import CAPTURED_OUTPUT, DEBUG_LOGGERS, logs_at_debug_to_root


def test_the_service_and_library_loggers_are_heard_at_debug():
    for name in (*DEBUG_LOGGERS, "aiohttp.server", "aiohttp.access", "asyncpg.pool", "strawberry.execution"):
        assert logs_at_debug_to_root(logging.getLogger(name)), name


async def test_access_log_lines_reach_the_check_and_show_only_a_display_prefix(server):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    before = len(CAPTURED_OUTPUT)
    assert await works(server, token.secret)
    shown = token.secret[:8] + "…"
    for _ in range(200):  # the access log is flushed every 0.2 s: its line comes within seconds
        written = "".join(CAPTURED_OUTPUT[before:])
        if '"tokengate.access"' in written and shown in written:
            break
        await asyncio.sleep(0.05)
    assert '"tokengate.access"' in written and shown in written
    assert token.secret not in written
