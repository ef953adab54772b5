"""Every argument that names something by id, tried with an id of another account and with an id that does not
exist: the two answers are identical (and the other account is untouched).

The table is checked against the schema, so a new id-taking argument fails here until it is added.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.api.schema_inputs import arguments_of_scalar
from tests.api.service_token_calls import CREATE, created, grant, works
from tests.api.test_bad_input import AUDIT, CHECK, CHECKS, DELETE, ROTATE, UPDATE_GRANTS, UPDATE_NAME, snapshot
from tests.api.test_graphql import CREATE_USER, create_project
from tokengate import tokens
from tokengate.api.audit_log import encode_cursor


@dataclass(frozen=True)
class IdCall:
    """A call that puts ``the_id`` in one argument; ``kind`` says which of the other account's ids to use."""

    query: str
    variables: Callable[[str, Mine], dict[str, Any]]
    kind: str  # project | service_token | audit_cursor
    code: str | None  # the one answer for a foreign and an unknown id (None: no error, the same empty answer)


@dataclass(frozen=True)
class Mine:
    """The caller's own things, so that only the argument under test is foreign."""

    project: str
    token: str


ID_CALLS: dict[str, IdCall] = {
    "Query.check.projectId": IdCall(CHECK, lambda the_id, mine: {"p": the_id}, "project", "NOT_FOUND"),
    "Query.checks.requests.projectId": IdCall(
        CHECKS,
        lambda the_id, mine: {
            "r": [{"resource": "JOBS", "access": "READ", "projectId": p} for p in (mine.project, the_id)]
        },
        "project",
        "NOT_FOUND",
    ),
    "Account.auditLog.after": IdCall(AUDIT, lambda the_id, mine: {"after": the_id}, "audit_cursor", "BAD_USER_INPUT"),
    # A filter by another account's id finds nothing, exactly as an id that does not exist.
    "Account.auditLog.filter.targetId": IdCall(
        "query($t: ID) { account { auditLog(filter: {targetId: $t}) { edges { node { id } } } } }",
        lambda the_id, mine: {"t": the_id},
        "project",
        None,
    ),
    "Mutation.rotateServiceToken.id": IdCall(ROTATE, lambda the_id, mine: {"id": the_id}, "service_token", "NOT_FOUND"),
    "Mutation.updateServiceToken.id": IdCall(
        UPDATE_NAME, lambda the_id, mine: {"id": the_id, "name": "mine now"}, "service_token", "NOT_FOUND"
    ),
    "Mutation.deleteServiceToken.id": IdCall(DELETE, lambda the_id, mine: {"id": the_id}, "service_token", "NOT_FOUND"),
    # A project list in grants is checked against the account's projects: BAD_USER_INPUT, as documented.
    "Mutation.createServiceToken.input.grants.projectIds": IdCall(
        CREATE,
        lambda the_id, mine: {"input": {"name": "n", "grants": [grant("JOB_ADMIN", mine.project, the_id)]}},
        "project",
        "BAD_USER_INPUT",
    ),
    "Mutation.updateServiceToken.grants.projectIds": IdCall(
        UPDATE_GRANTS,
        lambda the_id, mine: {"id": mine.token, "grants": [grant("JOB_ADMIN", the_id)]},
        "project",
        "BAD_USER_INPUT",
    ),
    "Mutation.createUser.grants.projectIds": IdCall(
        CREATE_USER,
        lambda the_id, mine: {"email": "x@acme.io", "license": "DEVELOPER", "grants": [grant("JOB_ADMIN", the_id)]},
        "project",
        "BAD_USER_INPUT",
    ),
}


def unknown_id(kind: str) -> str:
    """An id of the same shape that no account has."""
    if kind == "project":
        return tokens.new_id("prj")
    if kind == "service_token":
        return tokens.random_base62(tokens.ID_LENGTH)
    return encode_cursor(10**15)


def anonymised(body: Any, the_id: str) -> str:
    """The answer with the id itself replaced (a grant error names the refused project id)."""
    return json.dumps(body, sort_keys=True).replace(the_id, "<id>")


def test_every_id_argument_of_the_schema_is_in_the_table():
    assert set(ID_CALLS) == arguments_of_scalar("ID") | {"Account.auditLog.after"}


async def test_ids_of_another_account_answer_exactly_as_ids_that_do_not_exist(server):
    one = await server.bootstrap("One")
    two = await server.bootstrap("Two")
    theirs = {
        "project": await create_project(server, one.token, "theirs"),
        "service_token": (await created(server, one.token, "theirs")).id,
    }
    their_secret_token = (await created(server, one.token, "second")).secret
    events = await server.gql(AUDIT, {"first": 1}, token=one.token)
    theirs["audit_cursor"] = events.data["account"]["auditLog"]["edges"][0]["cursor"]
    mine = Mine(project=await create_project(server, two.token, "mine"), token=(await created(server, two.token)).id)
    await create_project(server, two.token, "more history")  # so a cursor of Two's own has older events

    before = await snapshot(server)
    for argument, call in ID_CALLS.items():
        foreign, unknown = theirs[call.kind], unknown_id(call.kind)
        answers = []
        for the_id in (foreign, unknown):
            reply = await server.gql(call.query, call.variables(the_id, mine), token=two.token)
            assert reply.status == 200 and reply.codes == ([call.code] if call.code else []), (argument, reply.body)
            answers.append(anonymised(reply.body, the_id))
        assert answers[0] == answers[1], (argument, answers)
    assert await snapshot(server) == before, "a refused call changed something"
    assert await works(server, their_secret_token)


async def test_own_ids_in_the_same_calls_are_accepted(server):
    """The table's calls are valid apart from the id: with the caller's own ids they succeed."""
    admin = await server.bootstrap()
    mine = Mine(project=await create_project(server, admin.token), token=(await created(server, admin.token)).id)
    cursor = (await server.gql(AUDIT, {"first": 1}, token=admin.token)).data["account"]["auditLog"]["edges"][0]
    own = {"project": mine.project, "service_token": mine.token, "audit_cursor": cursor["cursor"]}
    for argument, call in ID_CALLS.items():
        if call.kind == "service_token" and "delete" not in argument.lower():
            reply = await server.gql(call.query, call.variables(own[call.kind], mine), token=admin.token)
            assert reply.errors == [], (argument, reply.body)
    for argument, call in ID_CALLS.items():
        if call.kind != "service_token":
            reply = await server.gql(call.query, call.variables(own[call.kind], mine), token=admin.token)
            assert reply.errors == [], (argument, reply.body)
    reply = await server.gql(DELETE, {"id": mine.token}, token=admin.token)
    assert reply.errors == []


async def test_auth_check_project_of_another_account_answers_as_an_unknown_project(server):
    one = await server.bootstrap("One")
    two = await server.bootstrap("Two")
    foreign = await create_project(server, one.token)
    auth = {"Authorization": f"Bearer {two.token}"}
    answers = []
    for project in (foreign, unknown_id("project")):
        by_query = await server.get("/auth/check", params={"resource": "JOBS", "projectId": project}, headers=auth)
        by_headers = await server.get(
            "/auth/check/some/path",
            headers={**auth, "X-Tokengate-Resource": "JOBS", "X-Tokengate-Project-Id": project},
        )
        for status, body, _ in (by_query, by_headers):
            assert status == 403
            answers.append(body)
    assert len(set(answers)) == 1, answers
    assert "project not found" in answers[0]
