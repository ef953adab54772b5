"""Service token mutations (create, rotate, update, delete), personal tokens, and leak reports.

Resolvers translate: GraphQL inputs become service arguments (services/), and what the services return
becomes GraphQL objects. Every rule is the services'.
"""

from __future__ import annotations

import strawberry

from tokengate.api.context import Context, Info
from tokengate.api.directives import requires
from tokengate.api.enums import Access, Resource
from tokengate.api.inputs import CreateServiceTokenInput, GrantInput, grants_of
from tokengate.api.types import ServiceToken, service_token_with_grants
from tokengate.services import service_tokens, user_tokens
from tokengate.services.service_tokens import CreatedServiceToken


@strawberry.type(description="A service token with its secret: shown once, never again.")
class ServiceTokenWithSecret:
    service_token: ServiceToken
    secret: str

    def __repr__(self) -> str:
        return f"ServiceTokenWithSecret(id={self.service_token.id!r})"


@strawberry.type(description="A personal token with its secret: shown once, never again.")
class UserTokenWithSecret:
    id: strawberry.ID
    secret: str

    def __repr__(self) -> str:
        return f"UserTokenWithSecret(id={self.id!r})"


async def with_secret(context: Context, created: CreatedServiceToken) -> ServiceTokenWithSecret:
    token = await service_token_with_grants(context, created.record)
    return ServiceTokenWithSecret(service_token=token, secret=created.secret)


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
            "or expires revokeOldInSeconds (0 to 2592000) from now."
        ),
    )
    async def rotate_service_token(
        self, info: Info, id: strawberry.ID, revoke_old_in_seconds: int | None = None
    ) -> ServiceTokenWithSecret | None:
        context = info.context
        created = await service_tokens.rotate(
            context.backend, context.actor, context.caller.account_id, str(id), revoke_old_in_seconds
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
            str(id),
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
            context.backend, context.actor, context.caller.account_id, str(id), grants_of(grants)
        )
        return await service_token_with_grants(context, record)

    @requires(
        Resource.SERVICE_TOKENS,
        Access.WRITE,
        description="Invalid at once on every instance; the record stays (state DELETED).",
    )
    async def delete_service_token(self, info: Info, id: strawberry.ID) -> ServiceToken | None:
        context = info.context
        record = await service_tokens.delete(context.backend, context.actor, context.caller.account_id, str(id))
        return await service_token_with_grants(context, record)

    @strawberry.mutation(description="A personal token for the calling user; its secret is in this answer only.")
    async def create_user_token(self, info: Info, name: str) -> UserTokenWithSecret:
        context = info.context
        caller = context.caller
        issued = await user_tokens.create(context.backend, context.actor, caller.user_id or "", name)
        return UserTokenWithSecret(id=strawberry.ID(issued.id), secret=issued.text)

    @strawberry.mutation(
        description=(
            "Report a token seen where it should not be. Needs no credentials. A valid token is revoked "
            "and the answer is true; anything else answers false. Never says whose token it was."
        )
    )
    async def report_leaked_token(self, info: Info, token: str) -> bool:
        context = info.context
        return await service_tokens.report_leaked(context.backend, context.actor, token)
