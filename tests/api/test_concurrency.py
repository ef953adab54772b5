"""Many concurrent changes to one token, and many creations at once, end in a consistent state, checked in
the database afterwards: no deadlock, no 5xx, no half-made token, one audit event per change."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.api.service_token_calls import DELETE, UPDATE, create, grant, rotate, row_key, works
from tests.api.test_graphql import create_project
from tests.conftest import Reply

DEADLINE = 120  # seconds; a deadlock would hold the requests far longer (PostgreSQL's detector answers in 1 s)


async def all_of(calls) -> list[Reply]:
    replies = await asyncio.wait_for(asyncio.gather(*calls), DEADLINE)
    assert all(r.status == 200 for r in replies), [r.body for r in replies if r.status != 200]
    assert "INTERNAL_SERVER_ERROR" not in {code for r in replies for code in r.codes}, [
        r.body for r in replies if r.errors
    ]
    return replies


async def grant_sets(server) -> dict[str, list[str]]:
    """Every service token's permission sets, in grant order (empty for a token without grants)."""
    rows = await server.pool.fetch(
        "SELECT t.id, coalesce(array_agg(g.permission_set ORDER BY g.position, g.id)"
        " FILTER (WHERE g.id IS NOT NULL), '{}') AS sets"
        " FROM tokens t LEFT JOIN grants g ON g.token_id = t.id WHERE t.kind = 'service' GROUP BY t.id"
    )
    return {row["id"]: list(row["sets"]) for row in rows}


async def events(server, action: str) -> Counter[str]:
    rows = await server.pool.fetch("SELECT target_id FROM audit_events WHERE action = $1", action)
    return Counter(row["target_id"] for row in rows)


async def test_fifty_rotations_fifty_deletions_and_updates_of_one_token_stay_consistent(server):
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    first_grants = [grant("JOB_ADMIN", project), grant("ACCOUNT_VIEWER")]
    second_grants = [grant("JOB_VIEWER"), grant("ANALYST", project)]
    old = await create(server, admin.token, "shared", first_grants)
    # Row keys (the bare ids mutations still accept): what the tables and the audit log hold.
    old_id, old_secret = (
        row_key(old.data["createServiceToken"]["serviceToken"]["id"]),
        old.data["createServiceToken"]["secret"],
    )

    # Rotations and updates first: a deletion is one statement and would otherwise usually win every race.
    calls = [rotate(server, admin.token, old_id) for _ in range(50)]
    calls += [server.gql(UPDATE, {"id": old_id, "grants": second_grants}, token=admin.token) for _ in range(10)]
    calls += [server.gql(DELETE, {"id": old_id}, token=admin.token) for _ in range(50)]
    replies = await all_of(calls)

    rotations, updates, deletions = replies[:50], replies[50:60], replies[60:]
    rotated = [r.data["rotateServiceToken"] for r in rotations if not r.errors]
    # Once the token is deleted, a rotation or update is refused as a client error, never anything else.
    refused = [r.body for r in rotations + updates if r.errors and r.codes != ["BAD_USER_INPUT"]]
    assert not refused, refused
    assert all(r.errors == [] and r.data["deleteServiceToken"]["state"] == "DELETED" for r in deletions)
    updated = sum(1 for r in updates if not r.errors)

    # In the database afterwards.
    assert await server.pool.fetchval("SELECT state FROM tokens WHERE id = $1", old_id) == "deleted"
    assert (await events(server, "service_token.deleted")) == Counter({old_id: 1})
    assert (await events(server, "service_token.rotated"))[old_id] == len(rotated)
    assert (await events(server, "service_token.updated"))[old_id] == updated
    new_ids = {row["id"] for row in await server.pool.fetch("SELECT id FROM tokens WHERE rotated_from = $1", old_id)}
    assert new_ids == {row_key(r["serviceToken"]["id"]) for r in rotated} and len(new_ids) == len(rotated)
    assert len({r["secret"] for r in rotated}) == len(rotated)
    # Every token has a whole grant set: the one it was created with or the update's, never a mix or none.
    whole = (["JOB_ADMIN", "ACCOUNT_VIEWER"], ["JOB_VIEWER", "ANALYST"])
    sets = await grant_sets(server)
    assert all(found in whole for found in sets.values()), sets
    assert (await events(server, "service_token.created")) == Counter({old_id: 1})
    audited = await server.pool.fetch(
        "SELECT details->>'new_token_id' AS new_id FROM audit_events WHERE action = 'service_token.rotated'"
    )
    assert sorted(row["new_id"] for row in audited) == sorted(new_ids)  # one rotation event per new token
    assert not await works(server, old_secret)
    for answer in rotated[:5]:
        assert await works(server, answer["secret"])


async def test_fifty_concurrent_rotations_each_give_a_whole_token(server):
    admin = await server.bootstrap()
    old = await create(server, admin.token, "busy", [grant("JOB_ADMIN"), grant("ACCOUNT_VIEWER")])
    old_id = row_key(old.data["createServiceToken"]["serviceToken"]["id"])
    replies = await all_of([rotate(server, admin.token, old_id, revoke=600) for _ in range(50)])
    assert all(r.errors == [] for r in replies), [r.body for r in replies if r.errors]
    new_ids = {row_key(r.data["rotateServiceToken"]["serviceToken"]["id"]) for r in replies}
    assert len(new_ids) == 50
    rows = await server.pool.fetch("SELECT id, name, state FROM tokens WHERE rotated_from = $1", old_id)
    assert {row["id"] for row in rows} == new_ids
    assert all(row["name"] == "busy" and row["state"] == "active" for row in rows)
    sets = await grant_sets(server)
    assert all(sets[token_id] == ["JOB_ADMIN", "ACCOUNT_VIEWER"] for token_id in new_ids)
    assert (await events(server, "service_token.rotated")) == Counter({old_id: 50})
    assert await works(server, old.data["createServiceToken"]["secret"])  # inside its window


async def test_two_hundred_concurrent_creations_never_collide(server):
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    grants = [grant("JOB_ADMIN", project), grant("ACCOUNT_VIEWER")]
    replies = await all_of([create(server, admin.token, f"c{i}", grants) for i in range(200)])
    assert all(r.errors == [] for r in replies), [r.body for r in replies if r.errors]
    answers = [r.data["createServiceToken"] for r in replies]
    ids = [row_key(a["serviceToken"]["id"]) for a in answers]
    assert len(set(ids)) == 200 and len({a["secret"] for a in answers}) == 200

    rows = await server.pool.fetch("SELECT id, name FROM tokens WHERE kind = 'service'")
    assert sorted(row["id"] for row in rows) == sorted(ids)
    assert {row["name"] for row in rows} == {f"c{i}" for i in range(200)}
    sets = await grant_sets(server)
    assert all(found == ["JOB_ADMIN", "ACCOUNT_VIEWER"] for found in sets.values()), sets
    assert (await events(server, "service_token.created")) == Counter(dict.fromkeys(ids, 1))
    for answer in answers[::50]:
        assert await works(server, answer["secret"])
