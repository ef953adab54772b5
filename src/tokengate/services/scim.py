"""SCIM provisioning: the account's SCIM tokens, and members as the identity provider changes them.

A SCIM token is created, listed and revoked by an ACCOUNT_ADMIN (GraphQL, CLI). Through /scim/v2 it acts for
the provider: its principal (``SCIM_TOKEN``) holds ACCOUNT_ADMIN so that the one rule of changes
(``change_refusal``) lets it switch anyone off, but its door offers only what SCIM does (members' records and
state; never grants or licenses). Deactivation is ``users.deactivate`` itself, and reactivation
``users.reactivate``: whatever deactivating a member does (personal tokens refused on every instance, the last
active ACCOUNT_ADMIN kept) it does here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from tokengate.core import scim, tokens
from tokengate.core.errors import Forbidden, NotFound
from tokengate.core.policy import USER, Principal, holds_account_admin, require_account
from tokengate.core.validation import checked_name
from tokengate.services import users
from tokengate.services.unit_of_work import Actor, Backend, UnitOfWork
from tokengate.store import Executor
from tokengate.store import scim as scim_store
from tokengate.store.scim import MemberFilter, MemberRecord, ScimTokenRow

SCIM_TOKEN: Final = "SCIM token"
MEMBER: Final = "member"
# A member the provider makes gets the least: no grants, a READ_ONLY license; an account admin gives more.
PROVISIONED_LICENSE: Final = "READ_ONLY"
ADMIN_ONLY: Final = "SCIM tokens are managed by an ACCOUNT_ADMIN"
PERSON_ONLY: Final = "a SCIM token is created by a person who holds ACCOUNT_ADMIN (not by a service token)"


def require_scim_admin(principal: Principal | None, creating: bool = False) -> None:
    """An ACCOUNT_ADMIN (the operator at the command line too). Creating one needs a person: issue 24's final
    design asks that person for a recent sign-in, which a service token cannot give."""
    if principal is None:
        return
    if not holds_account_admin(principal):
        raise Forbidden(ADMIN_ONLY)
    if creating and principal.kind != USER:
        raise Forbidden(PERSON_ONLY)


async def create_token(
    backend: Backend, actor: Actor, account_id: str, name: str
) -> tuple[tokens.IssuedToken, ScimTokenRow]:
    """A new SCIM token of the account; the returned text is the only copy of its secret."""
    require_account(actor.principal, account_id)
    require_scim_admin(actor.principal, creating=True)
    name = checked_name(name)
    actor.require_recent_sign_in()
    async with backend.change(actor) as work:
        await work.account(account_id)
        issued, row = await scim_store.insert_token(work.conn, backend.newest_key, account_id, name, actor.name)
        await work.audit(account_id, "scim_token.created", row.id, name=name)
    return issued, row


async def list_tokens(db: Executor, actor: Actor, account_id: str, include_revoked: bool = False) -> list[ScimTokenRow]:
    require_account(actor.principal, account_id)
    require_scim_admin(actor.principal)
    return await scim_store.tokens_of_account(db, account_id, include_revoked)


async def revoke_token(backend: Backend, actor: Actor, account_id: str, token_id: str) -> ScimTokenRow:
    """Revoke a SCIM token: refused from the next request on every instance (each reads its token). Revoking a
    revoked token returns it unchanged, audited once."""
    require_account(actor.principal, account_id)
    require_scim_admin(actor.principal)
    actor.require_recent_sign_in()
    async with backend.change(actor) as work:
        existing = await scim_store.token_by_id(work.conn, account_id, token_id)
        if existing is None:
            raise NotFound(SCIM_TOKEN)
        revoked = await scim_store.revoke_token(work.conn, account_id, token_id)
        if revoked is None:
            return existing
        await work.audit(account_id, "scim_token.revoked", token_id, name=existing.name)
    return revoked


async def report_leak(
    backend: Backend, actor: Actor, text: str, source_url: str | None = None
) -> Literal["revoked", "unusable", "unknown"]:
    """A SCIM token reported as leaked (``reportLeakedToken``, GitHub's secret scanning): revoked if still usable
    and audited ``scim_token.leak_reported`` in its account, as service_tokens.py does for the others. "revoked",
    "unusable" (revoked before) or "unknown" (not a SCIM token of ours)."""
    try:
        token_id = tokens.parse_scim_token(text)
    except tokens.MalformedToken:
        return "unknown"
    found = await scim_store.credential(backend.pool, token_id)
    if found is None or not tokens.hash_matches(text, found.hash, backend.keys):
        return "unknown"
    async with backend.change(actor.as_named_in(found.account_id)) as work:
        revoked = await scim_store.revoke_token(work.conn, found.account_id, token_id)
        if revoked is None:
            return "unusable"
        details: dict[str, object] = {"revoked": True}
        if source_url is not None:
            details["source_url"] = source_url
        await work.audit(found.account_id, "scim_token.leak_reported", token_id, **details)
    return "revoked"


# Members through /scim/v2 (the actor is the SCIM token's principal).


class Conflict(Exception):
    """Another member of the account has this userName or e-mail (SCIM's 409 ``uniqueness``)."""

    MESSAGE: Final = "another member of the account has this userName or e-mail"


def record_of(member: MemberRecord) -> scim.Record:
    return scim.Record(member.user_name, member.profile, member.state == "active")


async def member(db: Executor, account_id: str, user_id: str) -> MemberRecord:
    found = await scim_store.member(db, account_id, user_id)
    if found is None:
        raise NotFound(MEMBER)
    return found


@dataclass(frozen=True, slots=True)
class Page:
    members: list[MemberRecord]
    total: int


async def page(db: Executor, account_id: str, wanted: MemberFilter, start_index: int, count: int) -> Page:
    """Members in creation order from ``start_index`` (1-based), at most ``count``, and how many match."""
    total = await scim_store.count_members(db, account_id, wanted)
    found = await scim_store.member_page(db, account_id, wanted, start_index - 1, count) if count else []
    return Page(found, total)


async def _write_record(work: UnitOfWork, user: users.UserRow, record: scim.Record) -> bool:
    """The member's userName, SCIM record and e-mail as ``record`` has them; ``Conflict`` when another member
    has the userName or the e-mail. True when something changed."""
    email = record.email()
    if await scim_store.user_name_taken(work.conn, user.account_id, record.user_name, user.id):
        raise Conflict
    before = await scim_store.member(work.conn, user.account_id, user.id)
    try:
        if email != user.email:
            await scim_store.set_email(work.conn, user.id, email)
        await scim_store.set_record(work.conn, user.id, record.user_name, record.profile)
    except scim_store.Taken:
        raise Conflict from None
    return before is None or (before.user_name, before.profile, before.email) != (
        record.user_name,
        record.profile,
        email,
    )


async def _require_free(db: Executor, account_id: str, user_id: str, record: scim.Record) -> None:
    """``Conflict`` when another member has the record's userName or e-mail (checked again when written)."""
    email = record.email()
    if await scim_store.user_name_taken(db, account_id, record.user_name, user_id) or await scim_store.email_taken(
        db, account_id, email, user_id
    ):
        raise Conflict


async def _set_state(backend: Backend, actor: Actor, account_id: str, user_id: str, active: bool | None) -> None:
    """``active`` false: what deactivateUser does (the same function); true: switched on again."""
    if active is False:
        await users.deactivate(backend, actor, account_id, user_id)
    elif active is True:
        await users.reactivate(backend, actor, account_id, user_id)


async def provision(backend: Backend, actor: Actor, account_id: str, record: scim.Record) -> MemberRecord:
    """A new member from the provider (POST /Users): no grants, a READ_ONLY license; deactivated at once when
    the provider says ``active: false``."""
    email = record.email()
    async with backend.change(actor) as work:
        if await scim_store.user_name_taken(work.conn, account_id, record.user_name):
            raise Conflict
        try:
            user = await users.create_in(work, account_id, email, PROVISIONED_LICENSE, ())
        except users.Duplicate:
            raise Conflict from None
        await _write_record(work, user, record)
    if record.active is False:
        await _set_state(backend, actor, account_id, user.id, False)
    return await member(backend.pool, account_id, user.id)


async def replace(backend: Backend, actor: Actor, account_id: str, user_id: str, record: scim.Record) -> MemberRecord:
    """The member's record replaced (PUT /Users/{id}, or the result of a PATCH), and its state as ``active``
    says (left as it is when the provider did not say). Switching off comes first, after the record's
    uniqueness is checked: when it is refused (the last active ACCOUNT_ADMIN) nothing is written. (Only a
    concurrent change taking the userName in between leaves a member switched off with its record refused.)"""
    require_account(actor.principal, account_id)
    if record.active is False:
        await member(backend.pool, account_id, user_id)  # removed through SCIM: 404 before anything happens
        await _require_free(backend.pool, account_id, user_id, record)  # a 409 known now changes nothing
        await _set_state(backend, actor, account_id, user_id, False)
    async with backend.change(actor) as work:
        user, _ = await users.locked_user(work, account_id, user_id)
        if await scim_store.member(work.conn, account_id, user.id) is None:
            raise NotFound(MEMBER)  # removed through SCIM
        if await _write_record(work, user, record):
            await work.audit(account_id, "user.updated", user.id, user_name=record.user_name)
    if record.active is True:
        await _set_state(backend, actor, account_id, user_id, True)
    return await member(backend.pool, account_id, user_id)


async def patch(backend: Backend, actor: Actor, account_id: str, user_id: str, body: object) -> MemberRecord:
    """A PatchOp (RFC 7644 3.5.2) applied to the member's record as it is now."""
    current = await member(backend.pool, account_id, user_id)
    return await replace(backend, actor, account_id, user_id, scim.patched(record_of(current), body))


async def remove(backend: Backend, actor: Actor, account_id: str, user_id: str) -> None:
    """DELETE /Users/{id}: what deactivateUser does (the same function), and the member is no SCIM resource any
    more; tokengate keeps it, deactivated, for the audit trail."""
    await member(backend.pool, account_id, user_id)
    await users.deactivate(backend, actor, account_id, user_id)
    async with backend.change(actor) as work:
        await scim_store.mark_deleted(work.conn, user_id)
        await work.audit(account_id, "user.scim_deleted", user_id)
