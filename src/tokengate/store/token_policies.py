"""Each account's token policy: one row, or none for the defaults."""

from __future__ import annotations

from tokengate.core.lifetimes import TokenPolicy
from tokengate.store import Executor

POLICY_COLUMNS = "require_service_token_expiry, service_token_max_lifetime_days, user_token_max_lifetime_days"
BY_ACCOUNT = "SELECT " + POLICY_COLUMNS + " FROM token_policies WHERE account_id = $1"
UPSERT = (
    """
INSERT INTO token_policies (account_id, require_service_token_expiry, service_token_max_lifetime_days,
                            user_token_max_lifetime_days)
VALUES ($1, $2, $3, $4)
ON CONFLICT (account_id) DO UPDATE SET require_service_token_expiry = EXCLUDED.require_service_token_expiry,
    service_token_max_lifetime_days = EXCLUDED.service_token_max_lifetime_days,
    user_token_max_lifetime_days = EXCLUDED.user_token_max_lifetime_days, updated_at = now()
RETURNING """
    + POLICY_COLUMNS
)


async def policy_of(db: Executor, account_id: str) -> TokenPolicy:
    row = await db.fetchrow(BY_ACCOUNT, account_id)
    return TokenPolicy(**dict(row)) if row else TokenPolicy()


async def save_policy(db: Executor, account_id: str, policy: TokenPolicy) -> TokenPolicy:
    row = await db.fetchrow(
        UPSERT,
        account_id,
        policy.require_service_token_expiry,
        policy.service_token_max_lifetime_days,
        policy.user_token_max_lifetime_days,
    )
    return TokenPolicy(**dict(row))
