"""Token operations shared by the CLI and the GraphQL API: store calls, hashing and audit together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokengate import tokens
from tokengate.policy import Grant
from tokengate.store import Executor, audit, notify
from tokengate.store import accounts as account_store
from tokengate.store import grants as grant_store
from tokengate.store import tokens as token_store
from tokengate.store import users as user_store
from tokengate.store.accounts import Account
from tokengate.store.audit import AuditEntry
from tokengate.store.tokens import TokenRecord
from tokengate.store.users import User


@dataclass(frozen=True)
class Actor:
    """Who makes a change and through which door, for the audit log."""

    name: str  # user:usr_… | service_token:… | cli
    source: str  # graphql | cli
    client_addr: str | None = None

    def entry(self, account_id: str, action: str, target_id: str | None, **details: object) -> AuditEntry:
        return AuditEntry(account_id, action, self.name, self.source, self.client_addr, target_id, dict(details))


CLI_ACTOR = Actor(name="cli", source="cli")


async def insert_v2_token(
    conn: Executor,
    key: bytes,
    kind: tokens.TokenKind,
    account_id: str,
    name: str,
    actor: Actor,
    **columns: Any,
) -> tuple[tokens.IssuedToken, TokenRecord]:
    """A fresh v2 token stored as its keyed hash (with the key's id); the text is the only copy."""
    issued = tokens.issue_token(kind)
    record = await token_store.insert_token(
        conn,
        token_id=issued.id,
        account_id=account_id,
        kind=kind,
        format_="v2",
        token_hash=tokens.hash_token(issued.text, key),
        key_id=tokens.key_id(key),
        name=name,
        created_by=actor.name,
        **columns,
    )
    return issued, record


async def issue_user_token(conn: Executor, key: bytes, user: User, name: str, actor: Actor) -> tokens.IssuedToken:
    """A personal token for ``user``; the returned text is the only copy of the secret."""
    issued, _ = await insert_v2_token(conn, key, "user", user.account_id, name, actor, user_id=user.id)
    await audit.record(conn, actor.entry(user.account_id, "user_token.created", issued.id, user_id=user.id, name=name))
    return issued


async def bootstrap_account(
    conn: Executor, key: bytes, name: str, plan: str, admin_email: str, actor: Actor = CLI_ACTOR
) -> tuple[Account, User, tokens.IssuedToken]:
    """A new account with its first user (Developer license, ACCOUNT_ADMIN) and that user's token.

    Run it inside a transaction: the four rows and their audit events land together or not at all.
    """
    account = await account_store.create_account(conn, tokens.new_id("acc"), name, plan)
    user = await user_store.create_user(conn, tokens.new_id("usr"), account.id, admin_email, "DEVELOPER")
    await grant_store.add_user_grants(conn, account.id, user.id, [Grant("ACCOUNT_ADMIN", True, ())])
    await audit.record(conn, actor.entry(account.id, "user.created", user.id, license="DEVELOPER"))
    issued = await issue_user_token(conn, key, user, "bootstrap", actor)
    return account, user, issued


class TokenNotFound(LookupError):
    """No service token with this id in the account (an id of another account included)."""


class TokenDeleted(ValueError):
    """The token is deleted: it can be listed, not changed."""


class DuplicateLegacySecret(ValueError):
    """A legacy token with this secret is already stored."""


@dataclass(frozen=True)
class CreatedServiceToken:
    record: TokenRecord
    grants: tuple[Grant, ...]
    secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"CreatedServiceToken(id={self.record.id!r})"


def _grant_sets(grants: Sequence[Grant]) -> list[str]:
    return [g.permission_set for g in grants]


async def insert_service_token(
    conn: Executor,
    key: bytes,
    account_id: str,
    name: str,
    grants: Sequence[Grant],
    actor: Actor,
    expires_at: datetime | None = None,
    rotated_from: str | None = None,
) -> CreatedServiceToken:
    """A v2 service token and its (already checked) grants, without an audit event: the callers audit."""
    issued, record = await insert_v2_token(
        conn, key, "service", account_id, name, actor, expires_at=expires_at, rotated_from=rotated_from
    )
    await grant_store.replace_token_grants(conn, account_id, issued.id, grants)
    return CreatedServiceToken(record, tuple(grants), issued.text)


async def create_service_token(
    conn: Executor,
    key: bytes,
    account_id: str,
    name: str,
    grants: Sequence[Grant],
    actor: Actor,
    expires_at: datetime | None = None,
) -> CreatedServiceToken:
    """A v2 service token with its (already checked) grants. Run inside a transaction."""
    created = await insert_service_token(conn, key, account_id, name, grants, actor, expires_at)
    await audit.record(
        conn,
        actor.entry(
            account_id,
            "service_token.created",
            created.record.id,
            name=name,
            grants=_grant_sets(grants),
            expires_at=expires_at.isoformat() if expires_at else None,
        ),
    )
    return created


async def rotate_service_token(
    conn: Executor, key: bytes, account_id: str, token_id: str, actor: Actor, revoke_old_in_seconds: int | None
) -> CreatedServiceToken:
    """A new v2 token with the old one's name and grants; the old one stays valid until deleted, or for
    ``revoke_old_in_seconds`` more. A legacy token rotates into v2 the same way. Run inside a transaction.
    The new token has no expiry: an old one's expiry is what rotation replaces.
    """
    old = await token_store.lock_service_token(conn, account_id, token_id)
    if old is None:
        raise TokenNotFound(token_id)
    if old.state == "deleted":
        raise TokenDeleted("a deleted token cannot be rotated")
    grants = (await grant_store.grants_for_tokens(conn, [old.id])).get(old.id, [])
    created = await insert_service_token(conn, key, account_id, old.name, grants, actor, None, old.id)
    if revoke_old_in_seconds is not None:
        await token_store.expire_within(conn, old.id, revoke_old_in_seconds)
        await notify.publish(conn, "token", token_id=old.id)
    await audit.record(
        conn,
        actor.entry(
            account_id,
            "service_token.rotated",
            old.id,
            new_token_id=created.record.id,
            from_format=old.format,
            revoke_old_in_seconds=revoke_old_in_seconds,
        ),
    )
    return created


async def update_service_token(
    conn: Executor,
    account_id: str,
    token_id: str,
    actor: Actor,
    name: str | None = None,
    grants: Sequence[Grant] | None = None,
) -> TokenRecord:
    """Rename and/or replace the grants (already checked); holds from the next request. In a transaction."""
    record = await token_store.lock_service_token(conn, account_id, token_id)
    if record is None:
        raise TokenNotFound(token_id)
    if record.state == "deleted":
        raise TokenDeleted("a deleted token cannot be changed")
    if name is None and grants is None:
        return record
    changes: dict[str, object] = {}
    if name is not None:
        record = await token_store.rename_token(conn, token_id, name)
        changes["name"] = name
    if grants is not None:
        await grant_store.replace_token_grants(conn, account_id, token_id, grants)
        changes["grants"] = _grant_sets(grants)
    await audit.record(conn, actor.entry(account_id, "service_token.updated", token_id, **changes))
    await notify.publish(conn, "token", token_id=token_id)
    return record


async def delete_service_token(conn: Executor, account_id: str, token_id: str, actor: Actor) -> TokenRecord:
    """Invalid at once; the record stays. Deleting a deleted token returns it unchanged, audited once."""
    deleted = await token_store.delete_service_token(conn, account_id, token_id)
    if deleted is None:
        existing = await token_store.token_by_id(conn, account_id, token_id)
        if existing is None or existing.kind != "service":
            raise TokenNotFound(token_id)
        return existing
    await audit.record(conn, actor.entry(account_id, "service_token.deleted", token_id))
    await notify.publish(conn, "token", token_id=token_id)
    return deleted


async def import_legacy_token(
    conn: Executor,
    account_id: str,
    name: str,
    created_at: datetime,
    grants: Sequence[Grant],
    actor: Actor,
    secret: str | None = None,
) -> tokens.IssuedToken:
    """Store a pre-2023-07-18 token (40 hex characters) as argon2id with its non-secret lookup hint.

    ``secret`` must already be a well-formed legacy secret; one is generated when it is None.
    Run inside a transaction.
    """
    text = secret if secret is not None else tokens.new_legacy_secret()
    hint = tokens.parse_token(text).lookup
    for candidate in await token_store.credentials_by_hint(conn, hint):
        if tokens.legacy_matches(text, candidate.hash):
            raise DuplicateLegacySecret("a legacy token with this secret is already stored")
    token_id = tokens.random_base62(tokens.ID_LENGTH)
    await token_store.insert_token(
        conn,
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
    await grant_store.replace_token_grants(conn, account_id, token_id, grants)
    await audit.record(
        conn,
        actor.entry(
            account_id,
            "legacy_token.imported",
            token_id,
            name=name,
            created_at=created_at.isoformat(),
            grants=_grant_sets(grants),
        ),
    )
    return tokens.IssuedToken(id=token_id, text=text)


async def revoke_leaked_token(conn: Executor, token_id: str, actor: Actor) -> bool:
    """Revoke a token reported as leaked if it is still usable; audit it in the token's account."""
    revoked = await token_store.revoke_if_usable(conn, token_id)
    if revoked is None:
        return False
    action = "service_token.leak_reported" if revoked.kind == "service" else "user_token.leak_reported"
    await audit.record(conn, actor.entry(revoked.account_id, action, revoked.id, revoked=True))
    await notify.publish(conn, "token", token_id=revoked.id)
    return True


async def audit_expired_use(conn: Executor, account_id: str, token_id: str, actor: Actor) -> bool:
    """Audit the first refused use of an expired service token; later uses (anywhere) record nothing."""
    if not await token_store.claim_expiry_audit(conn, token_id):
        return False
    await audit.record(conn, actor.entry(account_id, "service_token.expired_on_use", token_id))
    return True
