"""Accounts and their plan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tokengate.store import Executor

INSERT = "INSERT INTO accounts (id, name, plan) VALUES ($1, $2, $3) RETURNING id, name, plan, created_at"
BY_ID = "SELECT id, name, plan, created_at FROM accounts WHERE id = $1"


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: str
    name: str
    plan: str
    created_at: datetime


async def create_account(db: Executor, account_id: str, name: str, plan: str) -> AccountRow:
    return AccountRow(**dict(await db.fetchrow(INSERT, account_id, name, plan)))


async def get_account(db: Executor, account_id: str) -> AccountRow | None:
    row = await db.fetchrow(BY_ID, account_id)
    return AccountRow(**dict(row)) if row else None
