"""Service and user tokens: rows keyed by the id inside the token, holding only a hash."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tokengate.core import tokens
from tokengate.core.policy import SERVICE_TOKEN, USER, Grant, Principal
from tokengate.store import Executor
from tokengate.store.grants import grants_from_document

TOKEN_COLUMNS = """
t.id, t.account_id, t.kind, t.format, t.lookup_hint, t.name, t.user_id, t.state, t.created_at,
t.created_by, t.expires_at, t.last_used_at, t.deleted_at, t.rotated_from, t.last_used_from
"""
RETURNING_TOKEN = " RETURNING " + TOKEN_COLUMNS.replace("t.", "")

INSERT = (
    """
INSERT INTO tokens (id, account_id, kind, format, lookup_hint, hash, name, user_id, created_by, created_at, expires_at,
                    rotated_from, key_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10, now()), $11, $12, $13)
"""
    + RETURNING_TOKEN
)

# The one rule of "usable" in SQL, and its "expired" (tokens.token_state is the same rule in Python). One clock
# decides whether a token may authenticate: the application's (core/tokens.py). What authentication acts on is
# compared with a time the application passes (``*_AT``, its ``$2``), and every expiry is computed by the
# application too (the rotation window: EXPIRE_BY). Listings, counts and notices compare with the database's
# now(): they may disagree with authentication by the skew between the two clocks (docs/operations.md "Clocks").
USABLE = "t.state = 'active' AND (t.expires_at IS NULL OR t.expires_at > now())"
USABLE_AT = "t.state = 'active' AND (t.expires_at IS NULL OR t.expires_at > $2::timestamptz)"
EXPIRED_AT = "t.state = 'active' AND t.expires_at <= $2::timestamptz"

# Everything authentication needs, in one indexed query: the token, its account, the user's license,
# the grants (the token's own, or its user's) and the ids of the account's projects. A deactivated user's
# personal tokens read as deleted: refused like any deleted token, whichever instance asks.
CREDENTIAL_SELECT = """
SELECT t.id, t.account_id, t.kind, t.format, t.hash, t.key_id,
       CASE WHEN u.state = 'deactivated' THEN 'deleted' ELSE t.state END AS state,
       t.expires_at, t.created_at, t.user_id, t.lookup_hint,
       t.expiry_audited_at IS NOT NULL AS expiry_audited, t.trust_policy_id,
       a.name AS account_name, a.plan AS account_plan, u.license,
       ARRAY(SELECT p.id FROM projects p WHERE p.account_id = t.account_id) AS project_ids,
       (SELECT json_agg(json_build_array(g.permission_set, g.all_projects, g.project_ids, g.id)
                        ORDER BY g.position, g.id)::text
          FROM grants g
         WHERE g.token_id = t.id OR (t.user_id IS NOT NULL AND g.user_id = t.user_id)) AS grants
