"""Work batched in memory and written by a background task: every few seconds, and once more on stop."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging

log = logging.getLogger("tokengate.jobs.batching")


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has stopped."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class PeriodicFlush:
    """Calls ``flush()`` (plain or async) every ``interval`` seconds from ``start()`` until ``stop()``."""

    interval: float = 5.0
    task_name: str = "periodic-flush"

    def flush(self) -> object:
        raise NotImplementedError

    async def _flush(self) -> None:
        result = self.flush()
        if inspect.isawaitable(result):
            await result

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._flush()
            except Exception:  # keep collecting whatever went wrong this time
                log.exception("%s failed", self.task_name)

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        """Stop the periodic flush and write what is left."""
        task, self._task = self._task, None
        await stop_task(task)
        await self._flush()
