"""Users of an account and their license."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from tokengate.store import Executor

INSERT = """
INSERT INTO users (id, account_id, email, license) VALUES ($1, $2, $3, $4)
RETURNING id, account_id, email, license, created_at
"""
BY_ID = "SELECT id, account_id, email, license, created_at FROM users WHERE id = $1"
BY_ACCOUNT = (
    "SELECT id, account_id, email, license, created_at FROM users WHERE account_id = $1 ORDER BY created_at, id"
)


class DuplicateEmail(Exception):
    pass


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    account_id: str
    email: str
    license: str
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


# Keyset pages of an account's users, in the order of list_users.
PAGE = """
SELECT id, account_id, email, license, created_at FROM users
WHERE account_id = $1
  AND ($2::text IS NULL OR (created_at, id) > (SELECT a.created_at, a.id FROM users a WHERE a.id = $2))
ORDER BY created_at, id LIMIT $3
"""
COUNT = "SELECT count(*) FROM users WHERE account_id = $1"
HAS_USER = "SELECT EXISTS (SELECT 1 FROM users WHERE account_id = $1 AND id = $2)"


async def user_page(db: Executor, account_id: str, after_id: str | None, limit: int) -> list[UserRow]:
    """Up to ``limit`` users that follow ``after_id`` (a user of the account)."""
    return [UserRow(**dict(row)) for row in await db.fetch(PAGE, account_id, after_id, limit)]


async def count_users(db: Executor, account_id: str) -> int:
    return int(await db.fetchval(COUNT, account_id))


async def has_user(db: Executor, account_id: str, user_id: str) -> bool:
    return bool(await db.fetchval(HAS_USER, account_id, user_id))
