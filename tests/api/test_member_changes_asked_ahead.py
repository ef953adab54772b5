"""``User.viewerMayEdit`` and ``User.viewerMayDeactivate``: the rule updateUser and deactivateUser apply
(policy's ``member_change_refusal``), asked before the change so that the members page offers only what will
succeed. Each answer is checked against what the mutation then really does."""

from __future__ import annotations

from tests.api.service_token_calls import grant
from tests.api.test_graphql import create_project
from tests.api.test_members import DEACTIVATE, UPDATE_USER, signed_in
from tests.conftest import Server
from tokengate.core.policy import ONLY_AN_ACCOUNT_ADMIN

MAY = """{ account { members { id email viewerMayEdit { allowed reason } viewerMayDeactivate { allowed reason } } } }"""


async def asked(server: Server, token: str) -> dict[str, dict]:
    reply = await server.gql(MAY, token=token)
    assert reply.errors == [], reply.body
    return {member["email"]: member for member in reply.data["account"]["members"]}


async def test_a_project_admin_is_told_ahead_it_may_not_change_an_account_admin(server):
    admin = await server.bootstrap(email="owner@acme.test")
    p1 = await create_project(server, admin.token, "p1")
    lead_id, lead = await signed_in(server, admin, "lead@acme.test", "DEVELOPER", [grant("ADMIN", p1)])
    viewer_id, _ = await signed_in(server, admin, "viewer@acme.test", "DEVELOPER", [grant("JOB_VIEWER", p1)])
    answers = await asked(server, lead)
    owner = answers["owner@acme.test"]
    assert owner["viewerMayEdit"] == {"allowed": False, "reason": ONLY_AN_ACCOUNT_ADMIN}
    assert owner["viewerMayDeactivate"]["allowed"] is False
    # ... and the server refuses it with the same words (the rule asked ahead is the rule applied).
    refused = await server.gql(UPDATE_USER, {"id": admin.user_id, "license": "READ_ONLY"}, lead)
    assert refused.codes == ["FORBIDDEN"] and owner["viewerMayEdit"]["reason"] in refused.errors[0]["message"]
    refused = await server.gql(DEACTIVATE, {"id": admin.user_id}, lead)
    assert refused.codes == ["FORBIDDEN"] and owner["viewerMayDeactivate"]["reason"] in refused.errors[0]["message"]
    # A member on the lead's own project: offered, and it succeeds.
    member = answers["viewer@acme.test"]
    assert member["viewerMayEdit"]["allowed"] and member["viewerMayDeactivate"]["allowed"], member
    done = await server.gql(UPDATE_USER, {"id": viewer_id, "grants": [grant("JOB_ADMIN", p1)]}, lead)
    assert done.errors == [], done.body
    assert (await server.gql(DEACTIVATE, {"id": viewer_id}, lead)).errors == []
    # Oneself: never offered.
    assert answers["lead@acme.test"]["viewerMayEdit"]["allowed"] is False
    assert lead_id


async def test_an_account_admin_may_change_everyone_but_itself(server):
    admin = await server.bootstrap(email="owner@acme.test")
    await signed_in(server, admin, "second@acme.test", "DEVELOPER", [grant("ACCOUNT_ADMIN")])
    answers = await asked(server, admin.token)
    assert answers["second@acme.test"]["viewerMayEdit"]["allowed"] is True
    assert answers["second@acme.test"]["viewerMayDeactivate"]["allowed"] is True
    assert answers["owner@acme.test"]["viewerMayEdit"] == {
        "allowed": False,
        "reason": "you cannot change your own grants, license or state",
    }


async def test_a_member_without_members_write_is_told_why(server):
    admin = await server.bootstrap(email="owner@acme.test")
    p1 = await create_project(server, admin.token, "p1")
    _, reader = await signed_in(server, admin, "reader@acme.test", "DEVELOPER", [grant("ACCOUNT_VIEWER")])
    answers = await asked(server, reader)
    assert answers["owner@acme.test"]["viewerMayEdit"] == {"allowed": False, "reason": "requires MEMBERS:WRITE"}
    assert p1
