"""Members in GraphQL: ``updateUser`` and ``deactivateUser`` (``createUser`` is in mutations.py), and
``givablePermissionSets``, what the caller may give a member."""

from __future__ import annotations

from collections.abc import Sequence

import strawberry

from tokengate.core.policy import Principal, givable_sets
from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.directives import requires
from tokengate.graphql.schema.enums import Access, License, PermissionSetKey, Resource
from tokengate.graphql.schema.inputs import GrantInput, grants_of
from tokengate.graphql.schema.types import User, users_with_grants
from tokengate.services import users

GIVABLE_DESCRIPTION = (
    "Whether the caller may give each permission set to a member (createUser, updateUser) on one scope: for "
    "all projects when projectIds is left out, else on each listed project (account-level sets are always "
    "account-wide). The no-escalation rule the mutations apply, answered before a form offers a set."
)


@strawberry.type(description="A permission set, and whether the caller may give it on the scope asked.")
class GivablePermissionSet:
    key: PermissionSetKey  # type: ignore[valid-type]
    allowed: bool
    reason: str | None = strawberry.field(
        description="Why not, in the words createUser and updateUser would refuse it with; null when allowed."
    )


def givable_permission_sets(principal: Principal, project_ids: Sequence[str] | None) -> list[GivablePermissionSet]:
    return [
        GivablePermissionSet(key=PermissionSetKey(key), allowed=refusal is None, reason=refusal)
        for key, refusal in givable_sets(principal, project_ids)
    ]


@strawberry.type
class MemberMutations:
    @requires(
        Resource.MEMBERS,
        Access.WRITE,
        description="Change a member's license (needs LICENSES:WRITE) and/or replace its grants (only sets you "
        "hold on the same scope, unless you are ACCOUNT_ADMIN); never your own.",
    )
    async def update_user(
        self,
        info: Info,
        id: strawberry.ID,
        license: License | None = None,  # type: ignore[valid-type]
        grants: list[GrantInput] | None = None,
    ) -> User | None:
        context = info.context
        row = await users.update(
            context.backend,
            context.actor,
            context.caller.account_id,
            str(id),
            license.value if license is not None else None,
            grants_of(grants) if grants is not None else None,
        )
        return (await users_with_grants(context, [row]))[0]

    @requires(
        Resource.MEMBERS,
        Access.WRITE,
        description="Switch a member off: its personal tokens are refused at once on every instance; service "
        "tokens it created keep working.",
    )
    async def deactivate_user(self, info: Info, id: strawberry.ID) -> User | None:
        context = info.context
        row = await users.deactivate(context.backend, context.actor, context.caller.account_id, str(id))
        return (await users_with_grants(context, [row]))[0]