FROM tokens t
JOIN accounts a ON a.id = t.account_id
LEFT JOIN users u ON u.id = t.user_id
"""
CREDENTIAL_BY_ID = CREDENTIAL_SELECT + " WHERE t.id = $1 AND t.format = 'v2'"
CREDENTIAL_OF_TOKEN = CREDENTIAL_SELECT + " WHERE t.id = $1"  # either format: a webhook owner's grants
CREDENTIALS_BY_HINT = CREDENTIAL_SELECT + " WHERE t.lookup_hint = $1 AND t.format = 'legacy'"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    account_id: str
    kind: str
    format: str
    lookup_hint: str | None
    name: str
    user_id: str | None
    state: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    deleted_at: datetime | None
    rotated_from: str | None = None
    last_used_from: list[str] = field(default_factory=list)  # the last distinct client addresses, newest first


@dataclass(frozen=True, slots=True)
class Credential:
    """A stored token with what is needed to build its principal. ``hash`` never leaves auth."""

    id: str
    account_id: str
    kind: str
    format: str
    hash: bytes
    key_id: str | None  # which server key made ``hash`` (tokens.key_id); None: legacy, or not recorded yet
    state: str
    expires_at: datetime | None
    created_at: datetime
    user_id: str | None
    lookup_hint: str | None
    expiry_audited: bool
    trust_policy_id: str | None  # an exchanged token's policy (docs/keyless-ci.md); None otherwise
    account_name: str
    account_plan: str
    license: str | None
    project_ids: frozenset[str]
    grants: tuple[Grant, ...]

    def __repr__(self) -> str:
        return f"Credential(id={self.id!r}, kind={self.kind!r}, state={self.state!r})"


def _credential(row) -> Credential:
    values = dict(row)
    values["project_ids"] = frozenset(values["project_ids"])
    values["grants"] = grants_from_document(values["grants"])
    return Credential(**values)


def principal_from_credential(credential: Credential) -> Principal:
    kind = credential.kind  # "service" | "user" | "exchanged" (a service principal bound to its trust policy)
    return Principal(
        kind=USER if kind == "user" else SERVICE_TOKEN,
        token_id=credential.id,
        display_prefix=tokens.display_prefix_for(
            kind,  # type: ignore[arg-type]
            credential.format,
            credential.lookup_hint or credential.id,
        ),
        account_id=credential.account_id,
        account_name=credential.account_name,
        account_plan=credential.account_plan,
        user_id=credential.user_id,
        license=credential.license,
        grants=credential.grants,
        project_ids=credential.project_ids,
        expires_at=credential.expires_at,
        created_at=credential.created_at,
        trust_policy_id=credential.trust_policy_id,
    )


def credential_state(credential: Credential, now: datetime) -> tokens.TokenState:
    return tokens.token_state(credential.state, credential.expires_at, now)


async def insert_token(
    db: Executor,
    *,
    token_id: str,
    account_id: str,
    kind: str,
    format_: str,
    token_hash: bytes,
    name: str,
    created_by: str,
    user_id: str | None = None,
    lookup_hint: str | None = None,
    created_at: datetime | None = None,
    expires_at: datetime | None = None,
    rotated_from: str | None = None,
    key_id: str | None = None,
) -> TokenRecord:
    row = await db.fetchrow(
        INSERT,
        token_id,
        account_id,
        kind,
        format_,
        lookup_hint,
        token_hash,
        name,
        user_id,
        created_by,
        created_at,
        expires_at,
        rotated_from,
        key_id,
    )
    return TokenRecord(**dict(row))


async def credential_by_id(db: Executor, token_id: str) -> Credential | None:
    row = await db.fetchrow(CREDENTIAL_BY_ID, token_id)
    return _credential(row) if row else None


async def credential_of_token(db: Executor, token_id: str) -> Credential | None:
    """The stored token by its row key, whichever its format (not for authentication: that proves the text)."""
    row = await db.fetchrow(CREDENTIAL_OF_TOKEN, token_id)
    return _credential(row) if row else None


async def credentials_by_hint(db: Executor, hint: str) -> list[Credential]:
    return [_credential(row) for row in await db.fetch(CREDENTIALS_BY_HINT, hint)]


# Finds which (credential, argon2id hash) a legacy token's text proves; LegacyVerifier.first_match in a server.
LegacyVerify = Callable[[str, Sequence[tuple[Credential, bytes]]], Awaitable["Credential | None"]]


async def verify_in_thread(text: str, candidates: Sequence[tuple[Credential, bytes]]) -> Credential | None:
    """argon2id in a thread, one candidate after the other: for the command line, which keeps no pool."""
    for credential, stored in candidates:
        if await asyncio.to_thread(tokens.legacy_matches, text, stored):
            return credential
    return None


def proves_v2(parsed: tokens.ParsedToken, credential: Credential, keys: tuple[bytes, ...]) -> bool:
    return credential.kind == parsed.kind and tokens.hash_matches(parsed.text, credential.hash, keys)


async def find_credential(
    db: Executor, keys: tuple[bytes, ...], parsed: tokens.ParsedToken, verify_legacy: LegacyVerify | None = None
) -> Credential | None:
    """The stored token this text proves, whatever its state; None when no hash matches."""
    if parsed.format == "v2":
        credential = await credential_by_id(db, parsed.lookup)
        return credential if credential is not None and proves_v2(parsed, credential, keys) else None
    candidates = await credentials_by_hint(db, parsed.lookup)
    # argon2id takes tens of milliseconds: verified off the event loop so other requests go on.
    return await (verify_legacy or verify_in_thread)(parsed.text, [(c, c.hash) for c in candidates])


BY_ID = "SELECT " + TOKEN_COLUMNS + " FROM tokens t WHERE t.account_id = $1 AND t.id = $2"


async def token_by_id(db: Executor, account_id: str, token_id: str) -> TokenRecord | None:
    """A token of this account; None for an unknown id and for another account's id alike."""
    row = await db.fetchrow(BY_ID, account_id, token_id)
    return TokenRecord(**dict(row)) if row else None


