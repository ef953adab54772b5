"""An account's service tokens with their grants, the granted projects' names and each grant's last use, in one
query (``Account.serviceTokens``): one round trip instead of four, whatever the number of tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from tokengate.core.policy import Grant
from tokengate.store import Executor
from tokengate.store.tokens import SERVICE_TOKENS_OF_ACCOUNT, TokenRecord

# tokens.SERVICE_TOKENS_OF_ACCOUNT (its rows, its order) with, per token, its grants in their stored order (as
# grants.FOR_TOKENS), each as [set, all projects, project ids, id, last use in UTC, {project id: name}].
# The last use goes as a UTC timestamp without zone: JSON would write a timestamptz in the session's zone.
LISTED_GRANTS = """,
       (SELECT json_agg(json_build_array(g.permission_set, g.all_projects, g.project_ids, g.id,
                                         g.last_used_at AT TIME ZONE 'UTC',
                                         (SELECT json_object_agg(p.id, p.name) FROM projects p
                                          WHERE p.id = ANY(g.project_ids)))
                        ORDER BY g.position, g.id)
        FROM grants g WHERE g.token_id = t.id) AS listed_grants"""
SERVICE_TOKENS_WITH_GRANTS = SERVICE_TOKENS_OF_ACCOUNT.replace(" FROM tokens t", LISTED_GRANTS + "\nFROM tokens t", 1)


# Named tuples rather than frozen dataclasses: a list makes one per row, and a frozen dataclass sets each field
# through object.__setattr__.
class ListedGrant(NamedTuple):
    grant: Grant
    last_used_at: datetime | None
    project_names: dict[str, str]  # of the granted projects that exist


class ListedToken(NamedTuple):
    record: TokenRecord
    grants: list[ListedGrant]


def _grant(entry: list[Any]) -> ListedGrant:
    permission_set, all_projects, project_ids, grant_id, last_used, names = entry
    used = None if last_used is None else datetime.fromisoformat(last_used).replace(tzinfo=UTC)
    return ListedGrant(
        Grant(permission_set, all_projects, tuple(project_ids) if project_ids else (), grant_id), used, names or {}
    )


async def service_tokens_with_grants(db: Executor, account_id: str, include_deleted: bool) -> list[ListedToken]:
    listed = []
    for row in await db.fetch(SERVICE_TOKENS_WITH_GRANTS, account_id, include_deleted):
        *fields, document = row  # TOKEN_COLUMNS are TokenRecord's fields in its order; listed_grants comes last
        grants = [_grant(entry) for entry in orjson.loads(document)] if document else []
        listed.append(ListedToken(TokenRecord(*fields), grants))
    return listed
