"""argon2id verification of legacy tokens, off the event loop and bounded.

A legacy token is found by its 8-character hint and proved by argon2id (about 100 ms of CPU). Verifications
run on a small pool of threads at low CPU priority (nice 10; libsodium releases the GIL), so the event loop keeps
answering while they run; at most ``max_pending`` run or wait at once, and past that a request is refused at
once (503 with Retry-After) instead of queueing behind an attacker's.

A hint that matches no stored token is verified against a dummy hash made with the same parameters, so a miss
costs what a match costs: the answer's timing does not tell whether a hint exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final, TypeVar

from tokengate.core import tokens
from tokengate.core.errors import Overloaded

log = logging.getLogger("tokengate.legacy")

WORKERS: Final = 2
HashOwner = TypeVar("HashOwner")


class VerifierBusy(Overloaded):
    """Too many legacy token verifications are running or waiting: try again shortly."""

    MESSAGE: Final = "too many legacy token verifications at once; try again shortly"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


VERIFIER_NICENESS: Final = 10  # about a tenth of a core the server shares with busy work: behind it, never starved


def _low_priority() -> None:
    """Run this worker thread behind the event loop (Linux: niceness is per thread). Not SCHED_IDLE: on a
    machine busy with other work an idle-class thread never runs, and legacy tokens stop validating at all."""
    with contextlib.suppress(AttributeError, OSError):
        os.nice(VERIFIER_NICENESS)


class LegacyVerifier:
    """Finds which stored argon2id hash, if any, a legacy token's text proves."""

    def __init__(self, max_pending: int = 4, workers: int = WORKERS):
        self.max_pending = max_pending
        self.pending = 0
        self.verifications = 0  # argon2id runs since start (tests and metrics read it)
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="tokengate-argon2id", initializer=_low_priority
        )
        self._dummy: bytes | None = None

    async def first_match(self, text: str, candidates: Sequence[tuple[HashOwner, bytes]]) -> HashOwner | None:
        """The owner of the first hash ``text`` proves; ``VerifierBusy`` when the pool is full."""
        if self.pending >= self.max_pending:
            raise VerifierBusy
        loop = asyncio.get_running_loop()
        self.pending += 1
        hashes = [stored for _, stored in candidates]
        future: Future[int | None] = self._executor.submit(self._matching_index, text, hashes)
        # Released when the thread is done, not when the request gives up: a cancelled wait frees no CPU.
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        index = await asyncio.wrap_future(future)
        return None if index is None else candidates[index][0]

    def _release(self) -> None:
        self.pending -= 1

    def _matching_index(self, text: str, hashes: list[bytes]) -> int | None:
        if not hashes:
            self.verifications += 1
            tokens.legacy_matches(text, self._dummy_hash())
            return None
        for index, stored in enumerate(hashes):
            self.verifications += 1
            if tokens.legacy_matches(text, stored):
                return index
        return None

    def _dummy_hash(self) -> bytes:
        if self._dummy is None:  # made once, in a worker, with the parameters of every stored hash
            self._dummy = tokens.hash_legacy(tokens.new_legacy_secret())
        return self._dummy

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
