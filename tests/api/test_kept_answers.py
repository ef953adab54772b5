"""Answers kept per principal (graphql/engine/kept_answers.py) are the answers executing would give.

Over HTTP with real tokens: every field of ``ANSWERED_FROM_PRINCIPAL`` is asked (the table below must cover the
list), first executed, then answered from memory, and the two answers must be the same bytes but for the points
left in ``extensions.cost``. A change to what the principal holds (grants, projects, deletion, deactivation),
made through another instance, is answered at once; fields outside the list are never kept; a kept answer pays
its cost and notes its grants as an executed one does.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from graphql import TypeInfo, TypeInfoVisitor, Visitor, parse, visit

from tests.api import service_token_calls as calls
from tests.api.test_cache_and_invalidation import eventually
from tests.conftest import TEST_LIMITS, make_config, start_server
from tokengate.core.limits import Limits, Rate
from tokengate.core.media_types import GRAPHQL_RESPONSE, JSON
from tokengate.graphql.engine import kept_answers
from tokengate.graphql.engine.operations import CORE_SCHEMA
from tokengate.graphql.schema.schema import ANSWERED_FROM_PRINCIPAL

PROJECT = "mutation($name: String!) { createProject(name: $name) { id } }"
CREATE_USER = "mutation($email: String!, $grants: [GrantInput!]!) { createUser(email: $email, license: DEVELOPER, grants: $grants) { id } }"
DEACTIVATE = "mutation($id: ID!) { deactivateUser(id: $id) { state } }"
ISSUE = 'mutation($id: ID!) { createUserToken(userId: $id, name: "t") { secret } }'
FRAGMENT = "fragment who on Viewer { kind id account { ...acct } } fragment acct on Account { id name plan }"
# (document, variables): together they ask every field of ANSWERED_FROM_PRINCIPAL (checked below).
ASKED: list[tuple[str, dict[str, Any] | None]] = [
    (
        '{ viewer { kind account { name plan } } check(resource: JOBS, access: WRITE, projectId: "%(p)s") { allowed reason } }',
        None,
    ),
    (
        "query($p: ID) { check(resource: JOBS, access: READ, projectId: $p) { allowed reason __typename } }",
        {"p": "%(p)s"},
    ),
    (
        "query($p: ID) { check(resource: JOBS, access: READ, projectId: $p) { allowed reason __typename } }",
        {"p": "prj_nowhere"},
    ),
    (
        "{ checks(requests: [{resource: JOBS, access: WRITE}, {resource: MEMBERS, access: READ}]) { allowed reason } }",
        None,
    ),
    ("{ viewer { id kind } account { id name plan availablePermissionSets } }", None),
    ("{ a: viewer { ...who } b: account { ...acct } __typename } " + FRAGMENT, None),
    ("{ permissionSets { key name level availableOnPlan } }", None),
    ("{ givablePermissionSets { key allowed reason } }", None),
    ("query($p: [ID!]) { givablePermissionSets(projectIds: $p) { key allowed reason } }", {"p": ["%(p)s"]}),
    ("query One { viewer { kind } } query Two { account { name } }", None),
]
CHECK_P = "query($p: ID) { check(resource: JOBS, access: WRITE, projectId: $p) { allowed reason } }"
REMAINING = re.compile(rb'"remaining":\d+')


def filled(value: Any, project_id: str) -> Any:
    if isinstance(value, str):
        return value % {"p": project_id} if "%(p)s" in value else value
    if isinstance(value, list):
        return [filled(item, project_id) for item in value]
    if isinstance(value, dict):
        return {key: filled(item, project_id) for key, item in value.items()}
    return value


async def post(server, body: bytes, token: str, accept: str = JSON) -> tuple[int, bytes, str]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": accept}
    async with server.session.post(server.url + "/graphql", data=body, headers=headers) as response:
        return response.status, await response.read(), response.headers.get("Content-Type", "")


def asked_fields(document: str) -> set[str]:
    """The ``Type.field`` coordinates a document selects, by graphql-core's own TypeInfo."""
    type_info = TypeInfo(CORE_SCHEMA)
    found: set[str] = set()

    class Fields(Visitor):
        def enter_field(self, node, *_):
            found.add(f"{type_info.get_parent_type().name}.{node.name.value}")

    visit(parse(document), TypeInfoVisitor(type_info, Fields()))
    return found


