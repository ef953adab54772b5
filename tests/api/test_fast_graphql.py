"""The fast GraphQL door (http/fast_graphql.py) answers ``POST /graphql`` exactly as the generic stack does.

As for ``/auth/check`` (test_fast_forward_auth.py): two servers on one database, one with the fast doors and one
without, get the same table of requests in the same order; every answer must match (status, body with the
request id masked, every header but ``Date`` and ``X-Request-Id``), both count and log every request alike, and
the fast server is proven to have answered each POST itself. What it does not take (GET, a query string,
``Expect``, an application with CORS) reaches the router, and answers alike too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import LOOPBACK, from_address
from tests.api.test_fast_forward_auth import (
    Door,
    access_lines,
    ask_both,
    bearer,
    counted_requests,
    doors,
    twice,
)
from tests.conftest import make_config, store_service_token
from tokengate.core.limits import Limits, Rate
from tokengate.core.media_types import GRAPHQL_RESPONSE
from tokengate.core.policy import Grant
from tokengate.graphql.engine import operations
from tokengate.http import fast_graphql
from tokengate.store import DatabaseUnavailable

CHECK = "query($p: ID) { viewer { kind account { name plan } } check(resource: JOBS, access: WRITE, projectId: $p) { allowed reason } }"
JSON_TYPE = {"Content-Type": "application/json"}


class Counted:
    """Counts the POSTs the fast GraphQL door answered itself."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.calls = 0
        call = fast_graphql.FastGraphQL.__call__

        async def counting(door: Any, request: Any, runtime: Any) -> Any:
            self.calls += 1
            return await call(door, request, runtime)

        monkeypatch.setattr(fast_graphql.FastGraphQL, "__call__", counting)


def query(text: str, variables: dict[str, Any] | None = None, **extra: Any) -> bytes:
    payload: dict[str, Any] = {"query": text, **extra}
    if variables is not None:
        payload["variables"] = variables
    return json.dumps(payload).encode()


async def graphql_lines(door: Door) -> list[tuple[Any, ...]]:
    return await access_lines(door, "/graphql")


async def graphql_counts(door: Door) -> dict[str, int]:
    return await counted_requests(door, "/graphql")


