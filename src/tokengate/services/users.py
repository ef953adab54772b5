"""Members of an account: created, changed and deactivated without anyone giving more than they hold."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from tokengate.core import tokens
from tokengate.core.catalog import LICENSES
from tokengate.core.errors import Forbidden, InvalidInput, NotFound
from tokengate.core.invalidations import UserChanged
from tokengate.core.lifetimes import creator_expiry, lifetime_bound_denial
from tokengate.core.policy import (
    ACCOUNT_ADMIN,
    SERVICE_TOKEN,
    Grant,
    check_grants,
    gives_account_admin,
    require,
    require_account,
    require_change,
    require_not_self,
)
from tokengate.core.validation import checked_email
from tokengate.services.unit_of_work import Actor, Backend, UnitOfWork
from tokengate.store import grants as grant_store
from tokengate.store import projects as project_store
from tokengate.store import scim as scim_store
from tokengate.store import sign_in as sign_in_store
from tokengate.store import tokens as token_store
from tokengate.store import users as user_store
from tokengate.store.users import UserRow

USER = "user"


def checked_license(license_: str) -> str:
    if license_ not in LICENSES:
        raise InvalidInput(f"unknown license {license_}")
    return license_


async def account_grants(work: UnitOfWork, account_id: str, grants: Sequence[Grant]) -> tuple[Grant, ...]:
    """The grants normalised against the account's projects (read in the change's transaction)."""
    await work.account(account_id)
    return check_grants(grants, await project_store.project_ids_of_account(work.conn, account_id))


async def create(
    backend: Backend, actor: Actor, account_id: str, email: str, license_: str, grants: Sequence[Grant]
) -> UserRow:
    """A new member with a license (LICENSES:WRITE) and grants the caller could give (policy: no escalation)."""
    async with backend.change(actor) as work:
        return await create_in(work, account_id, email, license_, grants)


async def create_in(work: UnitOfWork, account_id: str, email: str, license_: str, grants: Sequence[Grant]) -> UserRow:
    """``create`` inside a change that may write more about the new member (SCIM: its userName and record)."""
    principal = work.actor.principal
    require_account(principal, account_id)
    require(principal, "MEMBERS", "WRITE")
    email = checked_email(email)
    checked_license(license_)
    require(principal, "LICENSES", "WRITE")
    checked = await account_grants(work, account_id, grants)
    require_change(principal, (), checked, None, license_)
    if gives_account_admin((), checked, None, license_):
        work.actor.require_recent_sign_in()
    try:
        user = await user_store.create_user(work.conn, tokens.new_id("usr"), account_id, email, license_)
    except user_store.DuplicateEmail:
        raise Duplicate("a user with this email already exists in the account") from None
    await grant_store.add_user_grants(work.conn, account_id, user.id, checked)
    await work.audit(account_id, "user.created", user.id, license=license_, grants=[g.permission_set for g in checked])
    return user


class Duplicate(InvalidInput):
    """Another member of the account has this e-mail (or SCIM userName): BAD_USER_INPUT, SCIM's 409."""


LAST_ADMIN: Final = f"the last active {ACCOUNT_ADMIN} of the account cannot be deactivated or lose {ACCOUNT_ADMIN}"


def acts_as_admin(license_: str, grants: Sequence[Grant]) -> bool:
    """What ``holds_account_admin`` asks of a principal, asked of a stored member."""
    return license_ != "READ_ONLY" and any(g.permission_set == ACCOUNT_ADMIN for g in grants)


async def require_admin_left(work: UnitOfWork, user: UserRow, held: Sequence[Grant], after: bool) -> None:
    """Refuse (``Forbidden``) a change that leaves the account without an active ACCOUNT_ADMIN: ``user`` acts as
    one now (``held``) and will not (``after`` False), and no other active member does. Whoever asks through a
    door (GraphQL, SCIM: a service token or the identity provider could otherwise do it); the operator at the
    command line may (``tokengate deactivate-user`` is also how an operator shuts an account's last person out)."""
    if work.actor.principal is None or user.state != "active" or not acts_as_admin(user.license, held) or after:
        return
    if await scim_store.other_active_admins(work.conn, user.account_id, user.id) == 0:
        raise Forbidden(LAST_ADMIN)


async def locked_user(work: UnitOfWork, account_id: str, user_id: str) -> tuple[UserRow, list[Grant]]:
    """The account's user, locked until the change ends (its grants cannot change meanwhile), and its grants."""
    user = await user_store.lock_user(work.conn, account_id, user_id)
    if user is None:
        raise NotFound(USER)
    held = (await grant_store.grants_for_users(work.conn, [user.id])).get(user.id, [])
    return user, held


