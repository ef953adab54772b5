"""Users of an account and their license."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from tokengate.store import Executor

INSERT = """
INSERT INTO users (id, account_id, email, license) VALUES ($1, $2, $3, $4)
RETURNING id, account_id, email, license, state, created_at
"""
USER_COLUMNS = "id, account_id, email, license, state, created_at"
BY_ID = "SELECT " + USER_COLUMNS + " FROM users WHERE id = $1"
BY_ACCOUNT = "SELECT " + USER_COLUMNS + " FROM users WHERE account_id = $1 ORDER BY created_at, id"
# The row lock serialises updates and deactivation of one user.
FOR_UPDATE = "SELECT " + USER_COLUMNS + " FROM users WHERE account_id = $1 AND id = $2 FOR UPDATE"
FOR_UPDATE_BY_EMAIL = (
    "SELECT " + USER_COLUMNS + " FROM users WHERE account_id = $1 AND lower(email) = lower($2) FOR UPDATE"
)
SET_LICENSE = "UPDATE users SET license = $2 WHERE id = $1 RETURNING " + USER_COLUMNS
DEACTIVATE = (
    "UPDATE users SET state = 'deactivated', deactivated_at = now() WHERE id = $1 AND state = 'active' RETURNING "
    + USER_COLUMNS
)

REACTIVATE = (
    "UPDATE users SET state = 'active', deactivated_at = NULL WHERE id = $1 AND state = 'deactivated' RETURNING "
    + USER_COLUMNS
)


class DuplicateEmail(Exception):
    pass


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    account_id: str
    email: str
    license: str
    state: str  # active | deactivated
    created_at: datetime


async def create_user(db: Executor, user_id: str, account_id: str, email: str, license_: str) -> UserRow:
    try:
        row = await db.fetchrow(INSERT, user_id, account_id, email, license_)
    except asyncpg.UniqueViolationError:
        raise DuplicateEmail(email) from None
    return UserRow(**dict(row))


async def get_user(db: Executor, user_id: str) -> UserRow | None:
    row = await db.fetchrow(BY_ID, user_id)
    return UserRow(**dict(row)) if row else None


async def list_users(db: Executor, account_id: str) -> list[UserRow]:
    return [UserRow(**dict(row)) for row in await db.fetch(BY_ACCOUNT, account_id)]


async def lock_user(db: Executor, account_id: str, user_id: str) -> UserRow | None:
    """The account's user, locked until the transaction ends; None for unknown or foreign ids."""
    row = await db.fetchrow(FOR_UPDATE, account_id, user_id)
    return UserRow(**dict(row)) if row else None


async def lock_user_by_email(db: Executor, account_id: str, email: str) -> UserRow | None:
    """The account's user with this e-mail (case-insensitively, as the unique index compares), locked; or None."""
    row = await db.fetchrow(FOR_UPDATE_BY_EMAIL, account_id, email)
    return UserRow(**dict(row)) if row else None


async def set_license(db: Executor, user_id: str, license_: str) -> UserRow:
    return UserRow(**dict(await db.fetchrow(SET_LICENSE, user_id, license_)))


async def deactivate_user(db: Executor, user_id: str) -> UserRow | None:
    """Marks an active user deactivated; None when it already was."""
    row = await db.fetchrow(DEACTIVATE, user_id)
    return UserRow(**dict(row)) if row else None


async def reactivate_user(db: Executor, user_id: str) -> UserRow:
    """Marks a deactivated user active again (the caller holds its row lock and saw it deactivated)."""
    return UserRow(**dict(await db.fetchrow(REACTIVATE, user_id)))


# Keyset pages of an account's users, in the order of list_users.
PAGE = (
    "SELECT "
    + USER_COLUMNS
    + """ FROM users WHERE account_id = $1
  AND ($2::text IS NULL OR (created_at, id) > (SELECT a.created_at, a.id FROM users a WHERE a.id = $2))
ORDER BY created_at, id LIMIT $3"""
)
COUNT = "SELECT count(*) FROM users WHERE account_id = $1"
HAS_USER = "SELECT EXISTS (SELECT 1 FROM users WHERE account_id = $1 AND id = $2)"


async def user_page(db: Executor, account_id: str, after_id: str | None, limit: int) -> list[UserRow]:
    """Up to ``limit`` users that follow ``after_id`` (a user of the account)."""
    return [UserRow(**dict(row)) for row in await db.fetch(PAGE, account_id, after_id, limit)]


async def count_users(db: Executor, account_id: str) -> int:
    return int(await db.fetchval(COUNT, account_id))


async def has_user(db: Executor, account_id: str, user_id: str) -> bool:
    return bool(await db.fetchval(HAS_USER, account_id, user_id))
