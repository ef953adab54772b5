"""GraphQL over HTTP as its specification and front-end clients expect it (issue 14), through HTTP: media types
and their status codes, request errors without data, JSON for every refusal, several operations without
operationName, check answers for unknown projects."""

from __future__ import annotations

import json
from typing import Any

from tests.api.test_graphql import create_project
from tests.conftest import Server, store_service_token
from tokengate.core.policy import Grant

GR = "application/graphql-response+json"
APOLLO_ACCEPT = "application/graphql-response+json,application/json;q=0.9"  # what Apollo Client 4 sends


async def post(
    server: Server, body: Any, token: str | None = None, accept: str | None = None, raw: bytes | None = None
) -> tuple[int, Any, Any]:
    headers = {"Content-Type": "application/json"}
    if accept is not None:
        headers["Accept"] = accept
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body).encode()
    async with server.session.post(server.url + "/graphql", data=data, headers=headers) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None, response.headers


async def test_graphql_response_json_when_accepted_and_json_otherwise(server):
    admin = await server.bootstrap()
    query = {"query": "{ viewer { kind } }"}
    for accept, media_type in [
        (GR, GR),
        (APOLLO_ACCEPT, GR),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        (None, "application/json"),
    ]:
        status, body, headers = await post(server, query, admin.token, accept)
        assert status == 200 and body == {"data": {"viewer": {"kind": "USER"}}}, accept
        assert headers["Content-Type"] == f"{media_type}; charset=utf-8", accept


async def test_accept_naming_neither_type_is_406_and_nothing_runs(server):
    admin = await server.bootstrap()
    mutation = {"query": 'mutation { createProject(name: "never") { id } }'}
    status, body, headers = await post(server, mutation, admin.token, "text/html")
    assert status == 406 and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert GR in headers["Accept"]
    assert await server.pool.fetchval("SELECT count(*) FROM projects") == 0
    # The same request accepting JSON runs: the 406 was the header's doing.
    status, body, _ = await post(server, mutation, admin.token, "text/html, application/json")
    assert status == 200 and body["data"]["createProject"]["id"].startswith("prj_")


REQUEST_ERRORS = {
    "syntax": {"query": "{ viewer { kind "},
    "validation": {"query": "{ nope }"},
    "variable coercion": {"query": "query($n: Int!) { account { auditLog(first: $n) { pageInfo { hasNextPage } } } }"},
    "several operations without operationName": {"query": "query A { viewer { kind } } query B { account { id } }"},
    "unknown operationName": {"query": "query A { viewer { kind } }", "operationName": "C"},
}


async def test_request_errors_are_400_with_graphql_response_json_and_200_with_json_never_with_data(server):
    admin = await server.bootstrap()
    for label, request in REQUEST_ERRORS.items():
        for accept, expected_status in [(GR, 400), (APOLLO_ACCEPT, 400), ("application/json", 200), (None, 200)]:
            status, body, headers = await post(server, request, admin.token, accept)
            assert status == expected_status, (label, accept, body)
            assert "data" not in body and body["errors"][0]["message"], (label, accept, body)
            assert body["errors"][0]["extensions"]["code"] in ("BAD_USER_INPUT", "BAD_REQUEST"), (label, body)
            assert headers["Content-Type"].startswith(GR if expected_status == 400 else "application/json")


async def test_several_operations_need_operation_name_and_run_the_named_one(server):
    admin = await server.bootstrap()
    document = "query A { viewer { kind } } query B { account { name } }"
    status, body, _ = await post(server, {"query": document}, admin.token, GR)
    assert status == 400 and "operationName" in body["errors"][0]["message"]  # before: A ran
    status, body, _ = await post(server, {"query": document, "operationName": "B"}, admin.token, GR)
    assert status == 200 and body == {"data": {"account": {"name": "Acme"}}}


async def test_a_partial_result_is_200_with_its_data_in_either_media_type(server):
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    viewer_token = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER", False, (project,))])
    for accept in (GR, "application/json"):
        status, body, _ = await post(server, {"query": "{ account { name members { id } } }"}, viewer_token, accept)
        assert status == 200 and body["data"] == {"account": {"name": "Acme", "members": None}}
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_refusals_of_the_gate_keep_their_status_in_the_graphql_media_type(server):
    status, body, headers = await post(server, {"query": "{ viewer { kind } }"}, "tgs_nope", APOLLO_ACCEPT)
    # Apollo Client reads a non-2xx answer as a GraphQL result only in this media type (then the code is seen).
    assert status == 401 and headers["Content-Type"].startswith(GR) and headers["WWW-Authenticate"] == "Bearer"
    assert body == {"errors": [{"message": body["errors"][0]["message"], "extensions": {"code": "UNAUTHENTICATED"}}]}
    status, _, headers = await post(server, {"query": "{ viewer { kind } }"}, "tgs_nope")
    assert status == 401 and headers["Content-Type"].startswith("application/json")


