"""givablePermissionSets: what the caller may give a member on a scope, as the members page asks before it
offers a set. Each answer is held against what createUser then does with that set on that scope, so a page
that trusts the field offers exactly what the server accepts, and shows the server's own refusal."""

from __future__ import annotations

from typing import Any

from tests.api.service_token_calls import grant
from tests.api.test_graphql import CREATE_USER
from tests.api.test_members import account, signed_in, user_rows  # noqa: F401 (the fixture)
from tests.conftest import Server, store_service_token
from tokengate.core.catalog import CATALOG
from tokengate.core.policy import Grant

GIVABLE = "query($p: [ID!]) { givablePermissionSets(projectIds: $p) { key allowed reason } }"


async def givable(server: Server, token: str, projects: list[str] | None = None) -> dict[str, dict[str, Any]]:
    reply = await server.gql(GIVABLE, {"p": projects}, token)
    assert reply.errors == [], reply.body
    return {answer["key"]: answer for answer in reply.data["givablePermissionSets"]}


async def test_a_project_admin_is_told_what_it_may_give_and_why_not(server, account):  # noqa: F811
    admin, project_a, project_b = account
    _, lead = await signed_in(server, admin, "lead@acme.test", "DEVELOPER", [grant("ADMIN", project_a)])

    everywhere = await givable(server, lead)
    assert set(everywhere) == set(CATALOG.permission_sets)
    assert everywhere["ACCOUNT_ADMIN"] == {
        "key": "ACCOUNT_ADMIN",
        "allowed": False,
        "reason": "giving ACCOUNT_ADMIN requires ACCOUNT_SETTINGS:WRITE on the account, which you do not hold",
    }
    assert everywhere["JOB_VIEWER"]["allowed"] is False
    on_a, on_b = await givable(server, lead, [project_a]), await givable(server, lead, [project_b])
    assert on_a["JOB_VIEWER"] == {"key": "JOB_VIEWER", "allowed": True, "reason": None}
    assert on_b["JOB_VIEWER"]["allowed"] is False and f"on project {project_b}" in on_b["JOB_VIEWER"]["reason"]
    assert on_a["ACCOUNT_ADMIN"] == everywhere["ACCOUNT_ADMIN"]  # account-level: account-wide on any scope

    # The answers are the mutation's: allowed ones are created, refused ones refused with the same words.
    scopes = {"all": (None, everywhere), "a": ([project_a], on_a), "b": ([project_b], on_b)}
    created = 0
    for label, (projects, answers) in scopes.items():
        for key in ("JOB_VIEWER", "ACCOUNT_ADMIN", "STAKEHOLDER"):
            given = (
                grant(key, *projects) if projects and CATALOG.permission_sets[key].level == "PROJECT" else grant(key)
            )
            before = await user_rows(server)
            variables = {"email": f"{key.lower()}.{label}@acme.test", "license": "DEVELOPER", "grants": [given]}
            reply = await server.gql(CREATE_USER, variables, lead)
            if answers[key]["allowed"]:
                assert reply.errors == [], (label, key, reply.body)
                created += 1
            else:
                assert reply.codes == ["FORBIDDEN"], (label, key, reply.body)
                assert reply.errors[0]["message"] == answers[key]["reason"]
                assert await user_rows(server) == before
    assert created >= 2  # JOB_VIEWER and STAKEHOLDER on project A at least: the test sees both outcomes


async def test_an_account_admin_may_give_every_set_on_every_scope(server, account):  # noqa: F811
    admin, project_a, project_b = account
    for projects in (None, [project_a], [project_a, project_b]):
        answers = await givable(server, admin.token, projects)
        assert all(answer["allowed"] and answer["reason"] is None for answer in answers.values()), projects


async def test_a_service_token_is_answered_by_the_same_rule(server, account):  # noqa: F811
    admin, _, _ = account
    token = await store_service_token(server, admin.account_id, [Grant("SECURITY_ADMIN")])
    answers = await givable(server, token)
    assert answers["SECURITY_ADMIN"]["allowed"] and not answers["ACCOUNT_ADMIN"]["allowed"]


async def test_an_empty_or_unknown_project_list_is_bad_input(server, account):  # noqa: F811
    admin, project_a, _ = account
    for projects, message in (([], "must not be empty"), ([project_a, "prj_nothere"], "unknown project prj_nothere")):
        reply = await server.gql(GIVABLE, {"p": projects}, admin.token)
        assert reply.codes == ["BAD_USER_INPUT"] and message in reply.errors[0]["message"], reply.body
