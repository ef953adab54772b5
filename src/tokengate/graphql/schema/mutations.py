"""Mutation root (projects, members, IP restrictions; service tokens in service_tokens.py). Resolvers
translate GraphQL inputs for the services and shape what they return."""

from __future__ import annotations

import strawberry

from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.directives import requires
from tokengate.graphql.schema.enums import Access, License, Resource
from tokengate.graphql.schema.inputs import GrantInput, grants_of
from tokengate.graphql.schema.ip_restrictions import IpRestrictionMutations
from tokengate.graphql.schema.types import Project, User, users_with_grants
from tokengate.services import projects, users


@strawberry.type
class Mutation(IpRestrictionMutations):
    @requires(Resource.PROJECT_CREATION, Access.WRITE)
    async def create_project(self, info: Info, name: str) -> Project | None:
        context = info.context
        row = await projects.create(context.backend, context.actor, context.caller.account_id, name)
        return Project.of(row)

    @requires(Resource.MEMBERS, Access.WRITE)
    async def create_user(
        self,
        info: Info,
        email: str,
        license: License,  # type: ignore[valid-type]
        grants: list[GrantInput],
    ) -> User | None:
        context = info.context
        row = await users.create(
            context.backend, context.actor, context.caller.account_id, email, license.value, grants_of(grants)
        )
        return (await users_with_grants(context, [row]))[0]
