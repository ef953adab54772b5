"""What quotas count, read under the lock that makes the count hold until the change commits."""

from __future__ import annotations

from tokengate.store import Executor
from tokengate.store.tokens import USABLE

# Concurrent changes that count against an account's quota queue on its row, one after the other; NO KEY keeps
# the foreign-key checks of other writes to the account (which take KEY SHARE) from waiting on it.
LOCK_ACCOUNT = "SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE"
USABLE_SERVICE_TOKENS = "SELECT count(*) FROM tokens t WHERE t.account_id = $1 AND t.kind = 'service' AND " + USABLE


async def lock_account(db: Executor, account_id: str) -> bool:
    """Hold the account's row until the transaction ends; False when there is no such account."""
    return await db.fetchval(LOCK_ACCOUNT, account_id) is not None


async def usable_service_tokens(db: Executor, account_id: str) -> int:
    return int(await db.fetchval(USABLE_SERVICE_TOKENS, account_id))
