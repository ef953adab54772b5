"""setServiceTokenGrants, the way infrastructure code manages grants: the same grants (in any order) change
nothing, audit nothing and queue no webhook; other grants replace them and hold from the next request."""

from __future__ import annotations

from tests.api import service_token_calls as calls
from tests.api import webhook_calls as hooks
from tests.api.test_cache_and_invalidation import cache_of
from tests.api.webhook_calls import events_server, receiving

SET = """mutation($id: ID!, $grants: [GrantInput!]!) { setServiceTokenGrants(id: $id, grants: $grants) {
  id grants { permissionSet allProjects projects { id } lastUsedAt } } }"""
AUDIT = "{ account { auditLog(first: 100) { edges { node { action targetId } } } } }"


async def recorded(server, caller) -> tuple[int, int]:
    """Audit events of the account, and outbox rows queued for its webhooks."""
    edges = (await server.gql(AUDIT, token=caller)).data["account"]["auditLog"]["edges"]
    return len(edges), await server.pool.fetchval("SELECT count(*) FROM webhook_deliveries")


async def test_the_same_grants_in_any_order_change_nothing(database, tmp_path):
    async with receiving() as receiver, events_server(database, tmp_path) as server:
        await same_grants_change_nothing(server, receiver)


async def same_grants_change_nothing(server, receiver) -> None:
    admin = await server.bootstrap()
    reply = await server.gql('mutation { createProject(name: "a") { id } }', token=admin.token)
    project = reply.data["createProject"]["id"]
    grants = [calls.grant("JOB_ADMIN", project), calls.grant("METADATA_ONLY")]
    token = await calls.created(server, admin.token, grants=grants)
    await hooks.created(server, admin.token, receiver.url, ["service_token.updated"])
    assert await calls.works(server, token.secret)
    assert token.key in cache_of(server).token_ids()
    before = await recorded(server, admin.token)

    for same in (grants, list(reversed(grants))):
        reply = await server.gql(SET, {"id": token.id, "grants": same}, token=admin.token)
        assert reply.errors == [], reply.body
        assert [g["permissionSet"] for g in reply.data["setServiceTokenGrants"]["grants"]] == [
            "JOB_ADMIN",
            "METADATA_ONLY",
        ]
    assert await recorded(server, admin.token) == before
    assert token.key in cache_of(server).token_ids()  # not even this instance's cache was told to forget it

    # Different grants: one audit event, one delivery queued, in force at the next request.
    reply = await server.gql(SET, {"id": token.id, "grants": [calls.grant("METADATA_ONLY")]}, token=admin.token)
    assert [g["permissionSet"] for g in reply.data["setServiceTokenGrants"]["grants"]] == ["METADATA_ONLY"]
    events, queued = await recorded(server, admin.token)
    assert (events, queued) == (before[0] + 1, before[1] + 1)
    (received,) = await receiver.wait_for(1)
    assert received.event["type"] == "service_token.updated" and received.event["subject"] == token.id
    check = "{ check(resource: JOBS, access: WRITE, projectId: $p) { allowed } }".replace("$p", f'"{project}"')
    assert (await server.gql(check, token=token.secret)).data["check"]["allowed"] is False


async def test_a_grant_kept_keeps_its_last_use(server):
    admin = await server.bootstrap()
    token = await calls.created(server, admin.token, grants=[calls.grant("JOB_ADMIN")])
    reply = await server.gql("{ check(resource: JOBS, access: WRITE) { allowed } }", token=token.secret)
    assert reply.data["check"]["allowed"]
    await server.runtime.gate.usage.flush()
    reply = await server.gql(
        SET, {"id": token.id, "grants": [calls.grant("JOB_ADMIN"), calls.grant("ACCOUNT_VIEWER")]}, token=admin.token
    )
    kept, added = reply.data["setServiceTokenGrants"]["grants"]
    assert kept["permissionSet"] == "JOB_ADMIN" and kept["lastUsedAt"] is not None
    assert added["permissionSet"] == "ACCOUNT_VIEWER" and added["lastUsedAt"] is None


async def test_setting_grants_needs_service_tokens_write(server):
    admin = await server.bootstrap()
    target = await calls.created(server, admin.token, grants=[calls.grant("JOB_ADMIN")])
    viewer = await calls.created(server, admin.token, grants=[calls.grant("ACCOUNT_VIEWER")])
    assert await calls.works(server, viewer.secret)
    reply = await server.gql(SET, {"id": target.id, "grants": [calls.grant("ACCOUNT_ADMIN")]}, token=viewer.secret)
    assert reply.codes == ["FORBIDDEN"] and reply.data == {"setServiceTokenGrants": None}
    listed = await calls.listed(server, admin.token)
    assert [g["permissionSet"] for g in listed[target.id]["grants"]] == ["JOB_ADMIN"]
    other = await server.bootstrap("Other")
    reply = await server.gql(SET, {"id": target.id, "grants": [calls.grant("JOB_ADMIN")]}, token=other.token)
    assert reply.codes == ["NOT_FOUND"]
    reply = await server.gql(SET, {"id": target.id, "grants": [calls.grant("ACCOUNT_ADMIN")]}, token=admin.token)
    assert reply.errors == []
