"""What the differential test of the compiled plans (test_compiled_differential.py) runs on: the seeded
account for the generated queries and the context of each principal, and tiny Strawberry schemas whose values
are not values (leaves that do not complete, odd lists, a source without the attribute)."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLSchema
from hypothesis import HealthCheck

from tests.api.test_graphql import create_project
from tests.conftest import Server, store_service_token
from tokengate.core.policy import Grant
from tokengate.services import OPERATOR, service_tokens
from tokengate.services import users as users_service

CLIENT_ADDR = "127.0.0.1"


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


# --- the explicit part: values a plan must leave to graphql-core ---------------------------------------


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
# by a plan itself. Int out of 32 bits and a string for an Int or an enum make coercion RAISE.
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


ODD_LISTS = {
    "a null item": lambda good: [good, None],
    "an exception item": lambda good: [good, ValueError("no item")],
    "an awaitable item": lambda good: [good, later(good)],
    "an item of no GraphQL type": lambda good: [good, Stranger()],
    "a tuple": lambda good: (good, good),
    "a generator": lambda good: (x for x in [good]),
    "not a list": lambda good: good,
}
