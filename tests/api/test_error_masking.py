"""Unexpected exceptions are masked (a generic message and a request id that is also in the server log);
typed errors pass through with their own message and code."""

from __future__ import annotations

import logging

import pytest

from tests.api.service_token_calls import DELETE, create, grant
from tests.api.test_graphql import CREATE_PROJECT
from tests.conftest import store_service_token
from tokengate.core.policy import Grant
from tokengate.http import forward_auth
from tokengate.store import projects as project_store
from tokengate.store import token_listing

DETAIL = "connection string postgresql://admin:hunter2@db/internal"  # what must never reach a client


def boom(*args, **kwargs):
    raise RuntimeError(DETAIL)


def unexpected_records(caplog, request_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and request_id in r.getMessage()]


@pytest.mark.parametrize(
    ("target", "query"),
    [
        (project_store, "{ account { id projects { id } } }"),  # a nested field resolver raises
        (token_listing, "{ account { serviceTokens { id } } }"),  # a guarded field's resolver raises
    ],
    ids=["projects", "serviceTokens"],
)
async def test_an_unexpected_exception_is_masked_and_logged_with_the_request_id(
    server, caplog, monkeypatch, target, query
):
    admin = await server.bootstrap()
    name = "list_projects" if target is project_store else "service_tokens_with_grants"
    monkeypatch.setattr(target, name, boom)
    with caplog.at_level(logging.DEBUG):
        reply = await server.gql(query, token=admin.token)
    request_id = reply.headers["X-Request-Id"]
    assert reply.status == 200
    [error] = reply.errors
    assert error["message"] == f"Internal server error (request id {request_id})"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    assert DETAIL not in str(reply.body) and "RuntimeError" not in str(reply.body)
    [record] = unexpected_records(caplog, request_id)
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError  # the traceback is in the log
    assert DETAIL in caplog.text
    # The server goes on answering.
    monkeypatch.undo()
    assert (await server.gql(query, token=admin.token)).errors == []


async def test_an_unexpected_exception_in_a_mutation_rolls_back_and_is_masked(server, caplog, monkeypatch):
    admin = await server.bootstrap()
    monkeypatch.setattr(project_store, "create_project", boom)
    with caplog.at_level(logging.DEBUG):
        reply = await server.gql(CREATE_PROJECT, {"name": "x"}, token=admin.token)
    request_id = reply.headers["X-Request-Id"]
    assert reply.status == 200 and reply.data == {"createProject": None}
    assert reply.codes == ["INTERNAL_SERVER_ERROR"] and reply.errors[0]["extensions"]["requestId"] == request_id
    assert len(unexpected_records(caplog, request_id)) == 1
    assert await server.pool.fetchval("SELECT count(*) FROM projects") == 0


async def test_an_unexpected_exception_outside_graphql_is_a_masked_500(server, caplog, monkeypatch):
    admin = await server.bootstrap()
    monkeypatch.setattr(forward_auth, "check_question", boom)
    with caplog.at_level(logging.DEBUG):
        status, body, headers = await server.get(
            "/auth/check", params={"resource": "JOBS"}, headers={"Authorization": f"Bearer {admin.token}"}
        )
    request_id = headers["X-Request-Id"]
    assert status == 500 and DETAIL not in body
    assert f"Internal server error (request id {request_id})" in body and "INTERNAL_SERVER_ERROR" in body
    [record] = unexpected_records(caplog, request_id)
    assert record.exc_info[0] is RuntimeError


async def test_typed_errors_pass_through_unmasked(server):
    admin = await server.bootstrap(plan="DEVELOPER")
    viewer = await server.bootstrap("Other", plan="ENTERPRISE")
    reader = await store_service_token(server, viewer.account_id, [Grant("JOB_ADMIN", True, ())])
    cases = [
        ("UNAUTHENTICATED", await server.gql("{ viewer { kind } }"), "authentication required"),
        ("FORBIDDEN", await server.gql("{ account { members { id } } }", token=reader), "requires MEMBERS:READ"),
        ("BAD_USER_INPUT", await server.gql(CREATE_PROJECT, {"name": ""}, token=admin.token), "name must be"),
        ("NOT_FOUND", await server.gql(DELETE, {"id": "nope"}, token=admin.token), "service token not found"),
        ("PLAN_RESTRICTED", await create(server, admin.token, grants=[grant("JOB_ADMIN")]), "DEVELOPER"),
    ]
    for code, reply, text in cases:
        assert reply.codes == [code], (code, reply.body)
        error = reply.errors[0]
        assert text in error["message"] and "Internal server error" not in error["message"]
        assert "requestId" not in error["extensions"]
