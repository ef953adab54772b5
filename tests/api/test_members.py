"""Members without escalation, through HTTP with real tokens: each hole of issue 12 is first shown to be
reachable (the attacker's token is valid and has MEMBERS:WRITE), then refused with nothing written, beside the
positive case that must keep working."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.service_token_calls import grant
from tests.api.test_graphql import CREATE_USER, create_project
from tests.conftest import Seeded, Server, store_service_token
from tokengate.core.policy import Grant

UPDATE_USER = """
mutation($id: ID!, $license: License, $grants: [GrantInput!]) {
  updateUser(id: $id, license: $license, grants: $grants) { id license state grants { permissionSet allProjects projects { id } } }
}
"""
DEACTIVATE = "mutation($id: ID!) { deactivateUser(id: $id) { id state } }"
CAN_WRITE_MEMBERS = "{ check(resource: MEMBERS, access: WRITE) { allowed } viewer { kind user { id } } }"


async def make_user(server: Server, admin: Seeded, email: str, license_: str, grants: list[dict[str, Any]]) -> str:
    reply = await server.gql(CREATE_USER, {"email": email, "license": license_, "grants": grants}, admin.token)
    assert reply.errors == [], reply.body
    return reply.data["createUser"]["id"]


async def signed_in(server: Server, admin: Seeded, email: str, license_: str, grants: list[dict[str, Any]]):
    """A member created by the account admin, and a personal token for it (what a sign-in gives)."""
    user_id = await make_user(server, admin, email, license_, grants)
    return user_id, await server.issue_user_token(user_id)


async def user_rows(server: Server) -> list[tuple[str, str]]:
    return [tuple(r) for r in await server.pool.fetch("SELECT email, license FROM users ORDER BY email")]


async def grants_of(server: Server, user_id: str) -> list[tuple[str, bool, list[str]]]:
    rows = await server.pool.fetch(
        "SELECT permission_set, all_projects, project_ids FROM grants WHERE user_id = $1 ORDER BY position", user_id
    )
    return [(r["permission_set"], r["all_projects"], list(r["project_ids"])) for r in rows]


@pytest.fixture
async def account(server):
    admin = await server.bootstrap()
    project_a = await create_project(server, admin.token, "A")
    project_b = await create_project(server, admin.token, "B")
    return admin, project_a, project_b


ATTACKERS = {
    "ADMIN on one project": ("DEVELOPER", lambda a, b: [grant("ADMIN", a)]),
    "SECURITY_ADMIN": ("DEVELOPER", lambda a, b: [grant("SECURITY_ADMIN")]),
    "PROJECT_CREATOR": ("DEVELOPER", lambda a, b: [grant("PROJECT_CREATOR")]),
    "IT license": ("IT", lambda a, b: [grant("SECURITY_ADMIN")]),
}


@pytest.mark.parametrize("attacker", sorted(ATTACKERS))
async def test_members_write_cannot_create_an_account_admin(server, account, attacker):
    admin, project_a, project_b = account
    license_, grants = ATTACKERS[attacker]
    attacker_id, token = await signed_in(server, admin, "eve@acme.test", license_, grants(project_a, project_b))
    # The attack reaches the code: the token is valid, is eve, and holds MEMBERS:WRITE.
    reply = await server.gql(CAN_WRITE_MEMBERS, token=token)
    assert reply.data == {"check": {"allowed": True}, "viewer": {"kind": "USER", "user": {"id": attacker_id}}}
    before = await user_rows(server)
    reply = await server.gql(
        CREATE_USER,
        {"email": "mallory@attacker.test", "license": "DEVELOPER", "grants": [grant("ACCOUNT_ADMIN")]},
        token,
    )
    assert reply.codes == ["FORBIDDEN"] and reply.data == {"createUser": None}, reply.body
    message = reply.errors[0]["message"]
    assert message.startswith("giving ACCOUNT_ADMIN requires ") and ":" in message.split(" ")[3], message
    assert await user_rows(server) == before  # nobody was created
    # An account admin may still do it.
    await make_user(server, admin, "mallory@attacker.test", "DEVELOPER", [grant("ACCOUNT_ADMIN")])


async def test_a_project_admin_gives_what_it_holds_on_its_own_project_only(server, account):
    admin, project_a, project_b = account
    _, token = await signed_in(server, admin, "lead@acme.test", "DEVELOPER", [grant("ADMIN", project_a)])
    reply = await server.gql(
        CREATE_USER,
        {"email": "viewer@acme.test", "license": "DEVELOPER", "grants": [grant("JOB_VIEWER", project_a)]},
        token,
    )
    assert reply.errors == [], reply.body
    assert reply.data["createUser"]["grants"] == [
        {"permissionSet": "JOB_VIEWER", "allProjects": False, "projects": [{"id": project_a}]}
    ]
    before = await user_rows(server)
    for grants in [
        [grant("JOB_VIEWER", project_b)],
        [grant("JOB_VIEWER")],
        [grant("JOB_VIEWER", project_a, project_b)],
    ]:
        reply = await server.gql(
            CREATE_USER, {"email": "other@acme.test", "license": "DEVELOPER", "grants": grants}, token
        )
        assert reply.codes == ["FORBIDDEN"], (grants, reply.body)
        assert "JOBS:READ" in reply.errors[0]["message"] or ":READ" in reply.errors[0]["message"]
    assert await user_rows(server) == before


async def test_a_service_token_with_members_write_is_held_to_the_same_rule(server, account):
    admin, _, _ = account
    token = await store_service_token(server, admin.account_id, [Grant("SECURITY_ADMIN")])
    reply = await server.gql(
        CREATE_USER, {"email": "m@attacker.test", "license": "DEVELOPER", "grants": [grant("ACCOUNT_ADMIN")]}, token
    )
    assert reply.codes == ["FORBIDDEN"]
    reply = await server.gql(
        CREATE_USER, {"email": "m@acme.test", "license": "IT", "grants": [grant("SECURITY_ADMIN")]}, token
    )
    assert reply.errors == [], reply.body  # a set it holds in full: allowed


async def test_a_license_change_may_not_unlock_more_than_the_caller_holds(server, account):
    admin, project_a, _ = account
    # Every set with MEMBERS:WRITE also has LICENSES:WRITE in the matrix (tests/unit/test_no_escalation.py
    # shows that rule); here the caller may set licenses, but READ_ONLY -> DEVELOPER would unlock ADMIN's
    # project writes, which SECURITY_ADMIN does not hold.
    target = await make_user(server, admin, "ro@acme.test", "READ_ONLY", [grant("ADMIN", project_a)])
    _, token = await signed_in(server, admin, "sec@acme.test", "DEVELOPER", [grant("SECURITY_ADMIN")])
    reply = await server.gql(UPDATE_USER, {"id": target, "license": "DEVELOPER"}, token)
    assert reply.codes == ["FORBIDDEN"] and "would give this user" in reply.errors[0]["message"], reply.body
    assert await server.pool.fetchval("SELECT license FROM users WHERE id = $1", target) == "READ_ONLY"
    reply = await server.gql(UPDATE_USER, {"id": target, "license": "DEVELOPER"}, admin.token)
    assert reply.errors == [] and reply.data["updateUser"]["license"] == "DEVELOPER"


async def test_update_user_follows_the_same_rule_and_nobody_changes_themselves(server, account):
    admin, project_a, project_b = account
    target = await make_user(server, admin, "dev@acme.test", "DEVELOPER", [grant("JOB_VIEWER", project_a)])
    lead_id, lead = await signed_in(server, admin, "lead@acme.test", "DEVELOPER", [grant("ADMIN", project_a)])
    # Escalating someone else beyond the caller: refused, nothing changed.
    for grants in [[grant("ACCOUNT_ADMIN")], [grant("JOB_ADMIN", project_b)]]:
        reply = await server.gql(UPDATE_USER, {"id": target, "grants": grants}, lead)
        assert reply.codes == ["FORBIDDEN"], reply.body
    assert await grants_of(server, target) == [("JOB_VIEWER", False, [project_a])]
    # Escalating oneself: refused even with a set held (no one changes their own grants or license).
    for variables in [{"grants": [grant("ADMIN")]}, {"grants": [grant("ADMIN", project_a)]}, {"license": "IT"}]:
        reply = await server.gql(UPDATE_USER, {"id": lead_id, **variables}, lead)
        assert reply.codes == ["FORBIDDEN"] and "your own" in reply.errors[0]["message"], reply.body
    assert await grants_of(server, lead_id) == [("ADMIN", False, [project_a])]
    reply = await server.gql(UPDATE_USER, {"id": admin.user_id, "grants": []}, admin.token)
    assert reply.codes == ["FORBIDDEN"]  # an account admin cannot change itself either (nor lock itself out)
    # A lesser member admin cannot strip an account admin.
    reply = await server.gql(UPDATE_USER, {"id": admin.user_id, "grants": []}, lead)
    assert reply.codes == ["FORBIDDEN"] and "ACCOUNT_ADMIN" in reply.errors[0]["message"]
    # Positive: within its power, on its project.
    reply = await server.gql(UPDATE_USER, {"id": target, "grants": [grant("JOB_ADMIN", project_a)]}, lead)
    assert reply.errors == [], reply.body
    assert await grants_of(server, target) == [("JOB_ADMIN", False, [project_a])]
    event = await server.pool.fetchrow(
        "SELECT actor, details FROM audit_events WHERE action = 'user.updated' AND target_id = $1", target
    )
    assert event["actor"] == f"user:{lead_id}" and "JOB_ADMIN" in event["details"]


async def test_an_update_holds_from_the_next_request(server, account):
    admin, project_a, _ = account
    user_id, token = await signed_in(server, admin, "dev@acme.test", "DEVELOPER", [grant("JOB_VIEWER", project_a)])
    check = "query($p: ID) { check(resource: JOBS, access: WRITE, projectId: $p) { allowed } }"
    assert (await server.gql(check, {"p": project_a}, token)).data == {"check": {"allowed": False}}
    reply = await server.gql(UPDATE_USER, {"id": user_id, "grants": [grant("JOB_ADMIN", project_a)]}, admin.token)
    assert reply.errors == []
    assert (await server.gql(check, {"p": project_a}, token)).data == {"check": {"allowed": True}}


async def test_ids_of_another_account_are_not_found(server, account):
    admin, _, _ = account
    other = await server.bootstrap("Other")
    for query, variables in [(UPDATE_USER, {"id": other.user_id, "grants": []}), (DEACTIVATE, {"id": other.user_id})]:
        reply = await server.gql(query, variables, admin.token)
        assert reply.codes == ["NOT_FOUND"], reply.body
    assert (await server.gql("{ viewer { kind } }", token=other.token)).status == 200
