"""Per-request cost of GraphQL execution alone, in-process, for the queries of bench scenarios (c) and (e).

Not a test and not part of `make bench`: run it with `.venv/bin/python bench/execution.py`. It starts
tokengate's runtime on a fresh embedded PostgreSQL (or on TOKENGATE_DATABASE_URL), seeds the data of (c) and
(e) through the services (10 projects, a JOB_ADMIN token on one, 49 more tokens with 1-3 grants on 1-3
projects), authenticates the tokens as /graphql does, then times each way of executing the prepared document:

  strawberry   graphql-core's ``execute`` with Strawberry's execution context (what runs without a plan)
  getters      the same on a copy of the schema whose basic fields resolve by a plain attribute getter set
               at schema build (graphql-core's public ``GraphQLField.resolve``): a shape measured, not used
  compiled     the compiled plan of graphql/engine/compiled.py
  run          graphql/engine/operations.py's ``run`` (what /graphql calls: chooses the operation, then the above)

and, for the static schema of the tuned Strawberry anchors (bench/baseline_tuned.py) with the queries of
(b') and (e'): ``tuned`` (that schema's own ``execute``, ParserCache and ValidationCache on: what its HTTP
view runs), ``strawberry`` (graphql-core on it) and ``compiled`` (a plan of it): execution without a database.

For each: microseconds per request, wall clock and this process's CPU (the database is another process, so
CPU is the figure that shows execution's own cost), the median of ``--rounds`` rounds, which interleave
the ways so that a busy moment of a shared machine falls on all of them alike. Every answer is
checked against the first one of graphql-core before timing. ``--only c`` or ``--only e`` limits the run;
``--loop N`` runs the compiled path of one scenario N times without timing (for py-spy).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import baseline_tuned
import strawberry
from aiohttp import web
from common import CAPACITY_RATES
from graphql import ExecutionResult, GraphQLObjectType, execute
from run import LIST_QUERY, LISTED_TOKENS, PROJECTS, SCENARIO_QUERY, listed_token_grants
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from tokengate.app import create_app
from tokengate.config import Config, parse_secret_keys
from tokengate.core.limits import limits_from_env
from tokengate.core.policy import Grant
from tokengate.graphql.engine import compiled, seams
from tokengate.graphql.engine.documents import DocumentCache
from tokengate.graphql.engine.operations import CORE_SCHEMA, run
from tokengate.graphql.schema.context import Context
from tokengate.graphql.schema.directives import Requires
from tokengate.graphql.schema.schema import Query
from tokengate.runtime import RUNTIME, Runtime
from tokengate.services import OPERATOR, accounts, projects, service_tokens

SECRET_KEY = "bench-execution-key-0123456789-abcdefghijklmnop"


async def seed(runtime: Runtime) -> tuple[str, str, str]:
    """The data of (c) and (e); the admin's token, the JOB_ADMIN token and the project of (c)."""
    backend = runtime.backend
    account, _, admin = await accounts.bootstrap(backend, OPERATOR, "Bench", "ENTERPRISE", "admin@example.com")
    project_ids = [
        (await projects.create(backend, OPERATOR, account.id, f"bench-project-{i:02d}")).id for i in range(10)
    ]
    assert len(project_ids) == PROJECTS
    job_admin = await service_tokens.create(
        backend, OPERATOR, account.id, "bench-c", [Grant("JOB_ADMIN", False, (project_ids[0],))], None
    )
    for index in range(LISTED_TOKENS - 1):
        grants = [
            Grant(g["permissionSet"], g["allProjects"], tuple(g["projectIds"]))
            for g in listed_token_grants(index, project_ids)
        ]
        await service_tokens.create(backend, OPERATOR, account.id, f"bench-listed-{index:02d}", grants, None)
    return admin.text, job_admin.secret, project_ids[0]


async def context_for(runtime: Runtime, token: str) -> Context:
    principal = await runtime.authenticator.authenticate(token, client_addr="127.0.0.1")
    return Context(runtime, principal, "127.0.0.1", "bench")


async def settle(result: Any) -> ExecutionResult:
    return await result if inspect.isawaitable(result) else result


def core_way(schema: Any, document: Any, context: Any, executor_class: type) -> Callable[[], Awaitable[Any]]:
    """graphql-core's ``execute`` as operations.run calls it, with the given execution context."""
    return lambda: settle(
        execute(
            schema,
            document.ast,
            context_value=context,
            executor_class=executor_class,
            is_awaitable=optimized_is_awaitable,
        )
    )


def compiled_way(schema: Any, document: Any, context: Any) -> Callable[[], Awaitable[Any]]:
    def way() -> Awaitable[Any]:
        result = compiled.execute_compiled(schema, document, None, None, context)
        assert result is not None, "the document did not compile"
        return settle(result)

    return way


