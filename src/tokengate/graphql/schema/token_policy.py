"""The account's token policy in GraphQL: ``Account.tokenPolicy`` and ``setTokenPolicy``."""

from __future__ import annotations

import strawberry

from tokengate.core.lifetimes import DEFAULT_USER_TOKEN_MAX_LIFETIME_DAYS, MAX_LIFETIME_DAYS, TokenPolicy
from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.directives import requires
from tokengate.graphql.schema.enums import Access, Resource
from tokengate.services import token_policy


@strawberry.type(name="TokenPolicy", description="Rules for the lifetime of new tokens of the account.")
class TokenPolicyView:
    require_service_token_expiry: bool = strawberry.field(
        description="createServiceToken and rotateServiceToken need an expiry (rotation keeps the old one's)."
    )
    service_token_max_lifetime_days: int | None = strawberry.field(
        description="The longest a new service token may live; null: no limit."
    )
    user_token_max_lifetime_days: int = strawberry.field(
        description="The longest (and default) lifetime of a new personal token."
    )

    @classmethod
    def of(cls, policy: TokenPolicy) -> TokenPolicyView:
        return cls(
            require_service_token_expiry=policy.require_service_token_expiry,
            service_token_max_lifetime_days=policy.service_token_max_lifetime_days,
            user_token_max_lifetime_days=policy.user_token_max_lifetime_days,
        )


@strawberry.input
class TokenPolicyInput:
    require_service_token_expiry: bool
    service_token_max_lifetime_days: int | None = strawberry.field(
        default=None, description=f"1 to {MAX_LIFETIME_DAYS}, or null for no limit."
    )
    user_token_max_lifetime_days: int = strawberry.field(
        default=DEFAULT_USER_TOKEN_MAX_LIFETIME_DAYS, description=f"1 to {MAX_LIFETIME_DAYS}."
    )


@strawberry.type
class TokenPolicyMutations:
    @requires(
        Resource.ACCOUNT_SETTINGS,
        Access.WRITE,
        description="Replace the account's token policy; existing tokens are not changed.",
    )
    async def set_token_policy(self, info: Info, input: TokenPolicyInput) -> TokenPolicyView | None:
        context = info.context
        policy = TokenPolicy(
            require_service_token_expiry=input.require_service_token_expiry,
            service_token_max_lifetime_days=input.service_token_max_lifetime_days,
            user_token_max_lifetime_days=input.user_token_max_lifetime_days,
        )
        saved = await token_policy.set_policy(context.backend, context.actor, context.caller.account_id, policy)
        return TokenPolicyView.of(saved)
