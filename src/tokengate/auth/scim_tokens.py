"""SCIM tokens (``tgp_…``) become the provider's principal, for /scim/v2 only.

No cache: every SCIM request reads its token (one indexed query), so a revocation holds from the next request
on every instance. Provisioning is a trickle of requests, not a hot path.
"""

from __future__ import annotations

from tokengate.core import tokens
from tokengate.core.policy import ACCOUNT_ADMIN, SCIM_TOKEN, Grant, Principal
from tokengate.store import Executor
from tokengate.store import scim as scim_store

# What the provider may do through its door: change any member's record and state (services/scim.py).
PROVIDER_GRANTS = (Grant(ACCOUNT_ADMIN),)


def display_prefix(token_id: str) -> str:
    return tokens.SCIM_PREFIX + token_id[:4] + "…"


async def scim_principal(db: Executor, keys: tuple[bytes, ...], text: str) -> Principal | None:
    """The principal of a usable SCIM token whose text this is, or None (malformed, unknown, wrong secret,
    revoked: alike)."""
    try:
        token_id = tokens.parse_scim_token(text)
    except tokens.MalformedToken:
        return None
    found = await scim_store.credential(db, token_id)
    if found is None or not found.usable or not tokens.hash_matches(text, found.hash, keys):
        return None
    await scim_store.touch(db, found.id)
    return Principal(
        kind=SCIM_TOKEN,
        token_id=found.id,
        display_prefix=display_prefix(found.id),
        account_id=found.account_id,
        account_name=found.account_name,
        account_plan=found.account_plan,
        user_id=None,
        license=None,
        grants=PROVIDER_GRANTS,
        project_ids=found.project_ids,
    )
