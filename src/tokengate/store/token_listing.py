"""An account's service tokens with their grants, the granted projects' names and each grant's last use, in one
query (``Account.serviceTokens``): one round trip instead of four, whatever the number of tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from tokengate.store import Executor
from tokengate.store.tokens import SERVICE_TOKENS_IN_ORDER, SERVICE_TOKENS_OF_ACCOUNT_WHERE

# Only what the listing shows of a token (a row decodes each column it carries), as ListedToken's fields.
LISTED_COLUMNS = """
t.id, t.kind, t.format, t.lookup_hint, t.name, t.state, t.created_at, t.expires_at, t.last_used_at, t.last_used_from"""
# tokens.SERVICE_TOKENS_OF_ACCOUNT's rows in its order with, per token, its grants in their stored order (as
# grants.FOR_TOKENS), each as [set, all projects, project ids, last use in UTC, {project id: name}], or NULL for
# none. The last use goes as a UTC timestamp without zone: JSON would write a timestamptz in the session's zone.
# The grants are joined and aggregated per token (grouped by its key, which its other columns depend on) rather
# than read by a subquery per token: once the tables have statistics, PostgreSQL plans that subquery as a scan
# of the grants per token on a small account (about 510 µs for 50 tokens), the join in about 345 µs; without
# statistics, both reach the grants through their token index (about 375 and 400 µs).
SERVICE_TOKENS_WITH_GRANTS = f"""
SELECT {LISTED_COLUMNS},
       json_agg(json_build_array(g.permission_set, g.all_projects, g.project_ids,
                                 g.last_used_at AT TIME ZONE 'UTC',
                                 (SELECT json_object_agg(p.id, p.name) FROM projects p
                                  WHERE p.id = ANY(g.project_ids)))
                ORDER BY g.position, g.id) FILTER (WHERE g.id IS NOT NULL) AS grants
FROM tokens t LEFT JOIN grants g ON g.token_id = t.id
WHERE {SERVICE_TOKENS_OF_ACCOUNT_WHERE}
GROUP BY t.id
{SERVICE_TOKENS_IN_ORDER}"""


# Named tuples straight from the rows rather than TokenRecord and Grant (frozen dataclasses, which set each field
# through object.__setattr__): a list makes one per row. tests/api/test_token_listing.py compares the answers.
class ListedGrant(NamedTuple):
    permission_set: str
    all_projects: bool
    project_ids: list[str]
    last_used_at: datetime | None
    project_names: dict[str, str]  # of the granted projects that exist


class ListedToken(NamedTuple):
    """A token as the listing shows it: TokenRecord's fields of the same names, and its grants."""

    id: str
    kind: str
    format: str
    lookup_hint: str | None
    name: str
    state: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    last_used_from: list[str]
    grants: list[ListedGrant]


def _grant(entry: list[Any]) -> ListedGrant:
    permission_set, all_projects, project_ids, last_used, names = entry
    used = None if last_used is None else datetime.fromisoformat(last_used).replace(tzinfo=UTC)
    return ListedGrant(permission_set, all_projects, project_ids or [], used, names or {})


async def service_tokens_with_grants(db: Executor, account_id: str, include_deleted: bool) -> list[ListedToken]:
    listed = []
    for row in await db.fetch(SERVICE_TOKENS_WITH_GRANTS, account_id, include_deleted):
        *fields, document = row  # LISTED_COLUMNS in ListedToken's order; the grants come last
        listed.append(ListedToken(*fields, [_grant(entry) for entry in orjson.loads(document)] if document else []))
    return listed
