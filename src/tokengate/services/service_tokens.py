"""Service tokens: create, rotate, update, delete, import a legacy token, report a leaked one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from tokengate.core import tokens
from tokengate.core.errors import InvalidInput, NotFound, QuotaExceeded
from tokengate.core.invalidations import TokenChanged
from tokengate.core.lifetimes import creator_expiry, require_lifetime_bound, token_expiry
from tokengate.core.policy import SERVICE_TOKEN as POLICY_SERVICE_TOKEN
from tokengate.core.policy import (
    Grant,
    check_service_token_grants,
    gives_account_admin,
    require_account,
    require_token_admin,
)
from tokengate.core.validation import checked_name
from tokengate.services import scim
from tokengate.services.unit_of_work import Actor, Backend, UnitOfWork
from tokengate.store import grants as grant_store
from tokengate.store import projects as project_store
from tokengate.store import quotas as quota_store
from tokengate.store import token_policies as token_policy_store
from tokengate.store import tokens as token_store
from tokengate.store.tokens import Credential, TokenRecord, credential_state, find_credential, principal_from_credential

# Long enough for any deployment to swap secrets, short enough that "revoke later" means it.
MAX_REVOKE_OLD_IN_SECONDS = 30 * 24 * 3600
SERVICE_TOKEN = "service token"


@dataclass(frozen=True)
class CreatedServiceToken:
    record: TokenRecord
    grants: tuple[Grant, ...]
    secret: str
    replaced: TokenRecord | None = None  # after a rotation: the old token as it is now (its expiry may be new)

    def __repr__(self) -> str:  # never print the secret
        return f"CreatedServiceToken(id={self.record.id!r})"


class DuplicateLegacySecret(InvalidInput):
    """A legacy token with this secret is already stored."""


async def service_token_expiry(
    work: UnitOfWork, account_id: str, requested: datetime | None, inherited: datetime | None = None
) -> datetime | None:
    """A new service token's expiry under the account's policy (read in the change's transaction) and the
    calling service token's own expiry (lifetimes.token_expiry); ``inherited``: what rotation keeps."""
    policy = await token_policy_store.policy_of(work.conn, account_id)
    return token_expiry(
        requested,
        datetime.now(UTC),
        max_lifetime_days=policy.service_token_max_lifetime_days,
        creator_expires_at=creator_expiry(work.actor.principal, POLICY_SERVICE_TOKEN),
        required=policy.require_service_token_expiry,
        inherited=inherited if policy.require_service_token_expiry else None,
    )


async def checked_grants(work: UnitOfWork, account_id: str, grants: Sequence[Grant]) -> tuple[Grant, ...]:
    """The grants normalised against the account's projects and plan, read in the change's transaction."""
    account = await work.account(account_id)
    project_ids = await project_store.project_ids_of_account(work.conn, account_id)
    return check_service_token_grants(grants, project_ids, account.plan)


async def store_service_token(
    work: UnitOfWork,
    key: bytes,
    account_id: str,
    name: str,
    grants: Sequence[Grant],
    expires_at: datetime | None = None,
    rotated_from: str | None = None,
) -> CreatedServiceToken:
    """A v2 service token and its (already checked) grants, without an audit event: the callers audit."""
    issued, record = await token_store.insert_v2(
        work.conn,
        key,
        "service",
        account_id,
        name,
        work.actor.name,
        expires_at=expires_at,
        rotated_from=rotated_from,
    )
    await grant_store.replace_token_grants(work.conn, account_id, issued.id, grants)
    return CreatedServiceToken(record, tuple(grants), issued.text)


async def check_token_quota(work: UnitOfWork, backend: Backend, account_id: str, expiring: int = 0) -> None:
    """Refuse a new service token when the account already has its quota of usable ones (``expiring`` of them
    stop being usable in this same change). Counted under the account's row lock, so concurrent creations
    cannot all pass on the same count."""
    if not await quota_store.lock_account(work.conn, account_id):
        raise NotFound("account")
    usable = await quota_store.usable_service_tokens(work.conn, account_id) - expiring
    limit = backend.max_tokens_per_account
    if usable >= limit:
        backend.refused("quota")
        raise QuotaExceeded(
            f"the account already has {usable} usable service tokens, its quota ({limit}): delete one first"
        )


def _sets(grants: Sequence[Grant]) -> list[str]:
    return [grant.permission_set for grant in grants]


async def create(
    backend: Backend,
    actor: Actor,
    account_id: str,
    name: str,
    grants: Sequence[Grant],
    expires_at: datetime | None = None,
) -> CreatedServiceToken:
    """A new v2 service token; its secret is returned once."""
    require_account(actor.principal, account_id)
    require_token_admin(actor.principal)
    name = checked_name(name)
    async with backend.change(actor) as work:
        checked = await checked_grants(work, account_id, grants)
        if gives_account_admin((), checked):
            actor.require_recent_sign_in()
        expires_at = await service_token_expiry(work, account_id, expires_at)
        require_lifetime_bound(work.actor.principal, POLICY_SERVICE_TOKEN, expires_at, (), checked)
        await check_token_quota(work, backend, account_id)
        created = await store_service_token(work, backend.newest_key, account_id, name, checked, expires_at)
        await work.audit(
            account_id,
            "service_token.created",
            created.record.id,
            name=name,
            grants=_sets(checked),
            expires_at=expires_at.isoformat() if expires_at else None,
        )
    return created


async def _locked_active(work: UnitOfWork, account_id: str, token_id: str, doing: str) -> TokenRecord:
    record = await token_store.lock_service_token(work.conn, account_id, token_id)
    if record is None:
        raise NotFound(SERVICE_TOKEN)
    if record.state == "deleted":
        raise InvalidInput(f"a deleted token cannot be {doing}")
    return record


async def rotate(
    backend: Backend,
    actor: Actor,
    account_id: str,
    token_id: str,
    revoke_old_in_seconds: int | None = None,
    expires_at: datetime | None = None,
) -> CreatedServiceToken:
    """A new v2 token with the old one's name and grants; the old one stays valid until deleted, or for
    ``revoke_old_in_seconds`` more. A legacy token rotates into v2 the same way. The new token expires at
    ``expires_at``, else as the policy and the calling token bound it (under a required expiry: when the old
    one would have), else never: an old one's expiry is what rotation replaces."""
    require_account(actor.principal, account_id)
    require_token_admin(actor.principal)
    if revoke_old_in_seconds is not None and not 0 <= revoke_old_in_seconds <= MAX_REVOKE_OLD_IN_SECONDS:
        raise InvalidInput(f"revokeOldInSeconds must be 0 to {MAX_REVOKE_OLD_IN_SECONDS}")
    async with backend.change(actor) as work:
        old = await _locked_active(work, account_id, token_id, "rotated")
        # With revokeOldInSeconds 0 the old token stops being usable in this change: the count stays the same.
        now = datetime.now(UTC)  # the one clock of expiry: the application's (core/tokens.py)
        still_usable = tokens.token_state(old.state, old.expires_at, now) == "ACTIVE"
        await check_token_quota(work, backend, account_id, expiring=int(revoke_old_in_seconds == 0 and still_usable))
        grants = (await grant_store.grants_for_tokens(work.conn, [old.id])).get(old.id, [])
        if gives_account_admin((), grants):  # a new secret that holds ACCOUNT_ADMIN
            actor.require_recent_sign_in()
        expiry = await service_token_expiry(work, account_id, expires_at, inherited=old.expires_at)
        require_lifetime_bound(work.actor.principal, POLICY_SERVICE_TOKEN, expiry, (), grants)
        created = await store_service_token(work, backend.newest_key, account_id, old.name, grants, expiry, old.id)
        if revoke_old_in_seconds is not None:
            old = await token_store.expire_by(work.conn, old.id, now + timedelta(seconds=revoke_old_in_seconds))
            await work.notify(TokenChanged(old.id))
        await work.audit(
            account_id,
            "service_token.rotated",
            old.id,
            new_token_id=created.record.id,
            from_format=old.format,
            revoke_old_in_seconds=revoke_old_in_seconds,
            expires_at=expiry.isoformat() if expiry else None,
        )
    return replace(created, replaced=old)


async def _require_grants_edit(work: UnitOfWork, record: TokenRecord, grants: Sequence[Grant]) -> None:
    """An edit of a token's grants, compared with what the token holds now (read under its row lock): by a token
    that expires it keeps the lifetime bound (``require_lifetime_bound``), and when it gives ACCOUNT_ADMIN it
    asks a browser session for a recent sign-in."""
    held = (await grant_store.grants_for_tokens(work.conn, [record.id])).get(record.id, [])
    require_lifetime_bound(work.actor.principal, POLICY_SERVICE_TOKEN, record.expires_at, held, grants)
    if gives_account_admin(held, grants):
        work.actor.require_recent_sign_in()


async def update(
    backend: Backend,
    actor: Actor,
    account_id: str,
    token_id: str,
    name: str | None = None,
    grants: Sequence[Grant] | None = None,
) -> TokenRecord:
    """Rename and/or replace the grants; holds from the next request on every instance."""
    require_account(actor.principal, account_id)
    require_token_admin(actor.principal)
    new_name = checked_name(name) if name is not None else None
    async with backend.change(actor) as work:
        checked = await checked_grants(work, account_id, grants) if grants is not None else None
        record = await _locked_active(work, account_id, token_id, "changed")
        if new_name is None and checked is None:
            return record
        if checked is not None:
            await _require_grants_edit(work, record, checked)
        changes: dict[str, object] = {}
        if new_name is not None:
            record = await token_store.rename_token(work.conn, token_id, new_name)
            changes["name"] = new_name
        if checked is not None:
            # Grants it keeps keep their rows, and with them their last use.
            await grant_store.sync_token_grants(work.conn, account_id, token_id, checked)
            changes["grants"] = _sets(checked)
        await work.audit(account_id, "service_token.updated", token_id, **changes)
        await work.notify(TokenChanged(token_id))
    return record


async def set_grants(
    backend: Backend, actor: Actor, account_id: str, token_id: str, grants: Sequence[Grant]
) -> TokenRecord:
    """Make the token hold exactly these grants: the way to manage grants from infrastructure code (Terraform,
    scripts). Idempotent: when it holds these already, in any order, nothing is written, audited, queued to
    webhooks or invalidated. Otherwise the grants it keeps keep their history (``Grant.lastUsedAt``), the others
    are replaced, and the change holds from the next request on every instance."""
    require_account(actor.principal, account_id)
    require_token_admin(actor.principal)
    async with backend.change(actor) as work:
        checked = await checked_grants(work, account_id, grants)
        record = await _locked_active(work, account_id, token_id, "changed")
        await _require_grants_edit(work, record, checked)
        if not await grant_store.sync_token_grants(work.conn, account_id, token_id, checked):
            return record
        await work.audit(account_id, "service_token.updated", token_id, grants=_sets(checked))
        await work.notify(TokenChanged(token_id))
    return record


async def delete(backend: Backend, actor: Actor, account_id: str, token_id: str) -> TokenRecord:
    """Invalid at once on every instance; the record stays. Deleting a deleted token returns it unchanged,
    audited once."""
    require_account(actor.principal, account_id)
    require_token_admin(actor.principal)
    async with backend.change(actor) as work:
        deleted = await token_store.delete_service_token(work.conn, account_id, token_id)
        if deleted is None:
            existing = await token_store.token_by_id(work.conn, account_id, token_id)
            if existing is None or existing.kind != "service":
                raise NotFound(SERVICE_TOKEN)
            return existing
        await work.audit(account_id, "service_token.deleted", token_id)
        await work.notify(TokenChanged(token_id))
    return deleted


async def import_legacy(
    backend: Backend,
    actor: Actor,
    account_id: str,
    name: str,
    created_at: datetime,
    grants: Sequence[Grant],
    secret: str | None = None,
) -> tokens.IssuedToken:
    """Store a pre-2023-07-18 token (40 hex characters) as argon2id with its non-secret lookup hint.

    ``secret`` must be a well-formed legacy secret; one is generated when it is None.
    """
    require_account(actor.principal, account_id)
    require_token_admin(actor.principal)
    name = checked_name(name)
    text = secret if secret is not None else tokens.new_legacy_secret()
    hint = tokens.parse_token(text).lookup
    async with backend.change(actor) as work:
        checked = await checked_grants(work, account_id, grants)
        if gives_account_admin((), checked):
            actor.require_recent_sign_in()
        for candidate in await token_store.credentials_by_hint(work.conn, hint):
            if tokens.legacy_matches(text, candidate.hash):
                raise DuplicateLegacySecret("a legacy token with this secret is already stored")
        token_id = tokens.random_base62(tokens.ID_LENGTH)
        await token_store.insert_token(
            work.conn,
            token_id=token_id,
            account_id=account_id,
            kind="service",
            format_="legacy",
            token_hash=tokens.hash_legacy(text),
            name=name,
            created_by=actor.name,
            lookup_hint=hint,
            created_at=created_at,
        )
        await grant_store.replace_token_grants(work.conn, account_id, token_id, checked)
        await work.audit(
            account_id,
            "legacy_token.imported",
            token_id,
            name=name,
            created_at=created_at.isoformat(),
            grants=_sets(checked),
        )
    return tokens.IssuedToken(id=token_id, text=text)


LeakOutcome = Literal["revoked", "unusable", "unknown"]


async def _report(
    backend: Backend, actor: Actor, text: str, source_url: str | None = None, legacy: bool = True
) -> LeakOutcome:
    """Revoke a token reported as leaked if it is still usable, audited in the token's account (with where it
    was seen, when the reporter says). "unusable": a stored token already revoked or expired; "unknown": not a
    token of ours (or a legacy one, when ``legacy`` is False: those are only looked up when asked to)."""
    try:
        parsed = tokens.parse_token(text.strip())
    except tokens.MalformedToken:  # perhaps a SCIM token (tgp_): the same rule, its own table
        return await scim.report_leak(backend, actor, text.strip(), source_url)
    if parsed.format == "legacy" and not legacy:
        return "unknown"
    credential = await find_credential(backend.pool, backend.keys, parsed, backend.verify_legacy)
    if credential is None:
        return "unknown"
    now = datetime.now(UTC)
    if credential_state(credential, now) != "ACTIVE":
        return "unusable"
    async with backend.change(actor.as_named_in(credential.account_id)) as work:
        revoked = await token_store.revoke_if_usable(work.conn, credential.id, now)
        if revoked is None:
            return "unusable"
        action = "user_token.leak_reported" if revoked.kind == "user" else "service_token.leak_reported"
        details: dict[str, object] = {"revoked": True}
        if source_url is not None:
            details["source_url"] = source_url
        await work.audit(revoked.account_id, action, revoked.id, **details)
        await work.notify(TokenChanged(revoked.id))
    return "revoked"


async def report_leaked(backend: Backend, actor: Actor, text: str) -> bool:
    """Revoke a token reported as leaked if it is still usable; True then, anything else False.

    The token's account learns who reported only when the reporter is one of its own principals (or names
    itself without one, as GitHub's secret scanning does); the answer never says whose token it was.
    """
    return await _report(backend, actor, text) == "revoked"


async def report_found(backend: Backend, actor: Actor, text: str, source_url: str | None) -> bool:
    """A token a scanner found at ``source_url`` (GitHub's secret scanning): revoked if still usable. True when
    it is a token of ours, revoked now or before (GitHub's true positive). v2 tokens only: their prefix and
    checksum are what a scanner matches; a legacy token is 40 hex characters, which matches anything."""
    return await _report(backend, actor, text, source_url, legacy=False) != "unknown"


async def audit_expired_use(backend: Backend, credential: Credential, client_addr: str | None, source: str) -> None:
    """Audit the first refused use of an expired service token; later uses (anywhere) record nothing."""
    async with backend.change(Actor(principal_from_credential(credential).actor, source, client_addr)) as work:
        if await token_store.claim_expiry_audit(work.conn, credential.id, datetime.now(UTC)):
            await work.audit(credential.account_id, "service_token.expired_on_use", credential.id)
