"""Grants held by users and tokens: a permission set for all projects or for listed ones."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

from tokengate.policy import Grant
from tokengate.store import Executor

# One statement for any number of grants: the rows travel as one JSON document.
INSERT = """
INSERT INTO grants (account_id, user_id, token_id, permission_set, all_projects, project_ids, position)
SELECT $1, $2, $3, g.permission_set, g.all_projects, g.project_ids, g.position
FROM jsonb_to_recordset($4::jsonb) AS g(permission_set text, all_projects boolean, project_ids text[], position int)
"""
DELETE_FOR_TOKEN = "DELETE FROM grants WHERE token_id = $1"
DELETE_FOR_USER = "DELETE FROM grants WHERE user_id = $1"
FOR_TOKENS = """
SELECT token_id AS owner, permission_set, all_projects, project_ids FROM grants
WHERE token_id = ANY($1::text[]) ORDER BY position, id
"""
FOR_USERS = """
SELECT user_id AS owner, permission_set, all_projects, project_ids FROM grants
WHERE user_id = ANY($1::text[]) ORDER BY position, id
"""


def grants_document(grants: Sequence[Grant]) -> str:
    return json.dumps(
        [
            {
                "permission_set": g.permission_set,
                "all_projects": g.all_projects,
                "project_ids": list(g.project_ids),
                "position": i,
            }
            for i, g in enumerate(grants)
        ]
    )


def grants_from_document(document: str | None) -> tuple[Grant, ...]:
    """Grants from the ``[[set, all_projects, [project ids]], ...]`` JSON that principal queries build."""
    if not document:
        return ()
    return tuple(Grant(entry[0], entry[1], tuple(entry[2] or ())) for entry in json.loads(document))


async def add_user_grants(db: Executor, account_id: str, user_id: str, grants: Sequence[Grant]) -> None:
    await db.execute(INSERT, account_id, user_id, None, grants_document(grants))


async def replace_token_grants(db: Executor, account_id: str, token_id: str, grants: Sequence[Grant]) -> None:
    await db.execute(DELETE_FOR_TOKEN, token_id)
    await db.execute(INSERT, account_id, None, token_id, grants_document(grants))


async def replace_user_grants(db: Executor, account_id: str, user_id: str, grants: Sequence[Grant]) -> None:
    await db.execute(DELETE_FOR_USER, user_id)
    await db.execute(INSERT, account_id, user_id, None, grants_document(grants))


async def _grants_for(db: Executor, query: str, owners: Sequence[str]) -> dict[str, list[Grant]]:
    result: dict[str, list[Grant]] = defaultdict(list)
    for row in await db.fetch(query, list(owners)):
        result[row["owner"]].append(Grant(row["permission_set"], row["all_projects"], tuple(row["project_ids"])))
    return result


async def grants_for_tokens(db: Executor, token_ids: Sequence[str]) -> dict[str, list[Grant]]:
    return await _grants_for(db, FOR_TOKENS, token_ids)


async def grants_for_users(db: Executor, user_ids: Sequence[str]) -> dict[str, list[Grant]]:
    return await _grants_for(db, FOR_USERS, user_ids)
