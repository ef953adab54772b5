"""SCIM tokens, and what the identity provider knows a member by (userName and its SCIM record)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from tokengate.core import tokens
from tokengate.store import Executor

SCIM_TOKEN_COLUMNS = "id, account_id, name, created_by, created_at, last_used_at, revoked_at"
INSERT_TOKEN = (
    "INSERT INTO scim_tokens (id, account_id, name, hash, key_id, created_by) VALUES ($1, $2, $3, $4, $5, $6)"
    " RETURNING " + SCIM_TOKEN_COLUMNS
)
TOKENS_OF_ACCOUNT = (
    "SELECT " + SCIM_TOKEN_COLUMNS + " FROM scim_tokens WHERE account_id = $1 AND ($2 OR revoked_at IS NULL)"
    " ORDER BY created_at, id"
)
# Conditional: of concurrent revocations one changes the row (and audits it).
REVOKE = (
    "UPDATE scim_tokens SET revoked_at = now() WHERE account_id = $1 AND id = $2 AND revoked_at IS NULL"
    " RETURNING " + SCIM_TOKEN_COLUMNS
)
TOKEN_BY_ID = "SELECT " + SCIM_TOKEN_COLUMNS + " FROM scim_tokens WHERE account_id = $1 AND id = $2"
# Everything a SCIM request needs about its token, in one query: read at every request (no cache), so a
# revocation holds on every instance from the next request.
CALLER = """
SELECT s.id, s.account_id, s.hash, s.revoked_at IS NULL AS usable, a.name AS account_name, a.plan AS account_plan,
       ARRAY(SELECT p.id FROM projects p WHERE p.account_id = s.account_id) AS project_ids