# An account's service tokens (as ``t``), deleted ones only when $2, in their listing order (token_listing
# selects other columns of the same rows).
SERVICE_TOKENS_OF_ACCOUNT_WHERE = "t.account_id = $1 AND t.kind = 'service' AND ($2 OR t.state <> 'deleted')"
SERVICE_TOKENS_IN_ORDER = "ORDER BY t.created_at, t.id"
SERVICE_TOKENS_OF_ACCOUNT = f"""SELECT {TOKEN_COLUMNS} FROM tokens t
WHERE {SERVICE_TOKENS_OF_ACCOUNT_WHERE}
{SERVICE_TOKENS_IN_ORDER}"""
# The row lock serialises rotations, updates and deletions of one token.
SERVICE_TOKEN_FOR_UPDATE = (
    "SELECT " + TOKEN_COLUMNS + " FROM tokens t WHERE t.account_id = $1 AND t.id = $2 AND t.kind = 'service' FOR UPDATE"
)
# Conditional: of concurrent deletions only one changes the row (and audits it).
DELETE_SERVICE_TOKEN = (
    """
UPDATE tokens SET state = 'deleted', deleted_at = now()
WHERE account_id = $1 AND id = $2 AND kind = 'service' AND state = 'active'
"""
    + RETURNING_TOKEN
)
# least() ignores NULL: a token without expiry gets one; an earlier expiry is never pushed later. $2 is computed
# by the application, whose clock authentication compares it with.
EXPIRE_BY = "UPDATE tokens SET expires_at = least(expires_at, $2::timestamptz) WHERE id = $1" + RETURNING_TOKEN
RENAME = "UPDATE tokens SET name = $2 WHERE id = $1" + RETURNING_TOKEN
# Only the first refused use after expiry wins this update, across requests and processes.
CLAIM_EXPIRY_AUDIT = (
    "UPDATE tokens AS t SET expiry_audited_at = now() WHERE t.id = $1 AND t.expiry_audited_at IS NULL AND "
    + EXPIRED_AT
    + " RETURNING t.id"
)
# Revokes only a token that is still usable; of concurrent reports one wins.
REVOKE_USABLE = (
    "UPDATE tokens AS t SET state = 'deleted', deleted_at = now() WHERE t.id = $1 AND "
    + USABLE_AT
    + " RETURNING "
    + TOKEN_COLUMNS
)
# Compare-and-set on the old hash: of concurrent re-hashes of one token, one writes; the others change nothing.
REHASH = "UPDATE tokens SET hash = $3, key_id = $4 WHERE id = $1 AND hash = $2 AND format = 'v2'"
# Usable tokens by the key that hashed them (NULL: legacy, or v2 not recorded yet).
KEY_STATUS = "SELECT t.format, t.key_id, count(*) AS tokens FROM tokens t WHERE " + USABLE + " GROUP BY 1, 2"
# One statement for every token used since the last flush; greatest() keeps the time from moving back.
FLUSH_LAST_USED = """
UPDATE tokens AS t SET last_used_at = greatest(t.last_used_at, u.used_at)
FROM unnest($1::text[], $2::timestamptz[]) AS u (id, used_at)
WHERE t.id = u.id AND t.last_used_at IS DISTINCT FROM greatest(t.last_used_at, u.used_at)
"""


def _record(row) -> TokenRecord:
    return TokenRecord(**dict(row))


