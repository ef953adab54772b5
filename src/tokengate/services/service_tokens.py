"""Service tokens: create, rotate, update, delete, import a legacy token, report a leaked one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tokengate import tokens
from tokengate.authentication import credential_state, find_credential, principal_from_credential
from tokengate.errors import InvalidInput, NotFound, QuotaExceeded
from tokengate.notices import TokenChanged
from tokengate.policy import Grant, check_service_token_grants, require_account, require_token_admin
from tokengate.services.unit_of_work import Actor, Backend, UnitOfWork
from tokengate.store import grants as grant_store
from tokengate.store import projects as project_store
from tokengate.store import quotas as quota_store
from tokengate.store import tokens as token_store
from tokengate.store.tokens import Credential, TokenRecord
from tokengate.validation import checked_name

# Long enough for any deployment to swap secrets, short enough that "revoke later" means it.
MAX_REVOKE_OLD_IN_SECONDS = 30 * 24 * 3600
SERVICE_TOKEN = "service token"


@dataclass(frozen=True)
class CreatedServiceToken:
    record: TokenRecord
    grants: tuple[Grant, ...]
    secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"CreatedServiceToken(id={self.record.id!r})"


class DuplicateLegacySecret(InvalidInput):
    """A legacy token with this secret is already stored."""


def future_expiry(expires_at: datetime | None) -> datetime | None:
    """An expiry in the future (a time without offset is read as UTC), or None for no expiry."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at <= datetime.now(UTC):
        raise InvalidInput("expiresAt must be in the future")
    return expires_at


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
    expires_at = future_expiry(expires_at)
    async with backend.change(actor) as work:
        checked = await checked_grants(work, account_id, grants)
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
    backend: Backend, actor: Actor, account_id: str, token_id: str, revoke_old_in_seconds: int | None = None
) -> CreatedServiceToken:
    """A new v2 token with the old one's name and grants; the old one stays valid until deleted, or for
    ``revoke_old_in_seconds`` more. A legacy token rotates into v2 the same way. The new token has no
    expiry: an old one's expiry is what rotation replaces."""
    require_account(actor.principal, account_id)
    require_token_admin(actor.principal)
    if revoke_old_in_seconds is not None and not 0 <= revoke_old_in_seconds <= MAX_REVOKE_OLD_IN_SECONDS:
        raise InvalidInput(f"revokeOldInSeconds must be 0 to {MAX_REVOKE_OLD_IN_SECONDS}")
    async with backend.change(actor) as work:
        old = await _locked_active(work, account_id, token_id, "rotated")
        # With revokeOldInSeconds 0 the old token stops being usable in this change: the count stays the same.
        still_usable = tokens.token_state(old.state, old.expires_at, datetime.now(UTC)) == "ACTIVE"
        await check_token_quota(work, backend, account_id, expiring=int(revoke_old_in_seconds == 0 and still_usable))
        grants = (await grant_store.grants_for_tokens(work.conn, [old.id])).get(old.id, [])
        created = await store_service_token(work, backend.newest_key, account_id, old.name, grants, None, old.id)
        if revoke_old_in_seconds is not None:
            await token_store.expire_within(work.conn, old.id, revoke_old_in_seconds)
            await work.notify(TokenChanged(old.id))
        await work.audit(
            account_id,
            "service_token.rotated",
            old.id,
            new_token_id=created.record.id,
            from_format=old.format,
            revoke_old_in_seconds=revoke_old_in_seconds,
        )
    return created


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
        changes: dict[str, object] = {}
        if new_name is not None:
            record = await token_store.rename_token(work.conn, token_id, new_name)
            changes["name"] = new_name
        if checked is not None:
            await grant_store.replace_token_grants(work.conn, account_id, token_id, checked)
            changes["grants"] = _sets(checked)
        await work.audit(account_id, "service_token.updated", token_id, **changes)
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


async def report_leaked(backend: Backend, actor: Actor, text: str) -> bool:
    """Revoke a token reported as leaked if it is still usable, audited in the token's account; True then.

    Anything else answers False. The token's account learns who reported only when the reporter is one of its
    own principals; the answer never says whose token it was.
    """
    try:
        parsed = tokens.parse_token(text.strip())
    except tokens.MalformedToken:
        return False
    credential = await find_credential(backend.pool, backend.keys, parsed, backend.verify_legacy)
    if credential is None or credential_state(credential, datetime.now(UTC)) != "ACTIVE":
        return False
    reporter = actor.principal
    if reporter is None or reporter.account_id != credential.account_id:
        actor = Actor("anonymous", actor.source, actor.client_addr)
    async with backend.change(actor) as work:
        revoked = await token_store.revoke_if_usable(work.conn, credential.id)
        if revoked is None:
            return False
        action = "service_token.leak_reported" if revoked.kind == "service" else "user_token.leak_reported"
        await work.audit(revoked.account_id, action, revoked.id, revoked=True)
        await work.notify(TokenChanged(revoked.id))
    return True


async def audit_expired_use(backend: Backend, credential: Credential, client_addr: str | None, source: str) -> None:
    """Audit the first refused use of an expired service token; later uses (anywhere) record nothing."""
    async with backend.change(Actor(principal_from_credential(credential).actor, source, client_addr)) as work:
        if await token_store.claim_expiry_audit(work.conn, credential.id):
            await work.audit(credential.account_id, "service_token.expired_on_use", credential.id)
