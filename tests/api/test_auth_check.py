"""GET /auth/check, the forward-auth route for gateways, through HTTP with real tokens."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import from_address
from tests.conftest import store_service_token
from tokengate.core.policy import Grant

CREATE_PROJECT = "mutation($name: String!) { createProject(name: $name) { id } }"


async def check(server, query: str = "", token: str | None = None, method: str = "GET", **headers: str):
    sent = dict(headers)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with server.session.request(method, server.url + "/auth/check" + query, headers=sent) as response:
        return response.status, await response.text(), response.headers


async def project(server, token: str, name: str) -> str:
    reply = await server.gql(CREATE_PROJECT, {"name": name}, token=token)
    return reply.data["createProject"]["id"]


async def test_valid_token_gets_200_with_account_and_principal_headers(server):
    admin = await server.bootstrap()
    service = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    for query in ["", "?resource=JOBS&access=READ", "?resource=jobs&access=read", "?resource=JOBS"]:
        status, text, headers = await check(server, query, service)
        assert status == 200, (query, text)
        assert headers["X-Tokengate-Account-Id"] == admin.account_id
        assert headers["X-Tokengate-Principal"] == f"service_token:{service[4:20]}"  # the token id, not the secret
        assert headers["X-Tokengate-Principal-Kind"] == "SERVICE_TOKEN"
        assert text == ""
        assert service not in str(dict(headers)) and service[20:52] not in str(dict(headers))
    status, _, headers = await check(server, "?resource=MEMBERS&access=WRITE", admin.token)
    assert status == 200
    assert headers["X-Tokengate-Principal"] == f"user:{admin.user_id}"
    assert headers["X-Tokengate-Principal-Kind"] == "USER"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer tgs_short", "Bearer " + "x" * 600],
    ids=["none", "empty", "scheme only", "basic", "malformed", "oversized"],
)
async def test_missing_or_invalid_token_gets_401(server, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    status, text, response_headers = await check(server, "?resource=JOBS&access=READ", **headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] == "Bearer"
    assert json.loads(text)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "X-Tokengate-Account-Id" not in response_headers


async def test_unknown_and_deleted_tokens_get_401(server):
    admin = await server.bootstrap()
    service = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    assert (await check(server, "", service))[0] == 200  # validated once: now in the cache
    deleted = await server.gql(
        "mutation($id: ID!) { deleteServiceToken(id: $id) { state } }", {"id": service[4:20]}, token=admin.token
    )
    assert deleted.data == {"deleteServiceToken": {"state": "DELETED"}}, deleted.body
    status, text, _ = await check(server, "", service)
    assert status == 401 and service not in text


async def test_valid_token_without_the_permission_gets_403(server):
    admin = await server.bootstrap()
    a = await project(server, admin.token, "A")
    b = await project(server, admin.token, "B")
    other = await server.bootstrap("Other")
    elsewhere = await project(server, other.token, "Theirs")
    viewer = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    runner_on_a = await store_service_token(server, admin.account_id, [Grant("JOB_ADMIN", False, (a,))])
    for token, query, status in [
        (viewer, "?resource=JOBS&access=WRITE", 403),
        (viewer, "?resource=MEMBERS&access=READ", 403),
        (viewer, f"?resource=JOBS&access=READ&projectId={a}", 200),
        (viewer, f"?resource=JOBS&access=READ&projectId={elsewhere}", 403),  # another account's project
        (viewer, "?resource=JOBS&access=READ&projectId=prj_unknown", 403),
        (runner_on_a, f"?resource=JOBS&access=WRITE&projectId={a}", 200),
        (runner_on_a, f"?resource=JOBS&access=WRITE&projectId={b}", 403),
        (runner_on_a, "?resource=JOBS&access=WRITE", 403),  # no project: only all-project grants count
        (other.token, f"?resource=JOBS&access=WRITE&projectId={elsewhere}", 200),
    ]:
        got, text, headers = await check(server, query, token)
        assert got == status, (query, text)
        if status == 403:
            error = json.loads(text)["errors"][0]
            assert error["extensions"]["code"] == "FORBIDDEN"
            assert error["message"].startswith("requires JOBS:") or error["message"].startswith("requires MEMBERS:")
            assert "X-Tokengate-Account-Id" not in headers


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?resource=NOPE&access=READ", "unknown resource 'NOPE'"),
        ("?resource=JOBS&access=ADMIN", "unknown access 'ADMIN'"),
        ("?access=READ", "need a resource"),
        ("?projectId=prj_x", "need a resource"),
    ],
)
async def test_bad_parameters_get_400_with_a_message(server, query, message):
    admin = await server.bootstrap()
    status, text, _ = await check(server, query, admin.token)
    assert status == 400
    error = json.loads(text)["errors"][0]
    assert message in error["message"] and error["extensions"]["code"] == "BAD_REQUEST"


async def test_any_method_is_answered_as_gateways_send_the_clients_method(server):
    admin = await server.bootstrap()
    for method in ["POST", "PUT", "DELETE", "HEAD"]:
        status, _, headers = await check(server, "?resource=JOBS&access=WRITE", admin.token, method=method)
        assert status == 200 and headers["X-Tokengate-Account-Id"] == admin.account_id


async def test_envoy_style_path_takes_the_question_from_headers_not_the_clients_query(server):
    admin = await server.bootstrap()
    viewer = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    headers = {"Authorization": f"Bearer {viewer}", "X-Tokengate-Resource": "JOBS", "X-Tokengate-Access": "WRITE"}
    # Envoy appends the client's path and query; a client's ?resource=... must not change the question.
    async with server.session.post(
        server.url + "/auth/check/api/jobs?resource=JOBS&access=READ", headers=headers
    ) as response:
        assert response.status == 403
    headers["X-Tokengate-Access"] = "READ"
    async with server.session.post(server.url + "/auth/check/api/jobs", headers=headers) as response:
        assert response.status == 200
        assert response.headers["X-Tokengate-Principal"] == f"service_token:{viewer[4:20]}"
    async with server.session.get(
        server.url + "/auth/check/anything", headers={"Authorization": f"Bearer {viewer}"}
    ) as response:
        assert response.status == 200  # no resource header: authentication only


async def test_ip_restrictions_refuse_with_403(proxied):
    admin = await proxied.bootstrap()
    service = await store_service_token(proxied, admin.account_id, [Grant("JOB_VIEWER")])
    reply = await proxied.gql(
        'mutation { setIpRestrictions(enabled: true, rules: [{name: "partner", type: DENY, cidrs: ["198.51.100.0/24"]}]) { enabled } }',
        token=admin.token,
    )
    assert reply.errors == []
    status, text, headers = await check(proxied, "?resource=JOBS&access=READ", service, **from_address("198.51.100.9"))
    assert status == 403
    assert json.loads(text) == {
        "errors": [{"message": "Forbidden: Access denied", "extensions": {"code": "FORBIDDEN"}}]
    }
    assert "X-Tokengate-Account-Id" not in headers
    status, _, _ = await check(proxied, "?resource=JOBS&access=READ", service, **from_address("198.51.101.9"))
    assert status == 200