async def test_the_fast_door_answers_every_post_as_the_generic_stack(database, tmp_path: Path, monkeypatch):
    counted = Counted(monkeypatch)
    async with doors(database, make_config(tmp_path, trusted_proxies=LOOPBACK)) as (fast, generic):
        server = fast.server
        admin = await server.bootstrap()
        project = (await server.gql('mutation { createProject(name: "A") { id } }', token=admin.token)).data
        project_id = project["createProject"]["id"]
        runner = await store_service_token(server, admin.account_id, [Grant("JOB_ADMIN", False, (project_id,))])
        viewer = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
        counted.calls = 0
        setup = (await graphql_counts(fast), len(await graphql_lines(fast)))  # the createProject above
        graphql_response = {"Accept": GRAPHQL_RESPONSE, **JSON_TYPE}
        huge = b'{"query": "{ viewer { kind } }", "x": "' + b"x" * (1024 * 1024) + b'"}'
        table: list[tuple[bytes, dict[str, str] | Any, int]] = [
            (query(CHECK, {"p": project_id}), bearer(runner, **JSON_TYPE), 200),  # executed
            (query(CHECK, {"p": project_id}), bearer(runner, **JSON_TYPE), 200),  # from memory
            (query(CHECK, {"p": project_id}), bearer(runner, **graphql_response), 200),
            (query(CHECK, {"p": "prj_nowhere"}), bearer(viewer, **JSON_TYPE), 200),
            (query("{ account { serviceTokens { name } } }"), bearer(viewer, **JSON_TYPE), 200),  # @requires: null
            (query("{ account { name members { email } } }"), bearer(admin.token, **JSON_TYPE), 200),
            (query('mutation { createProject(name: "B") { name } }'), bearer(admin.token, **JSON_TYPE), 200),
            (query("{ viewer { kind }"), bearer(runner, **JSON_TYPE), 200),  # a syntax error, legacy JSON
            (query("{ viewer { kind }"), bearer(runner, **graphql_response), 400),
            (query("{ nope }"), bearer(runner, **graphql_response), 400),
            (query("query A { viewer { kind } } query B { account { name } }"), bearer(runner, **JSON_TYPE), 200),
            (query("subscription { viewer { kind } }"), bearer(runner, **JSON_TYPE), 400),
            (b"{not json", bearer(runner, **JSON_TYPE), 400),
            (b"[]", bearer(runner, **JSON_TYPE), 400),
            (b'{"variables": {}}', bearer(runner, **JSON_TYPE), 400),
            (query("{ viewer { kind } }"), bearer(runner, **{"Content-Type": "text/plain"}), 415),
            (query("{ viewer { kind } }"), bearer(runner, **JSON_TYPE, Accept="text/html"), 406),
            (
                query("{ viewer { kind } }", extensions={"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}),
                bearer(runner, **JSON_TYPE),
                400,
            ),
            (query("{ __typename }"), JSON_TYPE, 200),  # anyone may run it
            (query("{ viewer { kind } }"), JSON_TYPE, 401),
            (query("{ viewer { kind } }"), bearer("tgs_short", **JSON_TYPE), 401),
            (query("{ viewer { kind } }"), twice("Authorization", f"Bearer {runner}", f"Bearer {viewer}"), 400),
            (query("{ viewer { kind } }"), {**JSON_TYPE, "Cookie": "__Host-tokengate_session=nothing"}, 403),
            (query("{ viewer { kind } }"), bearer(runner, **JSON_TYPE, **from_address("not-an-address")), 400),
            (b'{"query": "{ __typename }", "x": "' + b"x" * 70_000 + b'"}', JSON_TYPE, 401),  # raised by the body read
            (huge, bearer(runner, **JSON_TYPE), 413),
        ]
        for body, headers, status in table:
            answer = await ask_both(fast, generic, "POST", "/graphql", headers, body)
            assert answer.status == status, (body[:120], answer)
            assert ("cache-control", "no-store") in answer.headers
        assert counted.calls == len(table)  # the fast server answered each itself
        assert fast.server.runtime.answers.hits == generic.server.runtime.answers.hits == 1  # the second ask
        counts = await graphql_counts(fast)
        assert {code: counts[code] - setup[0].get(code, 0) for code in counts} == await graphql_counts(generic)
        assert (await graphql_lines(fast))[setup[1] :] == await graphql_lines(generic)
        # What it does not take reaches the application's router, and answers alike.
        for target, body, headers, method, status in [
            ("/graphql", None, bearer(runner, Accept="text/html"), "GET", 200),  # GraphiQL
            ("/graphql?query=%7Bviewer%7Bkind%7D%7D", None, bearer(runner), "GET", 200),
            ("/graphql?x=1", query("{ viewer { kind } }"), bearer(runner, **JSON_TYPE), "POST", 200),
            ("/graphql", query("{ viewer { kind } }"), bearer(runner, **JSON_TYPE, Expect="100-continue"), "POST", 200),
            ("/graphql", None, bearer(runner), "PUT", 405),
        ]:
            before = counted.calls
            answer = await ask_both(fast, generic, method, target, headers, body)
            assert answer.status == status, (target, method, answer)
            assert counted.calls == before, (target, method)


async def test_rate_limits_and_failures_answer_alike(database, tmp_path: Path, monkeypatch):
    limits = Limits(cost=Rate(0.001, 40), principal=Rate(1000, 1000))
    async with doors(database, make_config(tmp_path, limits=limits)) as (fast, generic):
        admin = await fast.server.bootstrap()
        token = await store_service_token(fast.server, admin.account_id, [Grant("JOB_VIEWER")])
        many = ", ".join(["{resource: JOBS, access: READ}"] * 10)
        body = query("{ checks(requests: [" + many + "]) { allowed } }")
        statuses = [
            (await ask_both(fast, generic, "POST", "/graphql", bearer(token, **JSON_TYPE), body)).status
            for _ in range(6)
        ]
        assert statuses[0] == 200 and statuses[-1] == 429, statuses  # refused before the body is read, alike
        run = operations.run
        failures = {"down": DatabaseUnavailable("gone"), "bug": RuntimeError("a bug")}
        failing: list[str] = []

        async def raising(*args: Any, **kwargs: Any) -> Any:
            if failing:
                raise failures[failing[0]]
            return await run(*args, **kwargs)

        monkeypatch.setattr("tokengate.http.graphql.run", raising)
        other = await store_service_token(fast.server, admin.account_id, [Grant("JOB_VIEWER")])
        for failure, status in (("down", 503), ("bug", 500)):
            failing[:] = [failure]
            answer = await ask_both(
                fast, generic, "POST", "/graphql", bearer(other, **JSON_TYPE), query("{ account { name } }")
            )
            assert answer.status == status and "a bug" not in answer.body and "Traceback" not in answer.body, answer
        assert await graphql_counts(fast) == await graphql_counts(generic)
        assert await graphql_lines(fast) == await graphql_lines(generic)


async def test_with_cors_configured_the_generic_stack_answers(database, tmp_path: Path, monkeypatch):
    counted = Counted(monkeypatch)
    config = make_config(tmp_path, cors_origins=("https://app.example",))
    async with doors(database, config) as (fast, generic):
        admin = await fast.server.bootstrap()
        token = await store_service_token(fast.server, admin.account_id, [Grant("JOB_VIEWER")])
        headers = bearer(token, **JSON_TYPE, Origin="https://app.example")
        answer = await ask_both(fast, generic, "POST", "/graphql", headers, query("{ viewer { kind } }"))
        assert ("access-control-allow-origin", "https://app.example") in answer.headers
        assert counted.calls == 0