async def seeded(server):
    admin = await server.bootstrap()
    project = (await server.gql(PROJECT, {"name": "p"}, token=admin.token)).data["createProject"]["id"]
    service = await calls.created(server, admin.token, grants=[calls.grant("JOB_ADMIN", project)])
    return admin, project, service


@pytest.fixture(params=["metered", "unmetered"])
async def metered_or_not(request, database, tmp_path):
    """A server with the default limits (``extensions.cost`` in every answer), and one of the suite's (none)."""
    limits = Limits() if request.param == "metered" else TEST_LIMITS
    async for server in start_server(database, make_config(tmp_path, limits=limits)):
        yield server


async def test_every_field_answered_from_the_principal_is_kept_as_executed(metered_or_not):
    server = metered_or_not
    admin, project, service = await seeded(server)
    asked = set().union(*(asked_fields(document) for document, _ in ASKED))
    assert asked >= ANSWERED_FROM_PRINCIPAL, ANSWERED_FROM_PRINCIPAL - asked  # the table asks every listed field
    answers = server.runtime.answers
    for token in (service.secret, admin.token):
        for document, variables in ASKED:
            for operation in re.findall(r"query (\w+)", document) or [None]:
                payload: dict[str, Any] = {"query": filled(document, project)}
                if variables is not None:
                    payload["variables"] = filled(variables, project)
                if operation is not None:
                    payload["operationName"] = operation
                body = json.dumps(payload).encode()
                for accept in (JSON, GRAPHQL_RESPONSE):
                    hits = answers.hits
                    executed = await post(server, body, token, accept)
                    assert answers.hits == hits, "the first answer must be executed"
                    assert executed[0] == 200 and b'"errors"' not in executed[1], executed
                    kept = await post(server, body, token, accept)
                    assert answers.hits == hits + 1, ("the second answer must come from memory", document)
                    assert kept[0] == executed[0] and kept[2] == executed[2]
                    # The same bytes but for the points left (each request paid its own).
                    assert REMAINING.sub(b"", kept[1]) == REMAINING.sub(b"", executed[1]), (kept, executed)
                    assert (b'"remaining"' in kept[1]) is (server.config.limits.cost.enabled)


async def test_fields_outside_the_list_are_never_kept(server):
    admin, _project, _service = await seeded(server)
    listing = json.dumps({"query": "{ viewer { kind } account { serviceTokens { name } } }"}).encode()
    hits = server.runtime.answers.hits
    first = json.loads((await post(server, listing, admin.token))[1])
    await calls.created(server, admin.token, name="later")
    second = json.loads((await post(server, listing, admin.token))[1])
    assert len(second["data"]["account"]["serviceTokens"]) == len(first["data"]["account"]["serviceTokens"]) + 1
    assert server.runtime.answers.hits == hits
    # A GET is executed every time too (its answer is not kept under a body).
    for _ in range(2):
        status, _, _ = await server.get(
            "/graphql?query={viewer{kind}}", headers={"Authorization": f"Bearer {admin.token}"}
        )
        assert status == 200
    assert server.runtime.answers.hits == hits


@pytest.fixture
async def second(database, tmp_path):
    async for server in start_server(database, make_config(tmp_path / "b")):
        yield server


async def test_a_change_to_what_the_principal_holds_is_answered_at_once(server, second):
    admin, project, service = await seeded(server)
    body = json.dumps({"query": CHECK_P, "variables": {"p": project}}).encode()
    answers = second.runtime.answers
    assert json.loads((await post(second, body, service.secret))[1])["data"]["check"]["allowed"] is True
    hits = answers.hits
    assert json.loads((await post(second, body, service.secret))[1])["data"]["check"]["allowed"] is True
    assert answers.hits == hits + 1  # the attack's premise: B answers this from memory
    # Grants taken away through A.
    downgrade = {"id": service.id, "grants": [calls.grant("JOB_VIEWER", project)]}
    assert (await server.gql(calls.UPDATE, downgrade, token=admin.token)).errors == []

    async def refused() -> bool:
        return json.loads((await post(second, body, service.secret))[1])["data"]["check"]["allowed"] is False

    await eventually(refused)
    # A project made through A is known to B's kept answers as to executed ones.
    everywhere = {"id": service.id, "grants": [calls.grant("JOB_ADMIN")]}
    assert (await server.gql(calls.UPDATE, everywhere, token=admin.token)).errors == []
    unknown = json.dumps({"query": CHECK_P, "variables": {"p": "prj_later"}}).encode()
    assert (await eventually_allowed(second, body, service.secret)) is True
    new = (await server.gql(PROJECT, {"name": "later"}, token=admin.token)).data["createProject"]["id"]
    later = json.dumps({"query": CHECK_P, "variables": {"p": new}}).encode()
    assert (
        json.loads((await post(second, unknown, service.secret))[1])["data"]["check"]["reason"] == "project not found"
    )

    async def known() -> bool:
        return json.loads((await post(second, later, service.secret))[1])["data"]["check"]["allowed"] is True

    await eventually(known)
    # Deleted through A: refused by B, however often it was answered from memory.
    for _ in range(3):
        assert (await post(second, body, service.secret))[0] == 200
    assert (await server.gql(calls.DELETE, {"id": service.id}, token=admin.token)).errors == []

    async def gone() -> bool:
        return (await post(second, body, service.secret))[0] == 401

    await eventually(gone)