def with_plain_getters() -> Any:
    """tokengate's query schema built again, each Strawberry basic field (no resolver, no extension) resolved by
    a plain ``getattr`` set on its ``GraphQLField.resolve``."""
    copy = strawberry.Schema(query=Query, schema_directives=[Requires])._schema
    for type_ in copy.type_map.values():
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__"):
            for field in type_.fields.values():
                plain = seams.basic_field(field)
                if plain is not None and plain[0] is getattr:
                    field.resolve = attribute_getter(plain[1])
    return copy


def attribute_getter(attribute: str) -> Callable[..., Any]:
    return lambda source, info: getattr(source, attribute)


GETTERS_SCHEMA = with_plain_getters()


def tokengate_ways(document: Any, context: Context) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "strawberry": core_way(CORE_SCHEMA, document, context, StrawberryGraphQLCoreExecutionContext),
        "getters": core_way(GETTERS_SCHEMA, document, context, StrawberryGraphQLCoreExecutionContext),
        "compiled": compiled_way(CORE_SCHEMA, document, context),
        "run": lambda: run(document, None, None, context, allow_mutations=True),
    }


def anchor_ways(document: Any) -> dict[str, Callable[[], Awaitable[Any]]]:
    """The static schema of the tuned Strawberry anchors (b') and (e'): its own pipeline (``Schema.execute``
    with ParserCache and ValidationCache, what its HTTP view calls), graphql-core alone, and a plan."""
    core_schema = baseline_tuned.schema._schema
    return {
        "tuned": lambda: baseline_tuned.schema.execute(document.text),
        "strawberry": core_way(core_schema, document, None, StrawberryGraphQLCoreExecutionContext),
        "compiled": compiled_way(core_schema, document, None),
    }


async def timed(way: Callable[[], Awaitable[Any]], calls: int) -> tuple[float, float]:
    """(wall µs, CPU µs) per request over ``calls`` requests."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await way()
    return (time.perf_counter() - wall) / calls * 1e6, (time.process_time() - cpu) / calls * 1e6


async def scenario(
    name: str, document: Any, candidates: dict[str, Callable[[], Awaitable[Any]]], calls: int, rounds: int, loop: int
) -> None:
    text = document.text
    expected = await candidates["strawberry"]()
    assert not expected.errors, expected.errors
    for way_name, way in candidates.items():
        answer = await way()
        assert (answer.data, answer.errors) == (expected.data, expected.errors), way_name
    if loop:
        for _ in range(loop):
            await candidates["compiled"]()
        return
    print(f"({name}) {text[:90]}{'...' if len(text) > 90 else ''}")
    for way in candidates.values():
        await timed(way, max(calls // 10, 1))  # warm-up
    # Rounds interleave the ways, so that a busy moment on a shared machine falls on all of them alike.
    samples: dict[str, list[tuple[float, float]]] = {way_name: [] for way_name in candidates}
    for _ in range(rounds):
        for way_name, way in candidates.items():
            samples[way_name].append(await timed(way, calls))
    for way_name, measured in samples.items():
        wall = statistics.median(sample[0] for sample in measured)
        cpu = statistics.median(sample[1] for sample in measured)
        print(f"  {way_name:<11} {wall:8.1f} µs wall  {cpu:8.1f} µs CPU")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="requests per round and way for (c); (e) runs a tenth")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", default="c,e,b',e'")
    parser.add_argument("--loop", type=int, default=0, help="run the compiled path N times, untimed (profiling)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tokengate-exec-bench-") as data_dir:
        config = Config(
            data_dir=Path(data_dir),
            database_url=os.environ.get("TOKENGATE_DATABASE_URL"),
            secret_keys=parse_secret_keys(os.environ.get("TOKENGATE_SECRET_KEY", SECRET_KEY)),
            limits=limits_from_env(CAPACITY_RATES),  # on, as in make bench, but out of reach of a timing loop
        )
        runner = web.AppRunner(create_app(config))
        await runner.setup()
        try:
            runtime = runner.app[RUNTIME]
            admin, job_admin, project_id = await seed(runtime)
            wanted = set(args.only.split(","))
            documents = DocumentCache()
            if "c" in wanted:
                document = documents.get(SCENARIO_QUERY % project_id)
                ways = tokengate_ways(document, await context_for(runtime, job_admin))
                await scenario("c", document, ways, args.calls, args.rounds, args.loop)
            if "e" in wanted:
                document = documents.get(LIST_QUERY)
                ways = tokengate_ways(document, await context_for(runtime, admin))
                await scenario("e", document, ways, max(args.calls // 10, 1), args.rounds, args.loop)
            if "b'" in wanted:
                document = documents.get(SCENARIO_QUERY % "prj_bench")
                await scenario("b'", document, anchor_ways(document), args.calls, args.rounds, args.loop)
            if "e'" in wanted:
                document = documents.get(LIST_QUERY)
                await scenario("e'", document, anchor_ways(document), max(args.calls // 10, 1), args.rounds, args.loop)
        finally:
            await runner.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
