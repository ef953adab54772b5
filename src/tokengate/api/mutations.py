"""Mutation root: each change and its audit event commit in one transaction."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from tokengate import tokens
from tokengate.api.directives import requires
from tokengate.api.enums import Access, License, Resource
from tokengate.api.errors import BadUserInput
from tokengate.api.inputs import GrantInput, grants_from_input, require_name
from tokengate.api.ip_restrictions import IpRestrictionMutations
from tokengate.api.types import Project, User, users_with_grants
from tokengate.store import audit, notify
from tokengate.store import grants as grant_store
from tokengate.store import projects as project_store
from tokengate.store import users as user_store

MAX_EMAIL_LENGTH = 320


def require_email(email: str) -> str:
    email = email.strip()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > MAX_EMAIL_LENGTH or any(c.isspace() for c in email):
        raise BadUserInput("email must be an address such as someone@example.com")
    return email


@strawberry.type
class Mutation(IpRestrictionMutations):
    @requires(Resource.PROJECT_CREATION, Access.WRITE)
    async def create_project(self, info: Info, name: str) -> Project | None:
        context = info.context
        name = require_name(name)
        async with context.pool.acquire() as conn, conn.transaction():
            row = await project_store.create_project(conn, tokens.new_id("prj"), context.caller.account_id, name)
            await audit.record(conn, context.audit_entry("project.created", row.id, {"name": name}))
            # Principals carry their account's project ids: every instance reloads this account's.
            await notify.publish(conn, "account", account_id=row.account_id)
        context.services.authenticator.cache.invalidate_account(row.account_id)
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
        caller = context.caller
        email = require_email(email)
        async with context.pool.acquire() as conn, conn.transaction():
            project_ids = await project_store.project_ids_of_account(conn, caller.account_id)
            checked = grants_from_input(grants, project_ids)
            try:
                row = await user_store.create_user(conn, tokens.new_id("usr"), caller.account_id, email, license.value)
            except user_store.DuplicateEmail:
                raise BadUserInput("a user with this email already exists in the account") from None
            await grant_store.add_user_grants(conn, caller.account_id, row.id, checked)
            await audit.record(
                conn,
                context.audit_entry(
                    "user.created",
                    row.id,
                    {"license": license.value, "grants": [g.permission_set for g in checked]},
                ),
            )
        return (await users_with_grants(context, [row]))[0]
