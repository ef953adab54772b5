"""Personal tokens in GraphQL: the ``UserToken`` type, ``createUserToken`` and ``deleteUserToken``."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from tokengate.core import global_ids, tokens
from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.enums import TokenState
from tokengate.graphql.schema.node import Node
from tokengate.services import user_tokens
from tokengate.store import Executor
from tokengate.store import tokens as token_store
from tokengate.store.tokens import TokenRecord


@strawberry.type(description="A personal token of a user (its secret is never shown again).")
class UserToken(Node):
    name: str
    display_prefix: str
    state: TokenState  # type: ignore[valid-type]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def of(cls, record: TokenRecord) -> UserToken:
        return cls(
            id=strawberry.ID(global_ids.user_token_id(record.id)),
            name=record.name,
            display_prefix=tokens.display_prefix_for("user", record.format, record.id),
            state=TokenState(tokens.token_state(record.state, record.expires_at, datetime.now(UTC))),
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            expires_at=record.expires_at,
        )


async def user_tokens_of(db: Executor, user_id: str) -> list[UserToken]:
    """A user's personal tokens (deleted and expired ones too, with their state), oldest first."""
    found = await token_store.user_tokens_of_users(db, [user_id])
    return [UserToken.of(record) for record in found[user_id]]


@strawberry.type(description="A personal token with its secret: shown once, never again.")
class UserTokenWithSecret:
    user_token: UserToken
    secret: str
    id: strawberry.ID = strawberry.field(deprecation_reason="Use userToken { id }.")

    def __repr__(self) -> str:
        return f"UserTokenWithSecret(id={self.id!r})"


@strawberry.type
class UserTokenMutations:
    @strawberry.mutation(
        description="A personal token for the calling user; its secret is in this answer only. It expires at "
        "expiresAt, by default (and at the latest) userTokenMaxLifetimeDays from now, and never later than "
        "the personal token making the call."
    )
    async def create_user_token(self, info: Info, name: str, expires_at: datetime | None = None) -> UserTokenWithSecret:
        context = info.context
        issued, record = await user_tokens.create(
            context.backend, context.actor, context.caller.user_id or "", name, expires_at
        )
        token = UserToken.of(record)
        return UserTokenWithSecret(user_token=token, secret=issued.text, id=token.id)

    @strawberry.mutation(
        description="Delete one of your own personal tokens, or (with MEMBERS:WRITE) another member's; "
        "invalid at once on every instance."
    )
    async def delete_user_token(self, info: Info, id: strawberry.ID) -> UserToken:
        context = info.context
        key = global_ids.token_key(str(id), global_ids.USER_TOKEN) or str(id)  # prefixed, or bare as before
        record = await user_tokens.delete(context.backend, context.actor, context.caller.account_id, key)
        return UserToken.of(record)