async def service_tokens_of_account(db: Executor, account_id: str, include_deleted: bool) -> list[TokenRecord]:
    return [_record(row) for row in await db.fetch(SERVICE_TOKENS_OF_ACCOUNT, account_id, include_deleted)]


async def lock_service_token(db: Executor, account_id: str, token_id: str) -> TokenRecord | None:
    """The account's service token, locked until the transaction ends; None for unknown or foreign ids."""
    row = await db.fetchrow(SERVICE_TOKEN_FOR_UPDATE, account_id, token_id)
    return _record(row) if row else None


async def delete_service_token(db: Executor, account_id: str, token_id: str) -> TokenRecord | None:
    """Marks an active token deleted; None when it was already deleted (or is not the account's)."""
    row = await db.fetchrow(DELETE_SERVICE_TOKEN, account_id, token_id)
    return _record(row) if row else None


async def expire_by(db: Executor, token_id: str, moment: datetime) -> TokenRecord:
    """The token expires at ``moment`` (the application's clock) unless it expires earlier already."""
    return _record(await db.fetchrow(EXPIRE_BY, token_id, moment))


async def rename_token(db: Executor, token_id: str, name: str) -> TokenRecord:
    return _record(await db.fetchrow(RENAME, token_id, name))


async def claim_expiry_audit(db: Executor, token_id: str, now: datetime) -> bool:
    """True for exactly one caller: the first refused use of this token, expired at ``now`` (the application's
    clock, which refused it)."""
    return await db.fetchval(CLAIM_EXPIRY_AUDIT, token_id, now) is not None


async def revoke_if_usable(db: Executor, token_id: str, now: datetime) -> TokenRecord | None:
    """Delete the token if it is usable at ``now`` (the application's clock, which authentication uses)."""
    row = await db.fetchrow(REVOKE_USABLE, token_id, now)
    return _record(row) if row else None


async def flush_last_used(db: Executor, used: dict[str, datetime]) -> None:
    ids = sorted(used)  # a stable order keeps concurrent flushes from deadlocking on the same rows
    await db.execute(FLUSH_LAST_USED, ids, [used[token_id] for token_id in ids])


async def rehash(db: Executor, token_id: str, old_hash: bytes, new_hash: bytes, key_id: str) -> bool:
    """Replace a v2 token's hash with one under another key; False when the stored hash was not ``old_hash``."""
    return await db.execute(REHASH, token_id, old_hash, new_hash, key_id) == "UPDATE 1"


@dataclass(frozen=True, slots=True)
class KeyCount:
    format: str
    key_id: str | None
    tokens: int


async def usable_tokens_by_key(db: Executor) -> list[KeyCount]:
    return [KeyCount(**dict(row)) for row in await db.fetch(KEY_STATUS)]


async def insert_v2(
    db: Executor,
    key: bytes,
    kind: tokens.TokenKind,
    account_id: str,
    name: str,
    created_by: str,
    **columns: Any,
) -> tuple[tokens.IssuedToken, TokenRecord]:
    """A fresh v2 token stored as its keyed hash (with the key's id); the returned text is the only copy."""
    issued = tokens.issue_token(kind)
    record = await insert_token(
        db,
        token_id=issued.id,
        account_id=account_id,
        kind=kind,
        format_="v2",
        token_hash=tokens.hash_token(issued.text, key),
        key_id=tokens.key_id(key),
        name=name,
        created_by=created_by,
        **columns,
    )
    return issued, record


USER_TOKENS_OF_USERS = (
    "SELECT "
    + TOKEN_COLUMNS
    + " FROM tokens t WHERE t.user_id = ANY($1::text[]) AND t.kind = 'user' ORDER BY t.created_at, t.id"
)
# Conditional, like DELETE_SERVICE_TOKEN: of concurrent deletions one changes the row (and audits it).
DELETE_USER_TOKEN = (
    """
UPDATE tokens SET state = 'deleted', deleted_at = now()
WHERE account_id = $1 AND id = $2 AND kind = 'user' AND state = 'active'
"""
    + RETURNING_TOKEN
)
DELETE_TOKENS_OF_USER = (
    "UPDATE tokens SET state = 'deleted', deleted_at = now() WHERE user_id = $1 AND kind = 'user' AND state = 'active'"
    + " RETURNING id"
)