async def eventually_allowed(server, body: bytes, token: str) -> bool:
    async def allowed() -> bool:
        return json.loads((await post(server, body, token))[1])["data"]["check"]["allowed"] is True

    await eventually(allowed)
    return True


async def test_a_deactivated_members_kept_answers_end_with_the_member(server, second):
    admin, _project, _service = await seeded(server)
    user = (
        await server.gql(
            CREATE_USER, {"email": "dev@example.com", "grants": [calls.grant("JOB_ADMIN")]}, token=admin.token
        )
    ).data["createUser"]["id"]
    personal = await server.issue_user_token(user)
    body = json.dumps({"query": "{ viewer { kind } check(resource: JOBS, access: WRITE) { allowed } }"}).encode()
    for _ in range(2):
        assert (await post(second, body, personal))[0] == 200
    assert second.runtime.answers.hits >= 1
    assert (await server.gql(DEACTIVATE, {"id": user}, token=admin.token)).errors == []

    async def refused() -> bool:
        return (await post(second, body, personal))[0] == 401

    await eventually(refused)


async def test_a_kept_answer_pays_and_notes_as_an_executed_one(database, tmp_path):
    async for server in start_server(database, make_config(tmp_path, limits=Limits())):
        await pays_and_notes(server)


async def pays_and_notes(server) -> None:
    _admin, project, service = await seeded(server)
    body = json.dumps({"query": CHECK_P, "variables": {"p": project}}).encode()
    usage = server.runtime.gate.usage
    usage.grants.clear()
    executed = json.loads((await post(server, body, service.secret))[1])
    noted = dict(usage.grants)
    assert noted, "an allowed check notes its grant"
    usage.grants.clear()
    hits = server.runtime.answers.hits
    kept = json.loads((await post(server, body, service.secret))[1])
    assert server.runtime.answers.hits == hits + 1
    assert usage.grants.keys() == noted.keys()  # noted again from memory
    assert kept["extensions"]["cost"]["actual"] == executed["extensions"]["cost"]["actual"]
    assert kept["extensions"]["cost"]["requested"] == executed["extensions"]["cost"]["requested"]


async def test_a_kept_answer_is_refused_when_its_payer_is_out_of_points(database, tmp_path):
    limits = Limits(cost=Rate(0.001, 200))  # hardly refilled
    async for server in start_server(database, make_config(tmp_path, limits=limits)):
        _admin, _project, service = await seeded(server)
        many = ", ".join(["{resource: JOBS, access: READ}"] * 20)
        body = json.dumps({"query": "{ checks(requests: [" + many + "]) { allowed } }"}).encode()
        statuses = []
        while 429 not in statuses and len(statuses) < 50:
            statuses.append((await post(server, body, service.secret))[0])
        assert statuses[0] == 200 and statuses[-1] == 429, statuses
        assert server.runtime.answers.hits >= 1  # answered from memory until the points ran out


async def test_answers_are_bounded(server):
    _admin, _project, service = await seeded(server)
    answers = server.runtime.answers
    answers.size = 3
    for index in range(7):
        body = json.dumps({"query": "{ viewer { kind } }", "operationName": None, "n": index}).encode()
        assert (await post(server, body, service.secret))[0] == 200
        assert len(answers.answers) <= 3
    small = json.dumps({"query": "{ viewer { kind } }"}).encode()
    large = json.dumps({"query": "{ viewer { kind } }" + " " * kept_answers.MAX_BODY_BYTES}).encode()
    for body in (small, large):
        assert (await post(server, body, service.secret))[0] == 200
    kept_bodies = {key[2] for key in answers.answers}
    assert small in kept_bodies and large not in kept_bodies
