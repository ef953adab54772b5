"""Service and user tokens: rows keyed by the id inside the token, holding only a hash."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tokengate.policy import Grant
from tokengate.store import Executor
from tokengate.store.grants import grants_from_document

TOKEN_COLUMNS = """
t.id, t.account_id, t.kind, t.format, t.lookup_hint, t.name, t.user_id, t.state, t.created_at,
t.created_by, t.expires_at, t.last_used_at, t.deleted_at
"""

INSERT = """
INSERT INTO tokens (id, account_id, kind, format, lookup_hint, hash, name, user_id, created_by, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10, now()), $11)
RETURNING id, account_id, kind, format, lookup_hint, name, user_id, state, created_at,
          created_by, expires_at, last_used_at, deleted_at
"""

# Everything authentication needs, in one indexed query: the token, its account, the user's license,
# the grants (the token's own, or its user's) and the ids of the account's projects.
CREDENTIAL_SELECT = """
SELECT t.id, t.account_id, t.kind, t.format, t.hash, t.state, t.expires_at, t.user_id, t.lookup_hint,
       a.name AS account_name, a.plan AS account_plan, u.license,
       ARRAY(SELECT p.id FROM projects p WHERE p.account_id = t.account_id) AS project_ids,
       (SELECT json_agg(json_build_array(g.permission_set, g.all_projects, g.project_ids)
                        ORDER BY g.position, g.id)::text
          FROM grants g
         WHERE g.token_id = t.id OR (t.user_id IS NOT NULL AND g.user_id = t.user_id)) AS grants
FROM tokens t
JOIN accounts a ON a.id = t.account_id
LEFT JOIN users u ON u.id = t.user_id
"""
CREDENTIAL_BY_ID = CREDENTIAL_SELECT + " WHERE t.id = $1 AND t.format = 'v2'"
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


@dataclass(frozen=True, slots=True)
class Credential:
    """A stored token with what is needed to build its principal. ``hash`` never leaves auth."""

    id: str
    account_id: str
    kind: str
    format: str
    hash: bytes
    state: str
    expires_at: datetime | None
    user_id: str | None
    lookup_hint: str | None
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
    )
    return TokenRecord(**dict(row))


async def credential_by_id(db: Executor, token_id: str) -> Credential | None:
    row = await db.fetchrow(CREDENTIAL_BY_ID, token_id)
    return _credential(row) if row else None


async def credentials_by_hint(db: Executor, hint: str) -> list[Credential]:
    return [_credential(row) for row in await db.fetch(CREDENTIALS_BY_HINT, hint)]


BY_ID = "SELECT " + TOKEN_COLUMNS + " FROM tokens t WHERE t.account_id = $1 AND t.id = $2"


async def token_by_id(db: Executor, account_id: str, token_id: str) -> TokenRecord | None:
    """A token of this account; None for an unknown id and for another account's id alike."""
    row = await db.fetchrow(BY_ID, account_id, token_id)
    return TokenRecord(**dict(row)) if row else None
