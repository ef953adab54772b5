"""Browser sessions at the gate: a session cookie's value becomes its user's principal, read from the database.

No cache: every request carried by a session reads (and touches) its row, so a session ended anywhere (sign
out, sign out everywhere, a new invitation, deactivation) is refused by every instance from the next request.
Sessions serve the settings pages, a few requests a minute per person; tokens keep the cached hot path.
"""

from __future__ import annotations

import asyncpg

from tokengate.core.browser_sessions import secret_hashes
from tokengate.core.policy import Principal
from tokengate.store import sign_in as sign_in_store


class SessionReader:
    def __init__(self, pool: asyncpg.Pool, keys: tuple[bytes, ...], idle_seconds: float):
        self.pool = pool
        self.keys = keys
        self.idle_seconds = idle_seconds

    async def principal(self, secret: str) -> Principal | None:
        """The principal of the live session this cookie value names (its idle timeout moved on), or None."""
        hashes = secret_hashes(self.keys, secret)
        if hashes is None:
            return None
        return await sign_in_store.use_session(self.pool, hashes, self.idle_seconds)
