"""Differential test of the execution fast path: every answer of ``FastExecutionContext`` is the answer of
Strawberry's plain ``StrawberryGraphQLCoreExecutionContext``, data and errors alike.

Generated part: queries from hypothesis-graphql over the whole Query root of tokengate's schema, against
one account seeded with realistic data (projects, v2 and legacy service tokens, deleted and expired ones,
all-project and project-limited grants, users with each license, audit events, IP rules), each run twice
through graphql-core's ``execute`` on the same data and the same context, once per execution context, for
principals from an account admin down to a token without a single grant (so guarded fields are refused).

Explicit part: tiny schemas built here for the two faults the fast path had: a leaf whose coercion raises
(or returns nothing, or whose value is not a value at all) must be reported exactly where graphql-core
reports it, and two schemas with a same-named type must not share plans.

Run size: 150 generated queries (each executed twice), plus the explicit cases.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NewType

import hypothesis_graphql
import pytest
import strawberry
from graphql import GraphQLError, GraphQLSchema, execute, parse, validate
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from tests.api.live_server import LiveServer
from tests.api.test_graphql import create_project
from tests.api.test_requires_property import CUSTOM_SCALARS
from tests.conftest import Server, store_service_token
from tokengate.core.policy import Grant
from tokengate.graphql.engine.execution import FastExecutionContext
from tokengate.graphql.schema.schema import schema as tokengate_schema
from tokengate.services import OPERATOR, service_tokens
from tokengate.services import users as users_service

CORE_SCHEMA: GraphQLSchema = tokengate_schema._schema
QUERY_EXAMPLES = 150
CLIENT_ADDR = "127.0.0.1"
DIFF_SETTINGS = settings(
    deadline=None,
    database=None,  # nothing written to .hypothesis/
    max_examples=QUERY_EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


async def graphql_context(server: Server, token: str, client_addr: str = CLIENT_ADDR) -> Any:
    """The context the server builds for a request presenting ``token`` from ``client_addr``.

    Every dependency of this module on the app's internals (the runtime, ``Context``, the authenticator and
    the IP guard) is in this one function, on purpose: it is the one place to adapt when they move.

    It authenticates the token as ``/graphql`` does (the authenticator, then the account's IP rules), and
    then stops the background writer of ``lastUsedAt`` after writing what it holds: no request authenticates
    after the contexts are built, so ``lastUsedAt`` cannot change between the two executions compared.
    """
    from tokengate.graphql.schema.context import Context

    runtime = server.runtime
    principal = await runtime.authenticator.authenticate(token, client_addr=client_addr)
    assert await runtime.ip_guard.allows(principal.account_id, client_addr), "the seeded IP rules refuse the test"
    await runtime.authenticator.last_used.stop()  # writes the pending uses; idempotent
    return Context(runtime, principal, client_addr, "differential")


# --- running one document through both execution contexts -------------------------------------------------


async def run(schema: GraphQLSchema, query: str, context: Any, executor_class: type, root: Any = None) -> Any:
    """graphql-core's ``execute`` as Strawberry calls it (same ``is_awaitable``), with the given executor."""
    result = execute(
        schema,
        parse(query),
        root_value=root,
        context_value=context,
        executor_class=executor_class,
        is_awaitable=optimized_is_awaitable,
    )
    return await result if inspect.isawaitable(result) else result


def error_key(error: GraphQLError) -> tuple[Any, ...]:
    """What a client sees of an error (message, path, locations, extensions), and the type of its cause,
    which decides whether the HTTP layer masks it as an internal error."""
    formatted = error.formatted
    return (
        formatted["message"],
        formatted.get("path"),
        formatted.get("locations"),
        formatted.get("extensions"),
        type(error.original_error).__name__,
    )


def answer(result: Any) -> tuple[Any, list[tuple[Any, ...]]]:
    # Errors are sorted by path: sibling resolvers are awaited concurrently, and the fast path awaits fewer
    # coroutine layers, so two concurrent failures may be recorded in the other order. Nothing else differs.
    errors = sorted((error_key(e) for e in result.errors or ()), key=lambda k: json.dumps(k, default=str))
    return result.data, errors


async def both(schema: GraphQLSchema, query: str, context: Any = None, root: Any = None) -> tuple[Any, Any]:
    fast = answer(await run(schema, query, context, FastExecutionContext, root))
    plain = answer(await run(schema, query, context, StrawberryGraphQLCoreExecutionContext, root))
    return fast, plain


# --- the generated part: tokengate's schema, seeded data ---------------------------------------------------


async def seed(server: Server) -> dict[str, str]:
    """One account with everything the Query root can show; the tokens of the principals to query as."""
    admin = await server.bootstrap("Differential", "ENTERPRISE_PLUS")
    account = admin.account_id
    projects = [await create_project(server, admin.token, name) for name in ("Analytics", "Billing", "Ops")]
    ip_rules = """mutation { setIpRestrictions(enabled: true, rules: [
        {name: "loopback", type: ALLOW, cidrs: ["127.0.0.0/8", "::1"]},
        {name: "office", type: ALLOW, cidrs: ["10.0.0.0/8", "192.0.2.0/24"]},
        {name: "partner", type: DENY, cidrs: ["198.51.100.0/24"]}]) { enabled } }"""
    assert (await server.gql(ip_rules, token=admin.token)).errors == []

    backend = server.runtime.backend
    now = datetime.now(UTC)
    principals = {"admin": admin.token}
    users = {
        "read_only": ("READ_ONLY", [Grant("ACCOUNT_ADMIN")]),
        "it": ("IT", [Grant("SECURITY_ADMIN"), Grant("JOB_VIEWER", False, (projects[2],))]),
        "developer": ("DEVELOPER", [Grant("JOB_ADMIN", False, (projects[0], projects[1])), Grant("MEMBER")]),
    }
    for name, (license_, grants) in users.items():
        user = await users_service.create(backend, OPERATOR, account, f"{name}@example.com", license_, grants)
        principals[name] = await server.issue_user_token(user.id, f"{name} laptop")
    # Audited service tokens, one of them deleted, one rotated, one expiring later.
    audited = []
    for name, grants, expires_at in (
        ("airflow", [Grant("JOB_RUNNER", False, (projects[0],))], None),
        ("dbt cloud", [Grant("DEVELOPER"), Grant("ANALYST", False, (projects[1], projects[2]))], None),
        ("to delete", [Grant("ACCOUNT_VIEWER")], None),
        ("quarterly", [Grant("BILLING_ADMIN")], now + timedelta(days=30)),
    ):
        created = await service_tokens.create(backend, OPERATOR, account, name, grants, expires_at)
        server.issued.append(created.secret)
        audited.append(created.record.id)
    await service_tokens.delete(backend, OPERATOR, account, audited[2])
    rotated = await service_tokens.rotate(backend, OPERATOR, account, audited[0], 3600)
    server.issued.append(rotated.secret)
    principals["legacy"] = await server.import_legacy_token(
        account,
        "old jenkins",
        datetime(2022, 3, 1, 12, tzinfo=UTC),
        [Grant("JOB_ADMIN", False, (projects[0],)), Grant("ACCOUNT_VIEWER")],
    )
    # Tokens stored without audit events: the principals with many and with few permissions, an expired one.
    principals["deployer"] = await store_service_token(server, account, [Grant("ACCOUNT_ADMIN")], name="deployer")
    principals["job_runner"] = await store_service_token(
        server, account, [Grant("JOB_ADMIN", False, (projects[1],))], name="job runner"
    )
    principals["no_grants"] = await store_service_token(server, account, [], name="nothing")
    await store_service_token(
        server, account, [Grant("JOB_VIEWER")], expires_at=now - timedelta(days=1), name="expired yesterday"
    )
    return principals


def count(seen: dict[str, int], data: Any, errors: list[tuple[Any, ...]]) -> None:
    """What the run exercised, so that the test can show it compared more than empty answers."""
    seen["queries"] += 1
    seen["with_errors"] += bool(errors)
    seen["forbidden"] += sum(1 for e in errors if (e[3] or {}).get("code") == "FORBIDDEN")
    text = json.dumps(data, default=str)
    seen["service_tokens_shown"] += '"displayPrefix"' in text or '"rotationRecommended"' in text
    seen["grant_projects_shown"] += '"allProjects"' in text


CONNECTION_PAGES = """{ account {
  serviceTokenConnection(first: 3) { totalCount edges { cursor node { id name grants { allProjects projects { name } } } }
                                     pageInfo { hasNextPage endCursor } }
  memberConnection { edges { node { id email grants { permissionSet allProjects } } } } } }"""


def test_fast_path_answers_generated_queries_exactly_as_graphql_core(live_server: LiveServer):
    principals = live_server.run(seed(live_server.server))
    contexts = {name: live_server.run(graphql_context(live_server.server, token)) for name, token in principals.items()}
    queries = hypothesis_graphql.queries(CORE_SCHEMA, custom_scalars=CUSTOM_SCALARS, allow_x00=False)
    seen = dict.fromkeys(("queries", "with_errors", "forbidden", "service_tokens_shown", "grant_projects_shown"), 0)

    @DIFF_SETTINGS
    @given(query=queries, who=st.sampled_from(sorted(contexts)))
    # Besides the generated queries (which spread over a growing schema): grants with their projects, and the
    # connections' pages, compared every run.
    @example(query="{ viewer { grants { permissionSet allProjects projects { id name } } } }", who="developer")
    @example(query=CONNECTION_PAGES, who="admin")
    def same_answer(query: str, who: str) -> None:
        assert validate(CORE_SCHEMA, parse(query)) == [], query
        fast, plain = live_server.run(both(CORE_SCHEMA, query, contexts[who]))
        assert fast == plain, (who, query)
        count(seen, *plain)

    same_answer()
    print(f"differential run: {seen}")
    assert seen["queries"] >= QUERY_EXAMPLES, seen
    assert seen["forbidden"] > 0 and seen["service_tokens_shown"] > 0 and seen["grant_projects_shown"] > 0, seen


# --- the explicit part: values the fast path must not complete itself ---------------------------------------


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    count: int
    maybe_count: int | None
    color: Color
    maybe_color: Color | None
    label: str
    maybe_label: str | None


@strawberry.type
class Box:
    item: Item
    maybe_item: Item | None
    items: list[Item]
    count: int
    maybe_count: int | None
    color: Color
    maybe_color: Color | None


class Stranger:
    """An object of no GraphQL type: reading a field of it raises AttributeError."""


async def later(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


def item(**bad: Any) -> Item:
    values: dict[str, Any] = dict(
        count=1, maybe_count=2, color=Color.RED, maybe_color=Color.BLUE, label="ok", maybe_label="fine"
    )
    values.update(bad)
    return Item(**values)


# Values that graphql-core reports as a field error (or, for `later`, awaits first); none must be completed
# by the fast path itself. Int out of 32 bits and a string for an Int or an enum make coercion RAISE.
BAD_LEAVES = {
    "string for an Int": "many",
    "Int out of range": 2**40,
    "float for an Int": 1.5,
    "unknown enum value": "purple",
    "another enum's member": HealthCheck.too_slow,
    "an exception instance": ValueError("boom"),
}
LEAF_QUERIES = {
    "box leaves": "{ box { count maybeCount color maybeColor } }",
    "item leaves": "{ box { item { count maybeCount color maybeColor label maybeLabel } } }",
    "nullable item": "{ box { maybeItem { count maybeCount color maybeColor } } }",
    "items in a plain list": "{ box { items { count maybeCount color maybeColor label maybeLabel } } }",
    "aliases and fragments": "{ box { a: count ...F items { ... on Item { b: maybeColor c: maybeCount } } } }"
    " fragment F on Box { maybeCount color }",
}


def box_schema(make_box: Callable[[], Any]) -> GraphQLSchema:
    """A schema whose root field ``box`` answers a new ``make_box()`` on each execution (a generator or a
    coroutine in it can be consumed only once)."""

    @strawberry.type
    class Query:
        @strawberry.field
        def box(self) -> Box | None:
            return make_box()

    return strawberry.Schema(query=Query)._schema


def boxes_with(bad: Any) -> dict[str, Callable[[], Box]]:
    """Boxes with the bad value in each leaf position, in an item, and in the middle of a plain list."""
    good = item()
    fine = dict(item=good, maybe_item=good, items=[good, good], count=3, maybe_count=4, color=Color.RED)
    boxes: dict[str, Callable[[], Box]] = {}
    for field in ("count", "maybe_count", "color", "maybe_color"):
        boxes[f"box.{field}"] = lambda field=field: Box(**{**fine, "maybe_color": None, field: bad})
    for field in ("count", "maybe_count", "color", "maybe_color", "label", "maybe_label"):
        bad_item = item(**{field: bad})
        boxes[f"item.{field}"] = lambda bad_item=bad_item: Box(
            **{**fine, "maybe_color": None, "item": bad_item, "maybe_item": bad_item}
        )
        boxes[f"items[1].{field}"] = lambda bad_item=bad_item: Box(
            **{**fine, "maybe_color": None, "items": [good, bad_item, good]}
        )
    return boxes


@pytest.mark.parametrize("bad", list(BAD_LEAVES.values()), ids=list(BAD_LEAVES))
async def test_a_leaf_that_does_not_complete_is_reported_where_graphql_core_reports_it(bad: Any):
    compared = 0
    for where, make_box in boxes_with(bad).items():
        core = box_schema(make_box)
        for name, query in LEAF_QUERIES.items():
            fast, plain = await both(core, query)
            assert fast == plain, (where, name)
            compared += bool(plain[1])
    assert compared > 0  # some of those really were field errors


ODD_LISTS = {
    "a null item": lambda good: [good, None],
    "an exception item": lambda good: [good, ValueError("no item")],
    "an awaitable item": lambda good: [good, later(good)],
    "an item of no GraphQL type": lambda good: [good, Stranger()],
    "a tuple": lambda good: (good, good),
    "a generator": lambda good: (x for x in [good]),
    "not a list": lambda good: good,
}


@pytest.mark.parametrize("make", list(ODD_LISTS.values()), ids=list(ODD_LISTS))
async def test_a_plain_list_graphql_core_would_not_complete_as_is_goes_its_way(make: Any):
    def make_box() -> Box:
        good = item()
        return Box(
            item=good, maybe_item=None, items=make(good), count=1, maybe_count=None, color=Color.RED, maybe_color=None
        )

    fast, plain = await both(box_schema(make_box), "{ box { count items { count label maybeColor } } }")
    assert fast == plain


async def test_a_source_without_the_attribute_is_reported_at_the_field():
    fast, plain = await both(box_schema(Stranger), "{ box { maybeCount count } }")
    assert fast == plain
    assert [error[1] for error in plain[1]] == [["box", "count"], ["box", "maybeCount"]], plain


Void = NewType("Void", str)  # a scalar whose serializer returns None (see VOID_CONFIG)
VOID_CONFIG = StrawberryConfig(
    scalar_map={Void: strawberry.scalar(name="Void", serialize=lambda value: None, parse_value=str)}
)


@strawberry.type
class VoidThing:
    value: Void | None
    values: list[Void]


@strawberry.type(name="Query")
class VoidQuery:
    @strawberry.field
    def things(self) -> list[VoidThing]:
        return [VoidThing(value="a", values=["b"])]


async def test_a_scalar_whose_serializer_returns_nothing_is_an_error_at_the_field():
    fast, plain = await both(
        strawberry.Schema(query=VoidQuery, config=VOID_CONFIG)._schema, "{ things { value values } }"
    )
    assert fast == plain and plain[1], plain


# --- plans belong to their schema ------------------------------------------------------------------------


@strawberry.type(name="Thing")
class PlainThing:
    label: str


@strawberry.type(name="Thing")
class ResolvedThing:
    """Same type name, same field name: here ``label`` has a resolver, and a Python attribute of that name
    (the method) that is not the field's value."""

    stored: str

    @strawberry.field
    def label(self) -> str:
        return f"resolved from {self.stored}"


@strawberry.type(name="Query")
class PlainQuery:
    @strawberry.field
    def thing(self) -> PlainThing:
        return PlainThing(label="plain")

    @strawberry.field
    def things(self) -> list[PlainThing]:
        return [PlainThing(label="one"), PlainThing(label="two")]


@strawberry.type(name="Query")
class ResolvedQuery:
    @strawberry.field
    def thing(self) -> ResolvedThing:
        return ResolvedThing(stored="plain")

    @strawberry.field
    def things(self) -> list[ResolvedThing]:
        return [ResolvedThing(stored="one"), ResolvedThing(stored="two")]


def thing_schemas() -> tuple[GraphQLSchema, GraphQLSchema]:
    """Two new schemas (so that no plan of an earlier test exists), each with a type ``Thing``."""
    return strawberry.Schema(query=PlainQuery)._schema, strawberry.Schema(query=ResolvedQuery)._schema


@pytest.mark.parametrize("first", [0, 1], ids=["plain schema first", "resolved schema first"])
async def test_two_schemas_with_a_same_named_type_do_not_share_plans(first: int):
    schemas = thing_schemas()
    query = "{ thing { label } things { label } }"
    for core in (schemas[first], schemas[1 - first], schemas[first]):
        fast, plain = await both(core, query)
        assert fast == plain
    assert (await both(schemas[1], query))[0][0] == {
        "thing": {"label": "resolved from plain"},
        "things": [{"label": "resolved from one"}, {"label": "resolved from two"}],
    }