async def user_tokens_of_users(db: Executor, user_ids: list[str]) -> dict[str, list[TokenRecord]]:
    """The personal tokens of each user (deleted and expired ones too), oldest first."""
    found: dict[str, list[TokenRecord]] = {user_id: [] for user_id in user_ids}
    for row in await db.fetch(USER_TOKENS_OF_USERS, user_ids):
        found[row["user_id"]].append(_record(row))
    return found


async def delete_user_token(db: Executor, account_id: str, token_id: str) -> TokenRecord | None:
    """Marks an active personal token deleted; None when it was already deleted (or is not the account's)."""
    row = await db.fetchrow(DELETE_USER_TOKEN, account_id, token_id)
    return _record(row) if row else None


async def delete_tokens_of_user(db: Executor, user_id: str) -> list[str]:
    """Marks every active personal token of the user deleted; their ids."""
    return [row["id"] for row in await db.fetch(DELETE_TOKENS_OF_USER, user_id)]


# Keyset pages of an account's service tokens, oldest first (the order of service_tokens_of_account), with
# the filter of Account.serviceTokenConnection. STATE is tokens.token_state in SQL; $5 is tokens.LEGACY_CUTOFF.
STATE = "CASE WHEN " + USABLE + " THEN 'ACTIVE' WHEN t.state = 'deleted' THEN 'DELETED' ELSE 'EXPIRED' END"
SERVICE_TOKEN_FILTER = (
    "t.account_id = $1 AND t.kind = 'service' AND "
    + STATE
    + """ = ANY($2::text[])
AND ($3::text IS NULL OR t.format = $3)
AND ($4::boolean IS NULL OR (t.format = 'legacy' OR t.created_at < $5::timestamptz) = $4)
AND ($6::timestamptz IS NULL OR t.expires_at < $6)"""
)
SERVICE_TOKEN_PAGE = (
    "SELECT "
    + TOKEN_COLUMNS
    + " FROM tokens t WHERE "
    + SERVICE_TOKEN_FILTER
    + """
AND ($7::text IS NULL OR (t.created_at, t.id) > (SELECT a.created_at, a.id FROM tokens a WHERE a.id = $7))
ORDER BY t.created_at, t.id LIMIT $8"""
)
SERVICE_TOKEN_COUNT = "SELECT count(*) FROM tokens t WHERE " + SERVICE_TOKEN_FILTER
HAS_SERVICE_TOKEN = "SELECT EXISTS (SELECT 1 FROM tokens WHERE account_id = $1 AND id = $2 AND kind = 'service')"


@dataclass(frozen=True, slots=True)
class ServiceTokenFilter:
    """Which service tokens a page holds; None means any."""

    states: tuple[str, ...] = ("ACTIVE", "EXPIRED")
    format: str | None = None  # v2 | legacy
    rotation_recommended: bool | None = None
    expiring_before: datetime | None = None

    def arguments(self, account_id: str) -> tuple[Any, ...]:
        return (
            account_id,
            list(self.states),
            self.format,
            self.rotation_recommended,
            tokens.LEGACY_CUTOFF,
            self.expiring_before,
        )


async def service_token_page(
    db: Executor, account_id: str, wanted: ServiceTokenFilter, after_id: str | None, limit: int
) -> list[TokenRecord]:
    """Up to ``limit`` tokens that follow ``after_id`` (a token of the account) in the list's order."""
    rows = await db.fetch(SERVICE_TOKEN_PAGE, *wanted.arguments(account_id), after_id, limit)
    return [_record(row) for row in rows]


async def count_service_tokens(db: Executor, account_id: str, wanted: ServiceTokenFilter) -> int:
    return int(await db.fetchval(SERVICE_TOKEN_COUNT, *wanted.arguments(account_id)))


async def has_service_token(db: Executor, account_id: str, token_id: str) -> bool:
    """Whether the account has this service token (false for another account's token and a made-up id alike)."""
    return bool(await db.fetchval(HAS_SERVICE_TOKEN, account_id, token_id))
