"""Personal tokens: issued to a user (by the user itself, or by the operator as a sign-in would), listed, deleted.

Personal tokens always expire: by default ``userTokenMaxLifetimeDays`` (the account's token policy) from now,
and never later than that, nor later than the personal token that asked for a new one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tokengate.core import tokens
from tokengate.core.errors import Forbidden, InvalidInput, NotFound
from tokengate.core.invalidations import TokenChanged
from tokengate.core.lifetimes import creator_expiry, token_expiry
from tokengate.core.policy import USER, gives_account_admin, require, require_account, require_change
from tokengate.core.validation import checked_name
from tokengate.services.unit_of_work import Actor, Backend, UnitOfWork
from tokengate.services.users import locked_user
from tokengate.store import token_policies as token_policy_store
from tokengate.store import tokens as token_store
from tokengate.store import users as user_store
from tokengate.store.tokens import TokenRecord
from tokengate.store.users import UserRow

USER_TOKEN = "user token"


async def user_token_expiry(work: UnitOfWork, account_id: str, requested: datetime | None) -> datetime:
    """The expiry of a new personal token: the account's maximum lifetime, and the calling personal token's."""
    policy = await token_policy_store.policy_of(work.conn, account_id)
    expiry = token_expiry(
        requested,
        datetime.now(UTC),
        max_lifetime_days=policy.user_token_max_lifetime_days,
        creator_expires_at=creator_expiry(work.actor.principal, USER),
    )
    assert expiry is not None  # the policy always has a maximum for personal tokens
    return expiry


async def store_user_token(
    work: UnitOfWork, key: bytes, user: UserRow, name: str, expires_at: datetime | None = None
) -> tuple[tokens.IssuedToken, TokenRecord]:
    """A personal token for ``user`` (expiring as ``user_token_expiry`` bounds it), audited; the returned text
    is the only copy of the secret."""
    expiry = await user_token_expiry(work, user.account_id, expires_at)
    issued, record = await token_store.insert_v2(
        work.conn, key, "user", user.account_id, name, work.actor.name, user_id=user.id, expires_at=expiry
    )
    await work.audit(
        user.account_id, "user_token.created", issued.id, user_id=user.id, name=name, expires_at=expiry.isoformat()
    )
    return issued, record


async def create(
    backend: Backend, actor: Actor, user_id: str, name: str, expires_at: datetime | None = None
) -> tuple[tokens.IssuedToken, TokenRecord]:
    """A personal token for ``user_id``: a user caller only for itself; the operator for anyone active."""
    principal = actor.principal
    if principal is not None and (principal.kind != USER or principal.user_id != user_id):
        raise Forbidden("only a user can create a personal token for itself")
    name = checked_name(name)
    if principal is not None and gives_account_admin((), principal.grants):  # a bearer token holding ACCOUNT_ADMIN
        actor.require_recent_sign_in()
    async with backend.change(actor) as work:
        user = await user_store.get_user(work.conn, user_id)
        if user is None:
            raise NotFound("user")
        if user.state != "active":
            raise InvalidInput("the user is deactivated: it gets no new tokens")
        return await store_user_token(work, backend.newest_key, user, name, expires_at)


async def delete(backend: Backend, actor: Actor, account_id: str, token_id: str) -> TokenRecord:
    """Delete one of the caller's own personal tokens, or, with MEMBERS:WRITE, one of another user of the
    account whose every grant the caller could take away (the token carries them all: ``change_refusal``);
    invalid at once on every instance. A service token's id, or another account's, is not found. Deleting a
    deleted token returns it unchanged, audited once."""
    require_account(actor.principal, account_id)
    async with backend.change(actor) as work:
        existing = await token_store.token_by_id(work.conn, account_id, token_id)
        if existing is None or existing.kind != "user":
            raise NotFound(USER_TOKEN)
        principal = actor.principal
        if principal is not None and principal.user_id != existing.user_id:
            require(principal, "MEMBERS", "WRITE")
            _, held = await locked_user(work, account_id, existing.user_id or "")
            require_change(principal, held, ())
        deleted = await token_store.delete_user_token(work.conn, account_id, token_id)
        if deleted is None:
            return existing
        await work.audit(account_id, "user_token.deleted", token_id, user_id=existing.user_id)
        await work.notify(TokenChanged(token_id))
    return deleted
