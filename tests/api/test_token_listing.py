"""``Account.serviceTokens`` from one query (store/token_listing.py) answers what the four queries did.

The same account is listed both ways (``service_tokens_of_account`` then ``service_tokens_with_grants``, the
path the connection and the mutations still take): tokens, order, grants in their order, the granted projects
in the grant's order (an id no project has left out, a repeated id repeated), each grant's last use to the
microsecond, deleted tokens only when asked; on a session in another time zone too; and for a caller who may
read some of the projects only, the same projects left out both ways.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from tests.api import service_token_calls as calls
from tokengate.core.policy import SERVICE_TOKEN, Grant, Principal
from tokengate.graphql.schema import types
from tokengate.store import token_listing
from tokengate.store import tokens as token_store
from tokengate.store.tokens import TokenRecord

LIST = "{ account { serviceTokens { id grants { permissionSet projects { id name } lastUsedAt } } } }"


def without_usage_batch(listed: list[types.ServiceToken]) -> list[types.ServiceToken]:
    """The tokens as compared: each way makes its own usage batch (one per answer), shared by all its tokens."""
    assert all(token.usage_batch is listed[0].usage_batch is not None for token in listed)
    return [dataclasses.replace(token, usage_batch=None) for token in listed]


async def four_queries(conn, caller: Principal, include_deleted: bool) -> list[types.ServiceToken]:
    records = await token_store.service_tokens_of_account(conn, caller.account_id, include_deleted)
    context = SimpleNamespace(pool=conn, caller=caller)
    return without_usage_batch(await types.service_tokens_with_grants(context, records))


async def one_query(conn, caller: Principal, include_deleted: bool) -> list[types.ServiceToken]:
    listed = await token_listing.service_tokens_with_grants(conn, caller.account_id, include_deleted)
    return without_usage_batch(types.listed_service_tokens(caller, listed))


def caller_of(account_id: str, projects: list[str], grants: list[Grant]) -> Principal:
    return Principal(
        SERVICE_TOKEN,
        "tok",
        "tgs_tok",
        account_id,
        "Acme",
        "ENTERPRISE",
        None,
        None,
        tuple(grants),
        frozenset(projects),
    )


async def test_one_query_lists_what_four_did(server):
    admin = await server.bootstrap()
    other = await server.bootstrap("Other")
    projects = [
        (
            await server.gql(
                "mutation($n: String!) { createProject(name: $n) { id } }", {"n": f"p{i}"}, token=admin.token
            )
        ).data["createProject"]["id"]
        for i in range(3)
    ]
    made = [
        await calls.created(server, admin.token, "all", [calls.grant("JOB_ADMIN")]),
        await calls.created(
            server,
            admin.token,
            "two",
            [calls.grant("JOB_VIEWER", projects[2], projects[0]), calls.grant("ACCOUNT_VIEWER")],
        ),
        await calls.created(server, admin.token, "none-used", [calls.grant("JOB_ADMIN", projects[1])]),
        await calls.created(server, admin.token, "deleted", [calls.grant("JOB_VIEWER", projects[1])]),
        await calls.created(server, admin.token, "bare", [calls.grant("JOB_VIEWER")]),
    ]
    await calls.created(server, other.token, "theirs", [calls.grant("JOB_ADMIN")])  # another account's: never listed
    assert (await server.gql(calls.DELETE, {"id": made[3].id}, token=admin.token)).errors == []
    pool = server.runtime.pool
    await pool.execute("DELETE FROM grants WHERE token_id = (SELECT id FROM tokens WHERE name = 'bare')")  # none
    used = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    await pool.execute(
        "UPDATE grants SET last_used_at = $1 WHERE token_id = (SELECT id FROM tokens WHERE name = 'two')", used
    )
    # A stored id no project has (and one twice): left out, and repeated, as the four queries did.
    await pool.execute(
        "UPDATE grants SET project_ids = project_ids || ARRAY['prj_gone', $1] "
        "WHERE token_id = (SELECT id FROM tokens WHERE name = 'none-used')",
        projects[1],
    )
    account_admin = caller_of(admin.account_id, projects, [Grant("ACCOUNT_ADMIN")])
    reads_one = caller_of(admin.account_id, projects, [Grant("JOB_VIEWER", False, (projects[0],))])
    async with pool.acquire() as conn:
        partly = await one_query(conn, reads_one, False)
        assert partly == await four_queries(conn, reads_one, False)
        assert [[p.id for g in t.grants for p in g.projects] for t in partly] == [[], [projects[0]], [], []]
        for zone in ("UTC", "Pacific/Chatham"):
            await conn.execute(f"SET TIME ZONE '{zone}'")
            for include_deleted in (False, True):
                listed = await one_query(conn, account_admin, include_deleted)
                assert listed == await four_queries(conn, account_admin, include_deleted), (zone, include_deleted)
                assert [t.name for t in listed] == ["all", "two", "none-used"] + (
                    ["deleted", "bare"] if include_deleted else ["bare"]
                )
                assert [len(t.grants) for t in listed][-1] == 0
        await conn.execute("RESET TIME ZONE")
    two = listed[1]
    assert [g.last_used_at for g in two.grants] == [used, used]
    assert [p.id for p in two.grants[0].projects] == [projects[2], projects[0]]
    assert [p.id for p in listed[2].grants[0].projects] == [projects[1], projects[1]]
    # And through the API: the positive beside the comparison.
    reply = await server.gql(LIST, token=admin.token)
    assert reply.errors == [], reply.body
    listed_by_api = reply.data["account"]["serviceTokens"]
    assert [t["id"] for t in listed_by_api] == [m.id for m in made[:3]] + [made[4].id]
    assert [g["lastUsedAt"] for g in listed_by_api[1]["grants"]] == [used.isoformat()] * 2


def test_enum_tables_answer_what_the_enum_calls_did():
    """The listing's tables of enum members (one lookup per row instead of an Enum call) give the member the call
    gave, for every stored value; an unknown value still raises as the call does."""
    from tokengate.graphql.schema.enums import PermissionSetKey, TokenFormat, TokenState

    for member in PermissionSetKey:
        assert types.PERMISSION_SET_KEYS[member.value] is PermissionSetKey(member.value)
    for stored in ("legacy", "v2"):
        assert types.TOKEN_FORMATS[stored] is TokenFormat(stored.upper())
    for state in ("ACTIVE", "EXPIRED", "DELETED"):
        assert types.TOKEN_STATES[state] is TokenState(state)
    assert len(types.PERMISSION_SET_KEYS) == len(PermissionSetKey)
    assert set(types.TOKEN_FORMATS.values()) == set(TokenFormat)
    assert set(types.TOKEN_STATES.values()) == set(TokenState)
    odd = TokenRecord(
        "tok", "acc", "service", "v3", "hint", "n", None, "active", datetime.now(UTC), "usr", None, None, None
    )
    with pytest.raises(ValueError, match="V3"):
        types.ServiceToken.of(odd, [])