FROM scim_tokens s JOIN accounts a ON a.id = s.account_id WHERE s.id = $1
"""
TOUCH = (
    "UPDATE scim_tokens SET last_used_at = now()"
    " WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"
)


@dataclass(frozen=True, slots=True)
class ScimTokenRow:
    id: str
    account_id: str
    name: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class ScimCredential:
    id: str
    account_id: str
    hash: bytes
    usable: bool
    account_name: str
    account_plan: str
    project_ids: frozenset[str]

    def __repr__(self) -> str:
        return f"ScimCredential(id={self.id!r}, usable={self.usable!r})"


async def insert_token(
    db: Executor, key: bytes, account_id: str, name: str, created_by: str
) -> tuple[tokens.IssuedToken, ScimTokenRow]:
    """A fresh SCIM token stored as its keyed hash; the returned text is the only copy."""
    issued = tokens.issue_scim_token()
    row = await db.fetchrow(
        INSERT_TOKEN, issued.id, account_id, name, tokens.hash_token(issued.text, key), tokens.key_id(key), created_by
    )
    return issued, ScimTokenRow(**dict(row))


async def tokens_of_account(db: Executor, account_id: str, include_revoked: bool = False) -> list[ScimTokenRow]:
    return [ScimTokenRow(**dict(row)) for row in await db.fetch(TOKENS_OF_ACCOUNT, account_id, include_revoked)]


async def token_by_id(db: Executor, account_id: str, token_id: str) -> ScimTokenRow | None:
    row = await db.fetchrow(TOKEN_BY_ID, account_id, token_id)
    return ScimTokenRow(**dict(row)) if row else None


async def revoke_token(db: Executor, account_id: str, token_id: str) -> ScimTokenRow | None:
    """Revoke a usable SCIM token of the account; None when it was revoked already (or is not the account's)."""
    row = await db.fetchrow(REVOKE, account_id, token_id)
    return ScimTokenRow(**dict(row)) if row else None


async def credential(db: Executor, token_id: str) -> ScimCredential | None:
    row = await db.fetchrow(CALLER, token_id)
    if row is None:
        return None
    values = dict(row)
    values["project_ids"] = frozenset(values["project_ids"])
    return ScimCredential(**values)


async def touch(db: Executor, token_id: str) -> None:
    """Note the token's use (at most once a minute: a provider's sync is many requests)."""
    await db.execute(TOUCH, token_id)


# Members as SCIM resources.

MEMBER_COLUMNS = (
    "id, account_id, email, license, state, created_at, coalesce(scim_user_name, email) AS user_name,"
    " scim_profile::text AS profile"
)
# A member removed through SCIM is no resource any more (scim_deleted_at): found by nothing below but USER_NAME_TAKEN.
MEMBER = "SELECT " + MEMBER_COLUMNS + " FROM users WHERE account_id = $1 AND id = $2 AND scim_deleted_at IS NULL"
# One statement for every list: an absent filter is NULL. userName and the e-mail compare case-insensitively
# (RFC 7643 makes userName caseExact false), externalId exactly (caseExact true).
MEMBER_FILTER = """
FROM users WHERE account_id = $1 AND scim_deleted_at IS NULL
  AND ($2::text IS NULL OR lower(coalesce(scim_user_name, email)) = lower($2))
  AND ($3::text IS NULL OR scim_profile->>'externalId' = $3)
  AND ($4::text IS NULL OR id = $4)
  AND ($5::text IS NULL OR lower(email) = lower($5))
"""
MEMBER_PAGE = "SELECT " + MEMBER_COLUMNS + MEMBER_FILTER + " ORDER BY created_at, id OFFSET $6 LIMIT $7"
MEMBER_COUNT = "SELECT count(*)" + MEMBER_FILTER
SET_RECORD = "UPDATE users SET scim_user_name = $2, scim_profile = $3::jsonb WHERE id = $1"
SET_EMAIL = "UPDATE users SET email = $2 WHERE id = $1"
MARK_DELETED = "UPDATE users SET scim_deleted_at = now() WHERE id = $1 AND scim_deleted_at IS NULL"
USER_NAME_TAKEN = (
    "SELECT EXISTS (SELECT 1 FROM users WHERE account_id = $1 AND id IS DISTINCT FROM $3"
    " AND lower(coalesce(scim_user_name, email)) = lower($2))"
)

EMAIL_TAKEN = (
    "SELECT EXISTS (SELECT 1 FROM users WHERE account_id = $1 AND id IS DISTINCT FROM $3 AND lower(email) = lower($2))"
)


class Taken(Exception):
    """Another member of the account has this userName or e-mail."""


@dataclass(frozen=True, slots=True)
class MemberRecord:
    id: str
    account_id: str
    email: str
    license: str
    state: str
    created_at: datetime
    user_name: str
    profile: dict[str, Any]


def _member(row: asyncpg.Record) -> MemberRecord:
    values = dict(row)
    values["profile"] = json.loads(values["profile"])
    return MemberRecord(**values)


@dataclass(frozen=True, slots=True)
class MemberFilter:
    """Which members a list holds; None leaves that side open."""

    user_name: str | None = None
    external_id: str | None = None
    id: str | None = None
    email: str | None = None
    nothing: bool = False  # a filter no member can match (an id of another form, say)

    def arguments(self, account_id: str) -> tuple[Any, ...]:
        return account_id, self.user_name, self.external_id, self.id, self.email


async def member(db: Executor, account_id: str, user_id: str) -> MemberRecord | None:
    row = await db.fetchrow(MEMBER, account_id, user_id)
    return _member(row) if row else None


async def member_page(
    db: Executor, account_id: str, wanted: MemberFilter, offset: int, limit: int
) -> list[MemberRecord]:
    if wanted.nothing:
        return []
    return [_member(row) for row in await db.fetch(MEMBER_PAGE, *wanted.arguments(account_id), offset, limit)]


async def count_members(db: Executor, account_id: str, wanted: MemberFilter) -> int:
    if wanted.nothing:
        return 0
    return int(await db.fetchval(MEMBER_COUNT, *wanted.arguments(account_id)))


async def user_name_taken(db: Executor, account_id: str, user_name: str, user_id: str | None = None) -> bool:
    return bool(await db.fetchval(USER_NAME_TAKEN, account_id, user_name, user_id))


async def email_taken(db: Executor, account_id: str, email: str, user_id: str | None = None) -> bool:
    return bool(await db.fetchval(EMAIL_TAKEN, account_id, email, user_id))


async def set_record(db: Executor, user_id: str, user_name: str, profile: dict[str, Any]) -> None:
    """The member's userName and SCIM record; ``Taken`` when another member of the account has the userName."""
    try:
        await db.execute(SET_RECORD, user_id, user_name, json.dumps(profile))
    except asyncpg.UniqueViolationError:
        raise Taken from None


async def set_email(db: Executor, user_id: str, email: str) -> None:
    try:
        await db.execute(SET_EMAIL, user_id, email)
    except asyncpg.UniqueViolationError:
        raise Taken from None


async def mark_deleted(db: Executor, user_id: str) -> None:
    await db.execute(MARK_DELETED, user_id)


# The last active ACCOUNT_ADMIN (core/policy.py ``holds_account_admin``: a grant of the set under a license that
# lets it act) must stay: counted under the account's row lock, so two concurrent changes cannot each leave the
# other as the last one and both go through.
LOCK_ACCOUNT = "SELECT id FROM accounts WHERE id = $1 FOR UPDATE"
OTHER_ACTIVE_ADMINS = """
SELECT count(*) FROM users u
WHERE u.account_id = $1 AND u.id <> $2 AND u.state = 'active' AND u.license <> 'READ_ONLY'
  AND EXISTS (SELECT 1 FROM grants g WHERE g.user_id = u.id AND g.permission_set = 'ACCOUNT_ADMIN')
"""


async def other_active_admins(db: Executor, account_id: str, user_id: str) -> int:
    """How many active members of the account other than ``user_id`` act as ACCOUNT_ADMIN, with the account's
    row locked until the transaction ends."""
    await db.execute(LOCK_ACCOUNT, account_id)
    return int(await db.fetchval(OTHER_ACTIVE_ADMINS, account_id, user_id))
