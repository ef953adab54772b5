"""Personal tokens: issued to a user (by the user itself, or by the operator as a sign-in would)."""

from __future__ import annotations

from tokengate import tokens
from tokengate.errors import Forbidden, NotFound
from tokengate.policy import USER
from tokengate.services.unit_of_work import Actor, Backend, UnitOfWork
from tokengate.store import tokens as token_store
from tokengate.store import users as user_store
from tokengate.store.users import UserRow
from tokengate.validation import checked_name


async def store_user_token(work: UnitOfWork, key: bytes, user: UserRow, name: str) -> tokens.IssuedToken:
    """A personal token for ``user``, audited; the returned text is the only copy of the secret."""
    issued, _ = await token_store.insert_v2(
        work.conn, key, "user", user.account_id, name, work.actor.name, user_id=user.id
    )
    await work.audit(user.account_id, "user_token.created", issued.id, user_id=user.id, name=name)
    return issued


async def create(backend: Backend, actor: Actor, user_id: str, name: str) -> tokens.IssuedToken:
    """A personal token for ``user_id``: a user caller only for itself; the operator for anyone."""
    principal = actor.principal
    if principal is not None and (principal.kind != USER or principal.user_id != user_id):
        raise Forbidden("only a user can create a personal token for itself")
    name = checked_name(name)
    async with backend.change(actor) as work:
        user = await user_store.get_user(work.conn, user_id)
        if user is None:
            raise NotFound("user")
        return await store_user_token(work, backend.newest_key, user, name)
