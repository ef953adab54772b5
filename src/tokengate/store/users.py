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
