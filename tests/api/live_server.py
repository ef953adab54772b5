"""A tokengate on loopback served from its own thread and event loop, for tests whose drivers are synchronous
(hypothesis' ``@given``, schemathesis): they call it through ``run``, or over plain HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from tests.conftest import Server, start_server
from tokengate.config import Config

T = TypeVar("T")
TIMEOUT = 60


class LiveServer:
    def __init__(self, database: str, config: Config):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-tokengate", daemon=True)
        self._running = start_server(database, config)
        self.server: Server

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Runs ``coroutine`` on the server's loop and waits for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        self.server = self.run(self._running.__anext__())
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.run(self._finish())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(TIMEOUT)
            self.loop.close()

    async def _finish(self) -> None:
        async for _ in self._running:  # runs start_server past its yield: the runner's cleanup
            pass

    @property
    def url(self) -> str:
        return self.server.url
