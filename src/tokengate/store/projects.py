"""Projects of an account."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tokengate.store import Executor

INSERT = """
INSERT INTO projects (id, account_id, name) VALUES ($1, $2, $3)
RETURNING id, account_id, name, created_at
"""
BY_ACCOUNT = "SELECT id, account_id, name, created_at FROM projects WHERE account_id = $1 ORDER BY created_at, id"
BY_IDS = "SELECT id, account_id, name, created_at FROM projects WHERE id = ANY($1::text[])"
IDS_BY_ACCOUNT = "SELECT id FROM projects WHERE account_id = $1"


@dataclass(frozen=True, slots=True)
class ProjectRow:
    id: str
    account_id: str
    name: str
    created_at: datetime


async def create_project(db: Executor, project_id: str, account_id: str, name: str) -> ProjectRow:
    return ProjectRow(**dict(await db.fetchrow(INSERT, project_id, account_id, name)))


async def list_projects(db: Executor, account_id: str) -> list[ProjectRow]:
    return [ProjectRow(**dict(row)) for row in await db.fetch(BY_ACCOUNT, account_id)]


async def projects_by_ids(db: Executor, project_ids: Sequence[str]) -> dict[str, ProjectRow]:
    return {row["id"]: ProjectRow(**dict(row)) for row in await db.fetch(BY_IDS, list(project_ids))}


async def project_ids_of_account(db: Executor, account_id: str) -> frozenset[str]:
    return frozenset(row["id"] for row in await db.fetch(IDS_BY_ACCOUNT, account_id))