async def update(
    backend: Backend,
    actor: Actor,
    account_id: str,
    user_id: str,
    license_: str | None = None,
    grants: Sequence[Grant] | None = None,
) -> UserRow:
    """Change a member's license and/or replace its grants; holds from the next request on every instance.

    Nobody changes their own; the rest is policy's ``change_refusal``: only an ACCOUNT_ADMIN changes an
    ACCOUNT_ADMIN, what is added and what is taken away must be what the caller could give on that scope, and a
    license change needs LICENSES:WRITE and may not give or take more than the caller holds.
    """
    require_account(actor.principal, account_id)
    require(actor.principal, "MEMBERS", "WRITE")
    if license_ is not None:
        checked_license(license_)
    async with backend.change(actor) as work:
        user, held = await locked_user(work, account_id, user_id)
        if license_ is None and grants is None:
            return user
        require_not_self(actor.principal, user.id)
        checked = await account_grants(work, account_id, grants) if grants is not None else None
        require_change(actor.principal, held, held if checked is None else checked, user.license, license_)
        if gives_account_admin(held, held if checked is None else checked, user.license, license_ or user.license):
            actor.require_recent_sign_in()
        if checked is not None:
            await _require_tokens_lifetime_bound(work, user.id, held, checked)
        await require_admin_left(
            work, user, held, acts_as_admin(license_ or user.license, held if checked is None else checked)
        )
        changes: dict[str, object] = {}
        if license_ is not None and license_ != user.license:
            user = await user_store.set_license(work.conn, user.id, license_)
            changes["license"] = license_
        if checked is not None:
            await grant_store.replace_user_grants(work.conn, account_id, user.id, checked)
            changes["grants"] = [g.permission_set for g in checked]
        await work.audit(account_id, "user.updated", user.id, **changes)
        await work.notify(UserChanged(user.id))
    return user


async def _require_tokens_lifetime_bound(
    work: UnitOfWork, user_id: str, held: Sequence[Grant], grants: Sequence[Grant]
) -> None:
    """Grants given to a person reach their personal tokens: a calling service token that expires may give them
    only while each of those tokens expires no later than itself (``lifetime_bound_denial``, as for a service
    token's edit). A person acting through a personal token is bounded no more than on service tokens
    (``creator_expiry``): people's tokens all expire, and an admin must be able to give a newer member grants."""
    bound = creator_expiry(work.actor.principal, SERVICE_TOKEN)
    if bound is None:
        return
    now = datetime.now(UTC)
    owned = (await token_store.user_tokens_of_users(work.conn, [user_id]))[user_id]
    for record in owned:
        if tokens.token_state(record.state, record.expires_at, now) == "ACTIVE":
            denial = lifetime_bound_denial(bound, record.expires_at, held, grants)
            if denial is not None:
                raise Forbidden(denial.replace("to a token", "through a personal token of this user to a token", 1))


async def deactivate(backend: Backend, actor: Actor, account_id: str, user_id: str) -> UserRow:
    """Switch a member off: every personal token of the user is refused at once on every instance (each audited
    ``user_token.deleted``, with ``reason`` ``user.deactivated``, after ``user.deactivated``), and so is every
    browser session (each audited ``session.ended``, same reason), its invitations and its passkeys; service
    tokens the user created keep working (they belong to the account). Deactivating twice changes nothing.
    Every door (GraphQL, the command line, SCIM) deactivates through here.
    It takes away everything the user holds: the caller must be able to take each of it away (``change_refusal``)."""
    require_account(actor.principal, account_id)
    require(actor.principal, "MEMBERS", "WRITE")
    async with backend.change(actor) as work:
        user, held = await member_to_take_over(work, account_id, user_id)
        await require_admin_left(work, user, held, after=False)
        deactivated = await user_store.deactivate_user(work.conn, user.id)
        if deactivated is None:
            return user
        revoked = await token_store.delete_tokens_of_user(work.conn, user.id)
        await work.audit(account_id, "user.deactivated", user.id, revoked_tokens=len(revoked))
        for token_id in revoked:  # what deleteUserToken records, so user_token.* receivers hear of each
            await work.audit(account_id, "user_token.deleted", token_id, user_id=user.id, reason="user.deactivated")
        await end_sessions(work, user, "user.deactivated")
        await sign_in_store.revoke_invitations_of_user(work.conn, user.id)
        await sign_in_store.revoke_passkeys_of_user(work.conn, user.id)
        await work.notify(UserChanged(user.id))
    return deactivated


async def member_to_take_over(work: UnitOfWork, account_id: str, user_id: str) -> tuple[UserRow, list[Grant]]:
    """The member, locked, for a change that acts on everything they hold (deactivation takes it all away; an
    invitation lets someone sign in as them): never the caller themselves, and the caller must be able to take
    each of it away (``change_refusal``)."""
    user, held = await locked_user(work, account_id, user_id)
    require_not_self(work.actor.principal, user.id)
    require_change(work.actor.principal, held, ())
    return user, held


async def end_sessions(work: UnitOfWork, user: UserRow, reason: str) -> list[str]:
    """In a change: end every live browser session of the user, each audited ``session.ended`` with ``reason``.
    Sessions are read from the database on every request, so this holds on every instance at commit."""
    ended = await sign_in_store.end_sessions_of_user(work.conn, user.id, reason)
    for session_id in ended:
        await work.audit(user.account_id, "session.ended", session_id, user_id=user.id, reason=reason)
    return ended


async def reactivate(backend: Backend, actor: Actor, account_id: str, user_id: str) -> UserRow:
    """Switch a deactivated member on again (a provider's ``active: true``): it may sign in and get new personal
    tokens; the ones deactivation deleted stay deleted. It gives back everything the user holds: the caller must be
    able to give each of it (``change_refusal``). Reactivating an active member changes nothing."""
    require_account(actor.principal, account_id)
    require(actor.principal, "MEMBERS", "WRITE")
    async with backend.change(actor) as work:
        user, held = await locked_user(work, account_id, user_id)
        if user.state == "active":
            return user
        require_not_self(actor.principal, user.id)
        require_change(actor.principal, (), held)
        if gives_account_admin((), held, None, user.license):
            actor.require_recent_sign_in()
        reactivated = await user_store.reactivate_user(work.conn, user.id)
        await work.audit(account_id, "user.reactivated", user.id)
        await work.notify(UserChanged(user.id))
    return reactivated
