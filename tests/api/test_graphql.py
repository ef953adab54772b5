"""Queries and mutations through HTTP with real tokens: @requires, check, tenants, bad requests."""

from __future__ import annotations

import json

from tests.conftest import store_service_token
from tokengate.core.policy import Grant

CREATE_PROJECT = "mutation($name: String!) { createProject(name: $name) { id name } }"
CREATE_USER = """
mutation($email: String!, $license: License!, $grants: [GrantInput!]!) {
  createUser(email: $email, license: $license, grants: $grants) { id email license grants { permissionSet allProjects projects { id } } }
}
"""


async def create_project(server, token, name="Analytics") -> str:
    reply = await server.gql(CREATE_PROJECT, {"name": name}, token=token)
    assert reply.errors == [], reply.body
    return reply.data["createProject"]["id"]


async def test_forbidden_field_is_null_with_a_partial_result(server):
    seeded = await server.bootstrap()
    project = await create_project(server, seeded.token)
    token = await store_service_token(server, seeded.account_id, [Grant("JOB_ADMIN", False, (project,))])
    reply = await server.gql("{ viewer { kind } account { name members { email } } }", token=token)
    assert reply.status == 200
    assert reply.data == {"viewer": {"kind": "SERVICE_TOKEN"}, "account": {"name": "Acme", "members": None}}
    assert reply.errors[0]["message"] == "requires MEMBERS:READ"
    assert reply.errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert reply.errors[0]["path"] == ["account", "members"]


async def test_forbidden_mutation_changes_nothing(server):
    seeded = await server.bootstrap()
    token = await store_service_token(server, seeded.account_id, [Grant("ACCOUNT_VIEWER")])
    reply = await server.gql(CREATE_PROJECT, {"name": "Nope"}, token=token)
    assert reply.data == {"createProject": None}
    assert reply.errors[0]["message"] == "requires PROJECT_CREATION:WRITE"
    assert await server.pool.fetchval("SELECT count(*) FROM projects") == 0


async def test_check_and_checks_answer_per_grant_and_project(server):
    seeded = await server.bootstrap()
    a = await create_project(server, seeded.token, "A")
    b = await create_project(server, seeded.token, "B")
    token = await store_service_token(server, seeded.account_id, [Grant("JOB_ADMIN", False, (a,))])
    reply = await server.gql(
        """query($a: ID, $b: ID) {
             inA: check(resource: JOBS, access: WRITE, projectId: $a) { allowed reason }
             inB: check(resource: JOBS, access: WRITE, projectId: $b) { allowed reason }
             all: checks(requests: [{resource: JOBS, access: READ, projectId: $a},
                                    {resource: JOBS, access: READ},
                                    {resource: SERVICE_TOKENS, access: WRITE},
                                    {resource: PUBLIC_MODELS, access: READ}]) { allowed }
           }""",
        {"a": a, "b": b},
        token=token,
    )
    assert reply.errors == []
    assert reply.data["inA"]["allowed"] is True and "JOB_ADMIN" in reply.data["inA"]["reason"]
    assert reply.data["inB"] == {"allowed": False, "reason": f"no grant gives JOBS:WRITE in project {b}"}
    assert [d["allowed"] for d in reply.data["all"]] == [True, False, False, True]


async def test_account_two_sees_nothing_of_account_one(server):
    one = await server.bootstrap("One")
    two = await server.bootstrap("Two")
    project_one = await create_project(server, one.token, "Secret project")
    reply = await server.gql(
        "{ account { id name projects { id name } members { id email } } viewer { grants { projects { id } } } }",
        token=two.token,
    )
    assert reply.errors == []
    assert reply.data["account"]["name"] == "Two"
    assert reply.data["account"]["projects"] == []
    assert [m["id"] for m in reply.data["account"]["members"]] == [two.user_id]
    assert "Secret project" not in json.dumps(reply.body) and one.account_id not in json.dumps(reply.body)
    check = "query($p: ID) { check(resource: JOBS, access: READ, projectId: $p) { allowed reason } }"
    foreign = await server.gql(check, {"p": project_one}, two.token)
    missing = await server.gql(check, {"p": "prj_nope"}, two.token)
    # The contract of 2026-12-01: the same answer for both, and no error.
    assert foreign.body == missing.body == {"data": {"check": {"allowed": False, "reason": "project not found"}}}


async def test_user_grants_on_another_accounts_project_are_refused(server):
    one = await server.bootstrap("One")
    two = await server.bootstrap("Two")
    project_one = await create_project(server, one.token)
    reply = await server.gql(
        CREATE_USER,
        {
            "email": "x@two.io",
            "license": "DEVELOPER",
            "grants": [{"permissionSet": "JOB_ADMIN", "allProjects": False, "projectIds": [project_one]}],
        },
        two.token,
    )
    assert reply.codes == ["BAD_USER_INPUT"]
    assert await server.pool.fetchval("SELECT count(*) FROM users WHERE email = 'x@two.io'") == 0


async def test_create_user_with_project_grant_and_read_only_license(server):
    seeded = await server.bootstrap()
    project = await create_project(server, seeded.token)
    reply = await server.gql(
        CREATE_USER,
        {
            "email": "viewer@acme.io",
            "license": "READ_ONLY",
            "grants": [{"permissionSet": "JOB_ADMIN", "allProjects": False, "projectIds": [project]}],
        },
        seeded.token,
    )
    assert reply.errors == []
    user = reply.data["createUser"]
    assert user["license"] == "READ_ONLY"
    assert user["grants"] == [{"permissionSet": "JOB_ADMIN", "allProjects": False, "projects": [{"id": project}]}]