async def test_mutation_over_get_is_405_with_allow_in_either_media_type(server):
    admin = await server.bootstrap()
    for accept in (GR, "application/json"):
        status, text, headers = await server.get(
            "/graphql",
            params={"query": 'mutation { createProject(name: "x") { id } }'},
            headers={"Authorization": f"Bearer {admin.token}", "Accept": accept},
        )
        assert status == 405 and headers["Allow"] == "POST" and json.loads(text)["errors"][0]["message"]
    assert await server.pool.fetchval("SELECT count(*) FROM projects") == 0


async def test_every_refusal_of_the_transport_is_json_with_a_contract_code(server):
    admin = await server.bootstrap()
    auth = {"Authorization": f"Bearer {admin.token}"}
    checks = []
    async with server.session.post(
        server.url + "/graphql", data=b"x" * (2 * 1024 * 1024), headers={**auth, "Content-Type": "application/json"}
    ) as response:
        checks.append(("body over 1 MiB", 413, response.status, response.content_type, await response.text()))
    async with server.session.put(server.url + "/graphql", json={"query": "{ viewer { kind } }"}, headers=auth) as r:
        checks.append(("PUT", 405, r.status, r.content_type, await r.text()))
        assert set(r.headers["Allow"].split(",")) >= {"GET", "POST"}
    async with server.session.post(
        server.url + "/graphql", data=b"{}", headers={**auth, "Content-Type": "text/plain"}
    ) as response:
        checks.append(("text/plain body", 415, response.status, response.content_type, await response.text()))
    async with server.session.get(server.url + "/graphql?query=" + "x" * 9000, headers=auth) as response:
        checks.append(
            ("URL over the parser's limit", 414, response.status, response.content_type, await response.text())
        )
    status, text, headers = await server.get("/no-such-page")
    checks.append(("unknown path", 404, status, headers["Content-Type"].split(";")[0], text))
    for label, expected, status, content_type, text in checks:
        assert status == expected and content_type == "application/json", (label, status, content_type, text)
        code = json.loads(text)["errors"][0]["extensions"]["code"]
        assert code == ("NOT_FOUND" if expected == 404 else "BAD_REQUEST"), (label, text)


async def test_extensions_must_be_an_object_and_empty_get_parameters_mean_none(server):
    admin = await server.bootstrap()
    for bad in ["string", 0, False, ["array"]]:
        status, body, _ = await post(server, {"query": "{ viewer { kind } }", "extensions": bad}, admin.token)
        assert status == 400 and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST", bad
    status, body, _ = await post(server, {"query": "{ viewer { kind } }", "extensions": {"any": 1}}, admin.token)
    assert status == 200 and body == {"data": {"viewer": {"kind": "USER"}}}
    status, text, _ = await server.get(
        "/graphql",
        params={"query": "{ viewer { kind } }", "variables": "", "operationName": "", "extensions": ""},
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert status == 200 and json.loads(text) == {"data": {"viewer": {"kind": "USER"}}}


async def test_check_of_an_unknown_or_foreign_project_is_a_denial_and_the_batch_keeps_its_other_answers(server):
    one = await server.bootstrap("One")
    two = await server.bootstrap("Two")
    theirs = await create_project(server, one.token)
    mine = await create_project(server, two.token)
    query = """query($mine: ID, $other: ID) {
        viewer { kind }
        check(resource: JOBS, access: READ, projectId: $other) { allowed reason }
        checks(requests: [{resource: JOBS, access: READ, projectId: $mine},
                          {resource: JOBS, access: READ, projectId: $other}]) { allowed reason }
    }"""
    answers = []
    for other in (theirs, "prj_" + "0" * 16, "x" * 100_000):
        reply = await server.gql(query, {"mine": mine, "other": other}, token=two.token)
        assert reply.errors == [] and reply.data["viewer"] == {"kind": "USER"}, reply.body  # before: data was null
        assert reply.data["check"] == {"allowed": False, "reason": "project not found"}
        assert reply.data["checks"][0]["allowed"] is True
        answers.append(reply.body)
    assert answers[0] == answers[1] == answers[2]  # a foreign project is answered exactly as an unknown one
