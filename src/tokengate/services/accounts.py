"""Accounts: the first one of a deployment, with its admin and a personal token (``tokengate bootstrap``)."""

from __future__ import annotations

from tokengate.core import tokens
from tokengate.core.catalog import PLANS
from tokengate.core.errors import Forbidden, InvalidInput
from tokengate.core.policy import Grant
from tokengate.core.validation import checked_email, checked_name
from tokengate.services import user_tokens
from tokengate.services.unit_of_work import Actor, Backend
from tokengate.store import accounts as account_store
from tokengate.store import grants as grant_store
from tokengate.store import users as user_store
from tokengate.store.accounts import AccountRow
from tokengate.store.users import UserRow

FIRST_ADMIN_LICENSE = "DEVELOPER"
FIRST_ADMIN_GRANTS = (Grant("ACCOUNT_ADMIN", True, ()),)


async def bootstrap(
    backend: Backend, actor: Actor, name: str, plan: str, admin_email: str
) -> tuple[AccountRow, UserRow, tokens.IssuedToken]:
    """A new account with its first user (Developer license, ACCOUNT_ADMIN) and that user's token, all in one
    transaction. Only the operator creates accounts."""
    if actor.principal is not None:
        raise Forbidden("accounts are created with tokengate bootstrap")
    name = checked_name(name, "account name")
    email = checked_email(admin_email, "admin email")
    if plan not in PLANS:
        raise InvalidInput(f"unknown plan {plan}")
    async with backend.change(actor) as work:
        account = await account_store.create_account(work.conn, tokens.new_id("acc"), name, plan)
        user = await user_store.create_user(work.conn, tokens.new_id("usr"), account.id, email, FIRST_ADMIN_LICENSE)
        await grant_store.add_user_grants(work.conn, account.id, user.id, FIRST_ADMIN_GRANTS)
        await work.audit(account.id, "user.created", user.id, license=FIRST_ADMIN_LICENSE)
        issued, _ = await user_tokens.store_user_token(work, backend.newest_key, user, "bootstrap")
    return account, user, issued
