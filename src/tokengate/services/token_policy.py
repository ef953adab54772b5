"""An account's token policy: required expiry and maximum lifetimes for new tokens."""

from __future__ import annotations

from tokengate.core.lifetimes import TokenPolicy, check_token_policy
from tokengate.core.policy import require, require_account
from tokengate.services.unit_of_work import Actor, Backend
from tokengate.store import token_policies as token_policy_store


async def set_policy(backend: Backend, actor: Actor, account_id: str, policy: TokenPolicy) -> TokenPolicy:
    """Replace the policy; it applies to tokens created or rotated from now on (existing ones are unchanged)."""
    require_account(actor.principal, account_id)
    require(actor.principal, "ACCOUNT_SETTINGS", "WRITE")
    checked = check_token_policy(policy)
    async with backend.change(actor) as work:
        await work.account(account_id)
        saved = await token_policy_store.save_policy(work.conn, account_id, checked)
        await work.audit(
            account_id,
            "token_policy.updated",
            account_id,
            require_service_token_expiry=saved.require_service_token_expiry,
            service_token_max_lifetime_days=saved.service_token_max_lifetime_days,
            user_token_max_lifetime_days=saved.user_token_max_lifetime_days,
        )
    return saved
