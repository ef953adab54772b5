"""Members of an account."""

from __future__ import annotations

from collections.abc import Sequence

from tokengate import tokens
from tokengate.catalog import LICENSES
from tokengate.errors import InvalidInput
from tokengate.policy import Grant, check_grants, require, require_account
from tokengate.services.unit_of_work import Actor, Backend
from tokengate.store import grants as grant_store
from tokengate.store import projects as project_store
from tokengate.store import users as user_store
from tokengate.store.users import UserRow
from tokengate.validation import checked_email


async def create(
    backend: Backend, actor: Actor, account_id: str, email: str, license_: str, grants: Sequence[Grant]
) -> UserRow:
    """A new member with a license and grants."""
    require_account(actor.principal, account_id)
    require(actor.principal, "MEMBERS", "WRITE")
    email = checked_email(email)
    if license_ not in LICENSES:
        raise InvalidInput(f"unknown license {license_}")
    async with backend.change(actor) as work:
        await work.account(account_id)
        project_ids = await project_store.project_ids_of_account(work.conn, account_id)
        checked = check_grants(grants, project_ids)
        try:
            user = await user_store.create_user(work.conn, tokens.new_id("usr"), account_id, email, license_)
        except user_store.DuplicateEmail:
            raise InvalidInput("a user with this email already exists in the account") from None
        await grant_store.add_user_grants(work.conn, account_id, user.id, checked)
        await work.audit(
            account_id, "user.created", user.id, license=license_, grants=[g.permission_set for g in checked]
        )
    return user
