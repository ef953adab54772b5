"""A grant names only the projects the caller may read (issue 20, Low): the names of projects a caller may not
read (PROJECTS:READ there, what ``Account.projects`` lists) leaked through ``members { grants { projects } }``
and ``serviceTokens { grants { projects } }``. Each reader is first shown to reach the lists and not to read the
hidden project; then the hidden project is absent from every path that shows grants, beside the account admin
who sees it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api import service_token_calls as calls
from tests.api.service_token_calls import grant
from tests.api.test_graphql import create_project
from tests.api.test_members import make_user, signed_in

SECRET = "Secret merger"
GRANTS = "grants { permissionSet projects { id name } }"
PROJECTS = "{ account { projects { name } } }"
MEMBERS = (
    "{ account { members { email " + GRANTS + " } memberConnection { edges { node { email " + GRANTS + " } } } } }"
)
USER_NODE = "query($id: ID!) { node(id: $id) { ... on User { " + GRANTS + " } } }"
TOKENS = (
    "{ account { serviceTokens { name " + GRANTS + " } "
    "serviceTokenConnection { edges { node { name " + GRANTS + " } } } } }"
)


def names(value: Any) -> set[str]:
    """Every project name anywhere in an answer."""
    if isinstance(value, dict):
        found = {value["name"]} if isinstance(value.get("name"), str) and "id" in value else set()
        return found.union(*(names(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(names(v) for v in value))
    return set()


@pytest.fixture
async def account(server):
    admin = await server.bootstrap()
    public = await create_project(server, admin.token, "Public")
    secret = await create_project(server, admin.token, SECRET)
    member = await make_user(
        server, admin, "both@acme.test", "DEVELOPER", [grant("JOB_VIEWER", public, secret), grant("ADMIN", secret)]
    )
    await calls.created(server, admin.token, "nightly", [calls.grant("JOB_VIEWER", public, secret)])
    await calls.created(server, admin.token, "merger-only", [calls.grant("JOB_RUNNER", secret)])
    return admin, public, secret, member


async def test_members_grants_name_only_projects_the_caller_may_read(server, account):
    admin, public, secret, member = account
    _, developer = await signed_in(server, admin, "dev@acme.test", "DEVELOPER", [grant("DEVELOPER", public)])
    # The precondition: it lists members (MEMBERS:READ) and may not read the secret project.
    assert (await server.gql(PROJECTS, token=developer)).data == {"account": {"projects": [{"name": "Public"}]}}
    reply = await server.gql(MEMBERS, token=developer)
    assert reply.errors == [], reply.body
    assert names(reply.data) == {"Public"}
    [both] = [m for m in reply.data["account"]["members"] if m["email"] == "both@acme.test"]
    assert both["grants"] == [
        {"permissionSet": "JOB_VIEWER", "projects": [{"id": public, "name": "Public"}]},
        {"permissionSet": "ADMIN", "projects": []},  # left out: neither id nor name
    ]
    reply = await server.gql(USER_NODE, {"id": member}, developer)
    assert reply.data["node"]["grants"] == both["grants"], reply.body
    assert secret not in str(reply.body)
    # The account admin sees them all.
    reply = await server.gql(MEMBERS, token=admin.token)
    assert names(reply.data) == {"Public", SECRET}


async def test_service_token_grants_name_only_projects_the_caller_may_read(server, account):
    admin, public, secret, _ = account
    # SECURITY_ADMIN gives SERVICE_TOKENS:READ; an IT license gives no project access, so no PROJECTS:READ.
    _, it_admin = await signed_in(server, admin, "it@acme.test", "IT", [grant("SECURITY_ADMIN")])
    assert (await server.gql(PROJECTS, token=it_admin)).data == {"account": {"projects": []}}
    reply = await server.gql(TOKENS, token=it_admin)
    assert reply.errors == [], reply.body
    listed = {t["name"]: t["grants"] for t in reply.data["account"]["serviceTokens"]}
    assert listed["nightly"] == [{"permissionSet": "JOB_VIEWER", "projects": []}]
    assert listed["merger-only"] == [{"permissionSet": "JOB_RUNNER", "projects": []}]
    assert names(reply.data) == set() and public not in str(reply.body) and secret not in str(reply.body)
    reply = await server.gql(TOKENS, token=admin.token)
    assert names(reply.data) == {"Public", SECRET}


async def test_a_principal_sees_its_own_grants_by_the_same_rule(server, account):
    admin, public, secret, _ = account
    runner = await calls.created(
        server, admin.token, "runner", [calls.grant("JOB_RUNNER", secret), calls.grant("JOB_VIEWER", public)]
    )
    reply = await server.gql("{ viewer { grants { permissionSet projects { name } } } }", token=runner.secret)
    assert reply.data["viewer"]["grants"] == [
        {"permissionSet": "JOB_RUNNER", "projects": []},  # JOB_RUNNER has no PROJECTS:READ
        {"permissionSet": "JOB_VIEWER", "projects": [{"name": "Public"}]},
    ], reply.body