async def test_license_limits_apply_to_user_tokens(server):
    seeded = await server.bootstrap()
    project = await create_project(server, seeded.token)
    from tokengate.store import grants as grant_store
    from tokengate.store import users as user_store

    async with server.pool.acquire() as conn, conn.transaction():
        user = await user_store.create_user(conn, "usr_readonly0000001", seeded.account_id, "ro@acme.io", "READ_ONLY")
        await grant_store.add_user_grants(conn, seeded.account_id, user.id, [Grant("ACCOUNT_ADMIN")])
    token = await server.issue_user_token(user.id)
    reply = await server.gql(
        """query($p: ID) { read: check(resource: JOBS, access: READ, projectId: $p) { allowed }
                           write: check(resource: JOBS, access: WRITE, projectId: $p) { allowed reason }
                           account { members { id } } }""",
        {"p": project},
        token,
    )
    assert reply.data["read"]["allowed"] is True
    assert reply.data["write"] == {"allowed": False, "reason": "a READ_ONLY license allows READ at most"}
    assert reply.data["account"]["members"] is None and reply.codes == ["FORBIDDEN"]


async def test_bad_input_answers_with_codes_not_500(server):
    seeded = await server.bootstrap()
    for name in ["", "x" * 256]:
        reply = await server.gql(CREATE_PROJECT, {"name": name}, seeded.token)
        assert reply.status == 200 and reply.codes == ["BAD_USER_INPUT"]
    reply = await server.gql(CREATE_USER, {"email": "not-an-email", "license": "IT", "grants": []}, seeded.token)
    assert reply.codes == ["BAD_USER_INPUT"]
    reply = await server.gql("{ nope }", token=seeded.token)
    assert reply.status == 200 and reply.codes == ["BAD_USER_INPUT"]
    reply = await server.gql("{ check(resource: NOPE, access: READ) { allowed } }", token=seeded.token)
    assert reply.codes == ["BAD_USER_INPUT"]


async def test_http_level_refusals(server):
    seeded = await server.bootstrap()
    headers = {"Authorization": f"Bearer {seeded.token}", "Content-Type": "application/json"}
    cases = [
        ("not json", 400),
        ("[1, 2]", 400),
        (json.dumps([{"query": "{ viewer { kind } }"}] * 2), 400),
        (json.dumps({"variables": {}}), 400),
        (json.dumps({"query": "{ viewer { kind } }", "variables": [1]}), 400),
        (json.dumps({"query": 5}), 400),
    ]
    for body, status in cases:
        async with server.session.post(server.url + "/graphql", data=body, headers=headers) as response:
            assert response.status == status, body
            assert (await response.json())["errors"][0]["message"]
    async with server.session.post(server.url + "/graphql", data=b"x" * (2 * 1024 * 1024), headers=headers) as r:
        assert r.status == 413


async def test_get_queries_work_and_get_mutations_are_refused(server):
    seeded = await server.bootstrap()
    auth = {"Authorization": f"Bearer {seeded.token}"}
    status, body, _ = await server.get("/graphql", params={"query": "{ viewer { kind } }"}, headers=auth)
    assert status == 200 and json.loads(body)["data"]["viewer"]["kind"] == "USER"
    status, body, _ = await server.get(
        "/graphql", params={"query": 'mutation { createProject(name: "x") { id } }'}, headers=auth
    )
    assert status == 405
    assert await server.pool.fetchval("SELECT count(*) FROM projects") == 0


async def test_graphiql_in_a_browser(server):
    status, body, headers = await server.get("/graphql", headers={"Accept": "text/html"})
    assert status == 200 and "graphiql" in body.lower() and headers["Content-Type"].startswith("text/html")
    assert "unpkg.com" not in body and "/static/graphiql/graphiql.min.js" in body
    for asset in ["graphiql.min.js", "graphiql.min.css", "react.production.min.js", "react-dom.production.min.js"]:
        status, _, _ = await server.get("/static/graphiql/" + asset)
        assert status == 200, asset


async def test_health_and_readiness(server):
    assert (await server.get("/healthz"))[0] == 200
    assert (await server.get("/readyz"))[0] == 200


async def test_permission_sets_show_plan_availability(server):
    seeded = await server.bootstrap(plan="TEAM")
    reply = await server.gql("{ permissionSets { key name level availableOnPlan } }", token=seeded.token)
    available = {s["key"] for s in reply.data["permissionSets"] if s["availableOnPlan"]}
    assert available == {
        "ACCOUNT_ADMIN",
        "BILLING_ADMIN",
        "JOB_ADMIN",
        "MEMBER",
        "METADATA_ONLY",
        "READ_ONLY",
        "SEMANTIC_LAYER_ONLY",
    }
    assert len(reply.data["permissionSets"]) == 21
    job_admin = next(s for s in reply.data["permissionSets"] if s["key"] == "JOB_ADMIN")
    assert job_admin == {"key": "JOB_ADMIN", "name": "Job Admin", "level": "PROJECT", "availableOnPlan": True}


async def test_projects_list_only_what_the_caller_may_read(server):
    seeded = await server.bootstrap()
    a = await create_project(server, seeded.token, "A")
    await create_project(server, seeded.token, "B")
    token = await store_service_token(server, seeded.account_id, [Grant("JOB_VIEWER", False, (a,))])
    reply = await server.gql("{ account { projects { id name } } }", token=token)
    assert reply.data["account"]["projects"] == [{"id": a, "name": "A"}]


async def test_changes_are_audited_with_actor_and_address(server):
    seeded = await server.bootstrap()
    project = await create_project(server, seeded.token)
    row = await server.pool.fetchrow("SELECT * FROM audit_events WHERE action = 'project.created'")
    assert row["target_id"] == project
    assert row["actor"] == f"user:{seeded.user_id}"
    assert row["source"] == "graphql" and row["client_addr"] == "127.0.0.1"
