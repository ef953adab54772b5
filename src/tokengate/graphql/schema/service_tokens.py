"""Service token mutations (create, rotate, update, delete) and leak reports (personal tokens: user_tokens.py).

Resolvers translate: GraphQL inputs become service arguments (services/), and what the services return
becomes GraphQL objects. Every rule is the services'.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from tokengate.core import global_ids
from tokengate.graphql.schema.context import Context, Info
from tokengate.graphql.schema.directives import requires
from tokengate.graphql.schema.enums import Access, Resource
from tokengate.graphql.schema.inputs import CreateServiceTokenInput, GrantInput, grants_of
from tokengate.graphql.schema.types import ServiceToken, service_token_with_grants, service_tokens_with_grants
from tokengate.services import service_tokens
from tokengate.services.service_tokens import CreatedServiceToken


@strawberry.type(description="A service token with its secret: shown once, never again.")
class ServiceTokenWithSecret:
    service_token: ServiceToken
    secret: str
    previous: ServiceToken | None = strawberry.field(
        default=None,
        description="From rotateServiceToken: the token it replaced, as it is now (its new expiry, with "
        "revokeOldInSeconds), so a client cache updates both from this answer. Null from createServiceToken.",
    )

    def __repr__(self) -> str:
        return f"ServiceTokenWithSecret(id={self.service_token.id!r})"


async def with_secret(context: Context, created: CreatedServiceToken) -> ServiceTokenWithSecret:
    records = [created.record] if created.replaced is None else [created.record, created.replaced]
    token, *previous = await service_tokens_with_grants(context, records)
    replaced = previous[0] if previous else None
    return ServiceTokenWithSecret(service_token=token, secret=created.secret, previous=replaced)


def service_token_key(token_id: strawberry.ID) -> str:
    """The row key of a service token id, printed (``stk_…``) or bare as before. Any other text is passed on
    as it is: no row has it, so the service answers NOT_FOUND after checking the other arguments, as before."""
    key = global_ids.token_key(str(token_id), global_ids.SERVICE_TOKEN)
    return key if key is not None else str(token_id)


@strawberry.type
class ServiceTokenMutations:
    @requires(
        Resource.SERVICE_TOKENS,
        Access.WRITE,
        description="A new service token; its secret is in this answer only.",
    )
    async def create_service_token(self, info: Info, input: CreateServiceTokenInput) -> ServiceTokenWithSecret | None:
        context = info.context
        created = await service_tokens.create(
            context.backend,
            context.actor,
            context.caller.account_id,
            input.name,
            grants_of(input.grants),
            input.expires_at,
        )
        return await with_secret(context, created)

    @requires(
        Resource.SERVICE_TOKENS,
        Access.WRITE,
        description=(
            "A new v2 token with the same name and grants. The old one stays valid until deleted, "
            "or expires revokeOldInSeconds (0 to 2592000) from now. The new one expires at expiresAt, bounded "
            "like a created token's (under a required expiry it keeps the old one's by default)."
        ),
    )
    async def rotate_service_token(
        self,
        info: Info,
        id: strawberry.ID,
        revoke_old_in_seconds: int | None = None,
        expires_at: datetime | None = None,
    ) -> ServiceTokenWithSecret | None:
        context = info.context
        created = await service_tokens.rotate(
            context.backend,
            context.actor,
            context.caller.account_id,
            service_token_key(id),
            revoke_old_in_seconds,
            expires_at,
        )
        return await with_secret(context, created)

    @requires(
        Resource.SERVICE_TOKENS,
        Access.WRITE,
        description="Rename and/or replace the grants; holds from the next request.",
    )
    async def update_service_token(
        self, info: Info, id: strawberry.ID, name: str | None = None, grants: list[GrantInput] | None = None
    ) -> ServiceToken | None:
        context = info.context
        record = await service_tokens.update(
            context.backend,
            context.actor,
            context.caller.account_id,
            service_token_key(id),
            name,
            grants_of(grants) if grants is not None else None,
        )
        return await service_token_with_grants(context, record)

    @requires(
        Resource.SERVICE_TOKENS,
        Access.WRITE,
        description=(
            "Make the token hold exactly these grants: the way to manage grants from infrastructure code "
            "(Terraform). Idempotent: the same grants, in any order, change nothing (no audit event, no webhook)."
        ),
    )
    async def set_service_token_grants(
        self, info: Info, id: strawberry.ID, grants: list[GrantInput]
    ) -> ServiceToken | None:
        context = info.context
        record = await service_tokens.set_grants(
            context.backend, context.actor, context.caller.account_id, service_token_key(id), grants_of(grants)
        )
        return await service_token_with_grants(context, record)

    @requires(
        Resource.SERVICE_TOKENS,
        Access.WRITE,
        description="Invalid at once on every instance; the record stays (state DELETED).",
    )
    async def delete_service_token(self, info: Info, id: strawberry.ID) -> ServiceToken | None:
        context = info.context
        key = service_token_key(id)
        record = await service_tokens.delete(context.backend, context.actor, context.caller.account_id, key)
        return await service_token_with_grants(context, record)

    @strawberry.mutation(
        description=(
            "Report a token seen where it should not be. Needs no credentials. A valid token is revoked "
            "and the answer is true; anything else answers false. Never says whose token it was."
        )
    )
    async def report_leaked_token(self, info: Info, token: str) -> bool:
        context = info.context
        return await service_tokens.report_leaked(context.backend, context.actor, token)
