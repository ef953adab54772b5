"""Taking away is scoped like giving (issue 20), through HTTP with real tokens. The attacker is a project
ADMIN of p1: its token is valid and it CAN give on p1 (the precondition, asserted first); acting as it, each
hole of the issue (stripping an ADMIN of p2, a JOB_ADMIN on all projects, downgrading and deactivating a
SECURITY_ADMIN, listing and deleting the ACCOUNT_ADMIN's personal token) is refused with nothing changed (the
target's grants, license, state and tokens read back), beside what it may still do on p1 and what an
ACCOUNT_ADMIN may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.service_token_calls import grant
from tests.api.test_graphql import CREATE_USER, create_project
from tests.api.test_members import DEACTIVATE, UPDATE_USER, grants_of, make_user, signed_in
from tests.conftest import Seeded, Server, store_service_token
from tokengate.core.policy import Grant

DELETE_USER_TOKEN = "mutation($id: ID!) { deleteUserToken(id: $id) { id state } }"
MEMBER_TOKENS = "{ account { members { id tokens { id state } } } }"
USER_TOKENS = "query($id: ID!) { node(id: $id) { ... on User { tokens { id state } } } }"
MAY = """{ members: check(resource: MEMBERS, access: WRITE) { allowed }
          licenses: check(resource: LICENSES, access: WRITE) { allowed } }"""
VIEWER = "{ viewer { kind } }"


@dataclass
class Person:
    id: str
    token: str

    @property
    def token_id(self) -> str:
        return self.token[4:20]  # the token's id is in its secret (bare ids are accepted)


@dataclass
class Account:
    admin: Seeded
    p1: str
    p2: str
    lead: Person  # ADMIN on p1: the attacker
    targets: dict[str, Person]


TARGETS = {
    "ADMIN on p2": ("DEVELOPER", lambda p1, p2: [grant("ADMIN", p2)]),
    "JOB_ADMIN on all projects": ("DEVELOPER", lambda p1, p2: [grant("JOB_ADMIN")]),
    "SECURITY_ADMIN": ("DEVELOPER", lambda p1, p2: [grant("SECURITY_ADMIN")]),
    "JOB_VIEWER on p1": ("DEVELOPER", lambda p1, p2: [grant("JOB_VIEWER", p1)]),
    "ADMIN on p2 and JOB_VIEWER on p1": ("DEVELOPER", lambda p1, p2: [grant("ADMIN", p2), grant("JOB_VIEWER", p1)]),
}
BEYOND_P1 = ["ADMIN on p2", "JOB_ADMIN on all projects", "SECURITY_ADMIN"]


@pytest.fixture
async def account(server: Server) -> Account:
    admin = await server.bootstrap()
    p1 = await create_project(server, admin.token, "p1")
    p2 = await create_project(server, admin.token, "p2")
    lead = Person(*await signed_in(server, admin, "lead@acme.test", "DEVELOPER", [grant("ADMIN", p1)]))
    targets = {}
    for number, (name, (license_, grants)) in enumerate(TARGETS.items()):
        targets[name] = Person(*await signed_in(server, admin, f"t{number}@acme.test", license_, grants(p1, p2)))
    # The precondition: the attacker's token is valid, holds MEMBERS:WRITE and LICENSES:WRITE, and gives on p1.
    reply = await server.gql(MAY, token=lead.token)
    assert reply.data == {"members": {"allowed": True}, "licenses": {"allowed": True}}, reply.body
    reply = await server.gql(
        CREATE_USER, {"email": "new@acme.test", "license": "DEVELOPER", "grants": [grant("JOB_VIEWER", p1)]}, lead.token
    )
    assert reply.errors == [], reply.body
    return Account(admin, p1, p2, lead, targets)


async def state_of(server: Server, person: Person) -> tuple[Any, ...]:
    """Everything a refused change must leave as it was: grants, license, state, tokens, and that it signs in."""
    row = await server.pool.fetchrow("SELECT license, state FROM users WHERE id = $1", person.id)
    tokens = await server.pool.fetch("SELECT id, state FROM tokens WHERE user_id = $1 ORDER BY id", person.id)
    signs_in = (await server.gql(VIEWER, token=person.token)).status
    return await grants_of(server, person.id), tuple(row), [tuple(t) for t in tokens], signs_in


def refused(reply: Any, starts: str) -> None:
    assert reply.codes == ["FORBIDDEN"], reply.body
    message = reply.errors[0]["message"]
    assert message.startswith(starts) and ":" in message and "which you do not hold" in message, message


@pytest.mark.parametrize("target", BEYOND_P1)
async def test_a_project_admin_cannot_strip_grants_beyond_its_project(server, account, target):
    person = account.targets[target]
    before = await state_of(server, person)
    reply = await server.gql(UPDATE_USER, {"id": person.id, "grants": []}, account.lead.token)
    refused(reply, "taking away ")
    assert await state_of(server, person) == before
    # Nor by giving it something on p1 in their place.
    reply = await server.gql(
        UPDATE_USER, {"id": person.id, "grants": [grant("JOB_VIEWER", account.p1)]}, account.lead.token
    )
    refused(reply, "taking away ")
    assert await state_of(server, person) == before
    # An account admin may.
    reply = await server.gql(UPDATE_USER, {"id": person.id, "grants": []}, account.admin.token)
    assert reply.errors == [], reply.body
    assert await grants_of(server, person.id) == []


async def test_a_project_admin_cannot_downgrade_a_security_admins_license(server, account):
    person = account.targets["SECURITY_ADMIN"]
    before = await state_of(server, person)
    reply = await server.gql(UPDATE_USER, {"id": person.id, "license": "READ_ONLY"}, account.lead.token)
    refused(reply, "a READ_ONLY license would take from this user ")
    assert await state_of(server, person) == before
    reply = await server.gql(UPDATE_USER, {"id": person.id, "license": "READ_ONLY"}, account.admin.token)
    assert reply.errors == [] and reply.data["updateUser"]["license"] == "READ_ONLY", reply.body


@pytest.mark.parametrize("target", BEYOND_P1)
async def test_a_project_admin_cannot_deactivate_who_holds_more(server, account, target):
    person = account.targets[target]
    before = await state_of(server, person)
    reply = await server.gql(DEACTIVATE, {"id": person.id}, account.lead.token)
    refused(reply, "taking away ")
    assert await state_of(server, person) == before
    reply = await server.gql(DEACTIVATE, {"id": person.id}, account.admin.token)
    assert reply.errors == [] and reply.data["deactivateUser"]["state"] == "DEACTIVATED", reply.body
    assert (await server.gql(VIEWER, token=person.token)).status == 401


async def test_a_project_admin_cannot_list_or_delete_the_account_admins_token(server, account):
    admin = Person(account.admin.user_id, account.admin.token)
    before = await state_of(server, admin)
    members = await server.gql(MEMBER_TOKENS, token=account.lead.token)
    listed = {m["id"]: m["tokens"] for m in members.data["account"]["members"]}
    assert listed[admin.id] is None
    assert listed[account.lead.id] is not None  # its own
    assert [t["state"] for t in listed[account.targets["JOB_VIEWER on p1"].id]] == ["ACTIVE"]  # one it holds power over
    hidden = {admin.id, *(account.targets[t].id for t in [*BEYOND_P1, "ADMIN on p2 and JOB_VIEWER on p1"])}
    assert {user_id for user_id, tokens in listed.items() if tokens is None} == hidden
    order = [m["id"] for m in members.data["account"]["members"]]
    denied = {tuple(e["path"]) for e in members.errors if e["extensions"]["code"] == "FORBIDDEN"}
    assert denied == {("account", "members", order.index(user_id), "tokens") for user_id in hidden}, members.body
    reply = await server.gql(USER_TOKENS, {"id": admin.id}, account.lead.token)
    assert reply.data == {"node": {"tokens": None}} and reply.codes == ["FORBIDDEN"], reply.body
    assert "only an ACCOUNT_ADMIN" in reply.errors[0]["message"]
    reply = await server.gql(DELETE_USER_TOKEN, {"id": admin.token_id}, account.lead.token)
    assert reply.codes == ["FORBIDDEN"] and "only an ACCOUNT_ADMIN" in reply.errors[0]["message"], reply.body
    for target in BEYOND_P1:
        person = account.targets[target]
        target_before = await state_of(server, person)
        reply = await server.gql(DELETE_USER_TOKEN, {"id": person.token_id}, account.lead.token)
        refused(reply, "taking away ")
        assert await state_of(server, person) == target_before
    assert await state_of(server, admin) == before


async def test_a_project_admin_changes_a_persons_part_on_its_project(server, account):
    lead, p1, p2 = account.lead.token, account.p1, account.p2
    # Removes JOB_VIEWER on p1 from someone who holds only that.
    viewer = account.targets["JOB_VIEWER on p1"]
    reply = await server.gql(UPDATE_USER, {"id": viewer.id, "grants": []}, lead)
    assert reply.errors == [], reply.body
    assert await grants_of(server, viewer.id) == []
    # Changes the p1 part of someone who also holds ADMIN on p2, which stays as it is.
    both = account.targets["ADMIN on p2 and JOB_VIEWER on p1"]
    reply = await server.gql(UPDATE_USER, {"id": both.id, "grants": [grant("ADMIN", p2), grant("JOB_ADMIN", p1)]}, lead)
    assert reply.errors == [], reply.body
    assert await grants_of(server, both.id) == [("ADMIN", False, [p2]), ("JOB_ADMIN", False, [p1])]
    reply = await server.gql(UPDATE_USER, {"id": both.id, "grants": [grant("ADMIN", p2)]}, lead)
    assert reply.errors == [] and await grants_of(server, both.id) == [("ADMIN", False, [p2])]
    # Deletes the token of, and deactivates, someone it holds power over.
    someone = await make_user(server, account.admin, "p1-only@acme.test", "DEVELOPER", [grant("JOB_VIEWER", p1)])
    token = await server.issue_user_token(someone)
    reply = await server.gql(DELETE_USER_TOKEN, {"id": token[4:20]}, lead)
    assert reply.errors == [] and reply.data["deleteUserToken"]["state"] == "DELETED", reply.body
    assert (await server.gql(VIEWER, token=token)).status == 401
    reply = await server.gql(DEACTIVATE, {"id": someone}, lead)
    assert reply.errors == [] and reply.data["deactivateUser"]["state"] == "DEACTIVATED", reply.body


async def test_a_service_token_is_held_to_the_same_rule(server, account):
    token = await store_service_token(server, account.admin.account_id, [Grant("ADMIN", False, (account.p1,))])
    person = account.targets["ADMIN on p2"]
    before = await state_of(server, person)
    for query, variables in [(UPDATE_USER, {"id": person.id, "grants": []}), (DEACTIVATE, {"id": person.id})]:
        refused(await server.gql(query, variables, token), "taking away ADMIN on project ")
    refused(await server.gql(DELETE_USER_TOKEN, {"id": person.token_id}, token), "taking away ADMIN on project ")
    assert await state_of(server, person) == before
    viewer = account.targets["JOB_VIEWER on p1"]
    assert (await server.gql(DEACTIVATE, {"id": viewer.id}, token)).errors == []
