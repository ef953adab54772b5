"""CPU-heavy GraphQL work, off the event loop: parsing and validating a document the server has not seen,
and executing introspection.

Validation costs tens of microseconds per field (graphql-core runs three dozen rules over the document), so
a new document of a few thousand tokens, or a full introspection (about 17 ms), would hold every other
request for that long. Here it runs on one worker thread, shared by the process: the GIL still serialises
Python, but the event loop takes it back within the switch interval (lowered to 1 ms while the worker exists),
so an expensive document delays other requests by about a millisecond instead of by its own cost. Documents
already seen come from the caches and never reach the worker. At most ``MAX_PENDING`` tasks run or wait;
past that a request is refused at once (503) rather than queued without end.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

from tokengate.core.errors import Overloaded

T = TypeVar("T")

MAX_PENDING: Final = 32
SWITCH_INTERVAL: Final = 0.001  # seconds the worker may keep the GIL while the event loop waits for it


class WorkerBusy(Overloaded):
    def __init__(self) -> None:
        super().__init__("the server is busy preparing other documents; try again shortly")


class Worker:
    """One thread for heavy work; ``run`` awaits a function on it (``WorkerBusy`` when too much is pending)."""

    def __init__(self, max_pending: int = MAX_PENDING):
        self.max_pending = max_pending
        self.pending = 0
        self.done = 0  # tasks run since start (tests read it to see what was offloaded)
        self._lock = threading.Lock()  # several event loops (test servers in threads) may share the worker
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            sys.setswitchinterval(SWITCH_INTERVAL)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokengate-graphql")
        return self._executor

    async def run(self, function: Callable[..., T], *args: object) -> T:
        with self._lock:
            if self.pending >= self.max_pending:
                raise WorkerBusy
            self.pending += 1
            pool = self._pool()
        future = pool.submit(function, *args)
        future.add_done_callback(self._release)  # when the thread is done, even if the request gave up
        return await asyncio.wrap_future(future)

    def _release(self, _: object) -> None:
        with self._lock:
            self.pending -= 1
            self.done += 1


WORKER: Final = Worker()
