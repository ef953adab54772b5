"""Changing members in GraphQL: ``updateUser`` and ``deactivateUser`` (``createUser`` is in mutations.py)."""

from __future__ import annotations

import strawberry

from tokengate.api.context import Info
from tokengate.api.directives import requires
from tokengate.api.enums import Access, License, Resource
from tokengate.api.inputs import GrantInput, grants_of
from tokengate.api.types import User, users_with_grants
from tokengate.services import users


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
