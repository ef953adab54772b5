"""SCIM tokens in GraphQL: ``Account.scimTokens``, ``createScimToken`` and ``revokeScimToken`` (docs/scim.md).

No ``@requires``: ACCOUNT_ADMIN is a permission set, not a resource; services/scim.py refuses (FORBIDDEN) anyone
else, and a service token the creation (issue 24's final design asks a person for a recent sign-in).
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from tokengate.auth.scim_tokens import display_prefix
from tokengate.core import global_ids
from tokengate.core.errors import NotFound
from tokengate.graphql.schema.context import Info
from tokengate.services import scim
from tokengate.store.scim import ScimTokenRow


@strawberry.type(
    description="A token an identity provider uses on /scim/v2 (only there); its secret is never shown again."
)
class ScimToken:
    id: strawberry.ID
    name: str
    display_prefix: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None = strawberry.field(description="When it was revoked; null while it works.")

    @classmethod
    def of(cls, row: ScimTokenRow) -> ScimToken:
        return cls(
            id=strawberry.ID(global_ids.scim_token_id(row.id)),
            name=row.name,
            display_prefix=display_prefix(row.id),
            created_at=row.created_at,
            created_by=global_ids.printed_actor(row.created_by),
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type(description="A SCIM token with its secret (tgp_…): shown once, never again.")
class ScimTokenWithSecret:
    scim_token: ScimToken
    secret: str

    def __repr__(self) -> str:
        return f"ScimTokenWithSecret(id={self.scim_token.id!r})"


async def scim_tokens_of(info: Info, account_id: str, include_revoked: bool) -> list[ScimToken]:
    context = info.context
    rows = await scim.list_tokens(context.pool, context.actor, account_id, include_revoked)
    return [ScimToken.of(row) for row in rows]


@strawberry.type
class ScimTokenMutations:
    @strawberry.mutation(
        description="A SCIM token for the account's identity provider (ACCOUNT_ADMIN, a person); its secret is in "
        "this answer only. It authenticates /scim/v2 and nothing else."
    )
    async def create_scim_token(self, info: Info, name: str) -> ScimTokenWithSecret | None:
        context = info.context
        issued, row = await scim.create_token(context.backend, context.actor, context.caller.account_id, name)
        return ScimTokenWithSecret(scim_token=ScimToken.of(row), secret=issued.text)

    @strawberry.mutation(
        description="Revoke a SCIM token (ACCOUNT_ADMIN): refused from the next request on every instance."
    )
    async def revoke_scim_token(self, info: Info, id: strawberry.ID) -> ScimToken | None:
        context = info.context
        key = global_ids.scim_token_key(str(id))
        if key is None:
            raise NotFound(scim.SCIM_TOKEN)
        return ScimToken.of(await scim.revoke_token(context.backend, context.actor, context.caller.account_id, key))
