"""Grants held by users and tokens: a permission set for all projects or for listed ones."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from tokengate.core.policy import Grant
from tokengate.store import Executor


def as_documents(grants: Iterable[Grant]) -> list[dict[str, Any]]:
    """Grants as JSON objects, for settings that keep grants in a JSON column (trust policies, single sign-on)."""
    return [
        {"permission_set": g.permission_set, "all_projects": g.all_projects, "project_ids": list(g.project_ids)}
        for g in grants
    ]


def from_documents(documents: Iterable[dict[str, Any]]) -> tuple[Grant, ...]:
    """``as_documents`` read back."""
    return tuple(Grant(d["permission_set"], bool(d["all_projects"]), tuple(d["project_ids"])) for d in documents)


# One statement for any number of grants: the rows travel as one JSON document.
INSERT = """
INSERT INTO grants (account_id, user_id, token_id, permission_set, all_projects, project_ids, position)
SELECT $1, $2, $3, g.permission_set, g.all_projects, g.project_ids, g.position
FROM jsonb_to_recordset($4::jsonb) AS g(permission_set text, all_projects boolean, project_ids text[], position int)
"""
DELETE_FOR_TOKEN = "DELETE FROM grants WHERE token_id = $1"
DELETE_FOR_USER = "DELETE FROM grants WHERE user_id = $1"
FOR_TOKENS = """
SELECT token_id AS owner, permission_set, all_projects, project_ids, id FROM grants
WHERE token_id = ANY($1::text[]) ORDER BY position, id
"""
FOR_USERS = """
SELECT user_id AS owner, permission_set, all_projects, project_ids, id FROM grants
WHERE user_id = ANY($1::text[]) ORDER BY position, id
"""
DELETE_BY_IDS = "DELETE FROM grants WHERE token_id = $1 AND id = ANY($2::bigint[])"
REPOSITION = """
UPDATE grants AS g SET position = p.position FROM unnest($2::bigint[], $3::int[]) AS p (id, position)
WHERE g.token_id = $1 AND g.id = p.id AND g.position <> p.position
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
    """Grants from the ``[[set, all_projects, [project ids], id], ...]`` JSON that principal queries build."""
    if not document:
        return ()
    return tuple(
        Grant(entry[0], entry[1], tuple(entry[2] or ()), entry[3] if len(entry) > 3 else None)
        for entry in json.loads(document)
    )


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
        result[row["owner"]].append(
            Grant(row["permission_set"], row["all_projects"], tuple(row["project_ids"]), row["id"])
        )
    return result


async def grants_for_tokens(db: Executor, token_ids: Sequence[str]) -> dict[str, list[Grant]]:
    return await _grants_for(db, FOR_TOKENS, token_ids)


async def grants_for_users(db: Executor, user_ids: Sequence[str]) -> dict[str, list[Grant]]:
    return await _grants_for(db, FOR_USERS, user_ids)


def same_grant(a: Grant, b: Grant) -> bool:
    """The same permission set on the same scope (project order aside)."""
    return (a.permission_set, a.all_projects, sorted(a.project_ids)) == (
        b.permission_set,
        b.all_projects,
        sorted(b.project_ids),
    )


async def sync_token_grants(db: Executor, account_id: str, token_id: str, grants: Sequence[Grant]) -> bool:
    """Make the token hold exactly ``grants``, keeping the rows (and with them the last use) of the grants it
    already holds. False, and nothing written, when it held exactly these already, whatever their order."""
    unmatched = list((await grants_for_tokens(db, [token_id])).get(token_id, []))
    kept: list[tuple[int | None, int]] = []  # (row id, new position)
    added: list[dict[str, object]] = []
    for position, grant in enumerate(grants):
        match = next((old for old in unmatched if same_grant(old, grant)), None)
        if match is None:
            added.append(
                {
                    "permission_set": grant.permission_set,
                    "all_projects": grant.all_projects,
                    "project_ids": list(grant.project_ids),
                    "position": position,
                }
            )
        else:
            unmatched.remove(match)
            kept.append((match.id, position))
    if not added and not unmatched:
        return False
    if unmatched:
        await db.execute(DELETE_BY_IDS, token_id, [old.id for old in unmatched])
    if kept:
        await db.execute(REPOSITION, token_id, [row for row, _ in kept], [position for _, position in kept])
    if added:
        await db.execute(INSERT, account_id, None, token_id, json.dumps(added))
    return True
