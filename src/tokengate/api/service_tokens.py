"""Service token mutations: create, rotate, update, delete; personal tokens; leak reports.

Each change and its audit event commit in one transaction (the operations live in ``lifecycle``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.types import Info

from tokengate import lifecycle, tokens
from tokengate.api.context import Context
from tokengate.api.directives import requires
from tokengate.api.enums import Access, Resource
from tokengate.api.errors import BadUserInput, Forbidden, PlanRestricted, not_found
from tokengate.api.inputs import GrantInput, require_name
from tokengate.api.types import ServiceToken, service_token_with_grants
from tokengate.auth import is_usable
from tokengate.lifecycle import Actor
from tokengate.policy import (
    USER,
    Grant,
    GrantProblem,
    PlanRestriction,
    Principal,
    check_service_token_grants,
    service_token_admin_denial,
)
from tokengate.store import projects as project_store
from tokengate.store import users as user_store

# Long enough for any deployment to swap secrets, short enough that "revoke later" means it.
MAX_REVOKE_OLD_IN_SECONDS = 30 * 24 * 3600


@strawberry.input
class CreateServiceTokenInput:
    name: str
    grants: list[GrantInput]
    expires_at: datetime | None = None


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


def actor_of(context: Context) -> Actor:
    return Actor(context.caller.actor, "graphql", context.client_addr)


def may_manage_service_tokens(context: Context) -> Principal:
    """The caller, once policy's Developer-license rule lets it past SERVICE_TOKENS:WRITE."""
    caller = context.caller
    denial = service_token_admin_denial(caller)
    if denial is not None:
        raise Forbidden(denial)
    return caller


def checked_grants(grants: list[GrantInput], project_ids: frozenset[str], plan: str) -> tuple[Grant, ...]:
    requested = [Grant(g.permission_set.value, g.all_projects, tuple(str(p) for p in g.project_ids)) for g in grants]
    try:
        return check_service_token_grants(requested, project_ids, plan)
    except GrantProblem as problem:
        raise BadUserInput(str(problem)) from None
    except PlanRestriction as problem:
        raise PlanRestricted(str(problem)) from None


def future_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:  # a time without offset is read as UTC
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at <= datetime.now(UTC):
        raise BadUserInput("expiresAt must be in the future")
    return expires_at


async def with_secret(context: Context, created: lifecycle.CreatedServiceToken) -> ServiceTokenWithSecret:
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
        context: Context = info.context
        caller = may_manage_service_tokens(context)
        name = require_name(input.name)
        expires_at = future_expiry(input.expires_at)
        async with context.pool.acquire() as conn, conn.transaction():
            project_ids = await project_store.project_ids_of_account(conn, caller.account_id)
            grants = checked_grants(input.grants, project_ids, caller.account_plan)
            created = await lifecycle.create_service_token(
                conn,
                context.services.config.secret_keys[0],
                caller.account_id,
                name,
                grants,
                actor_of(context),
                expires_at,
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
        context: Context = info.context
        caller = may_manage_service_tokens(context)
        if revoke_old_in_seconds is not None and not 0 <= revoke_old_in_seconds <= MAX_REVOKE_OLD_IN_SECONDS:
            raise BadUserInput(f"revokeOldInSeconds must be 0 to {MAX_REVOKE_OLD_IN_SECONDS}")
        try:
            async with context.pool.acquire() as conn, conn.transaction():
                created = await lifecycle.rotate_service_token(
                    conn,
                    context.services.config.secret_keys[0],
                    caller.account_id,
                    str(id),
                    actor_of(context),
                    revoke_old_in_seconds,
                )
        except lifecycle.TokenNotFound:
            raise not_found("service token") from None
        except lifecycle.TokenDeleted as problem:
            raise BadUserInput(str(problem)) from None
        context.services.authenticator.forget_token(str(id))  # other instances hear it through NOTIFY
        return await with_secret(context, created)

    @requires(
        Resource.SERVICE_TOKENS,
        Access.WRITE,
        description="Rename and/or replace the grants; holds from the next request.",
    )
    async def update_service_token(
        self, info: Info, id: strawberry.ID, name: str | None = None, grants: list[GrantInput] | None = None
    ) -> ServiceToken | None:
        context: Context = info.context
        caller = may_manage_service_tokens(context)
        new_name = require_name(name) if name is not None else None
        try:
            async with context.pool.acquire() as conn, conn.transaction():
                new_grants = None
                if grants is not None:
                    project_ids = await project_store.project_ids_of_account(conn, caller.account_id)
                    new_grants = checked_grants(grants, project_ids, caller.account_plan)
                record = await lifecycle.update_service_token(
                    conn, caller.account_id, str(id), actor_of(context), new_name, new_grants
                )
        except lifecycle.TokenNotFound:
            raise not_found("service token") from None
        except lifecycle.TokenDeleted as problem:
            raise BadUserInput(str(problem)) from None
        context.services.authenticator.forget_token(str(id))
        return await service_token_with_grants(context, record)

    @requires(
        Resource.SERVICE_TOKENS,
        Access.WRITE,
        description="Invalid at once on every instance; the record stays (state DELETED).",
    )
    async def delete_service_token(self, info: Info, id: strawberry.ID) -> ServiceToken | None:
        context: Context = info.context
        caller = may_manage_service_tokens(context)
        try:
            async with context.pool.acquire() as conn, conn.transaction():
                record = await lifecycle.delete_service_token(conn, caller.account_id, str(id), actor_of(context))
        except lifecycle.TokenNotFound:
            raise not_found("service token") from None
        context.services.authenticator.forget_token(str(id))
        return await service_token_with_grants(context, record)

    @strawberry.mutation(description="A personal token for the calling user; its secret is in this answer only.")
    async def create_user_token(self, info: Info, name: str) -> UserTokenWithSecret:
        context: Context = info.context
        caller = context.caller
        if caller.kind != USER or caller.user_id is None:
            raise Forbidden("only a user can create a personal token for itself")
        name = require_name(name)
        async with context.pool.acquire() as conn, conn.transaction():
            user = await user_store.get_user(conn, caller.user_id)
            if user is None:
                raise not_found("user")
            issued = await lifecycle.issue_user_token(
                conn, context.services.config.secret_keys[0], user, name, actor_of(context)
            )
        return UserTokenWithSecret(id=strawberry.ID(issued.id), secret=issued.text)

    @strawberry.mutation(
        description=(
            "Report a token seen where it should not be. Needs no credentials. A valid token is revoked "
            "and the answer is true; anything else answers false. Never says whose token it was."
        )
    )
    async def report_leaked_token(self, info: Info, token: str) -> bool:
        context: Context = info.context
        try:
            parsed = tokens.parse_token(token.strip())
        except tokens.MalformedToken:
            return False
        credential = await context.services.authenticator.find_credential(parsed)
        if credential is None or not is_usable(credential, datetime.now(UTC)):
            return False
        # The token's account learns who reported only when the reporter is one of its own.
        reporter = context.principal
        name = reporter.actor if reporter is not None and reporter.account_id == credential.account_id else "anonymous"
        async with context.pool.acquire() as conn, conn.transaction():
            revoked = await lifecycle.revoke_leaked_token(
                conn, credential.id, Actor(name, "graphql", context.client_addr)
            )
        context.services.authenticator.forget_token(credential.id)
        return revoked
