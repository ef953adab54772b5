"""Property: for random grant sets and random operations generated from schema.graphql, a field carrying
``@requires(resource, access)`` that the principal lacks is never non-null in the answer (and one it has is
never refused with a ``requires ...`` error).

The oracle is the reference permission matrix (not tokengate's policy module): a principal has
``resource:access`` when one of its grants' permission sets gives that resource at that access or higher.
Every ``@requires`` in the schema is on an account resource, which needs no project (asserted below: a field
on a project resource needs the oracle to learn which project it is about).

Run sizes: 200 generated queries and 100 generated mutations (each with its own freshly stored token and
grant set), against one throwaway account on a server of its own.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import hypothesis_graphql
from graphql import (
    EnumValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    get_named_type,
    is_object_type,
    parse,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes

from tests.api.live_server import LiveServer
from tests.api.test_graphql import create_project
from tests.conftest import store_service_token
from tests.store.test_migrations import reference
from tokengate.catalog import is_account_resource
from tokengate.policy import Grant

SDL = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text(encoding="utf-8")
SCHEMA = build_schema(SDL)
QUERY_EXAMPLES = 200
MUTATION_EXAMPLES = 100
LEVELS = {"READ": 1, "WRITE": 2}
MATRIX = {(row["permission_set"], row["resource"]): LEVELS[row["access"]] for row in reference("permission-matrix.csv")}
SET_LEVELS = {row["permission_set"]: row["set_level"] for row in reference("permission-matrix.csv")}
CUSTOM_SCALARS = {
    "DateTime": st.datetimes(timezones=st.just(UTC)).map(lambda moment: nodes.String(moment.isoformat())),
    "JSON": st.just(nodes.String("{}")),
}
FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,  # nothing written to .hypothesis/
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def requirement(field: GraphQLField) -> tuple[str, str] | None:
    """The field's ``@requires(resource, access)`` from the SDL, or None."""
    for directive in (field.ast_node.directives or ()) if field.ast_node else ():
        if directive.name.value == "requires":
            arguments = {a.name.value: a.value for a in directive.arguments}
            access = arguments.get("access")
            resource = arguments["resource"]
            assert isinstance(resource, EnumValueNode)
            return resource.value, access.value if isinstance(access, EnumValueNode) else "READ"
    return None


def has(grants: list[Grant], resource: str, access: str) -> bool:
    """The oracle, from the reference matrix (account resources: no project involved)."""
    return any(MATRIX.get((grant.permission_set, resource), 0) >= LEVELS[access] for grant in grants)


def test_every_requires_in_the_schema_is_on_an_account_resource():
    guarded = [
        requirement(field)
        for type_ in SCHEMA.type_map.values()
        if is_object_type(type_) and not type_.name.startswith("__")
        for field in type_.fields.values()
        if requirement(field) is not None
    ]
    assert len(guarded) >= 10
    assert all(is_account_resource(resource) for resource, _ in guarded), guarded


def fields_of(selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]) -> list[FieldNode]:
    """The field nodes of a selection set with fragments spread (the schema has no interfaces or unions)."""
    found: list[FieldNode] = []
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            found.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            found.extend(fields_of(selection.selection_set, fragments))
        elif isinstance(selection, FragmentSpreadNode):
            found.extend(fields_of(fragments[selection.name.value].selection_set, fragments))
    return found


def guarded_fields(query: str, data: Any, schema: GraphQLSchema = SCHEMA) -> list[tuple[list[Any], str, str, Any]]:
    """(path, resource, access, value) of every @requires field in the answer, found by walking it with the
    operation and the schema."""
    document = parse(query)
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    root = schema.mutation_type if operation.operation.value == "mutation" else schema.query_type
    found: list[tuple[list[Any], str, str, Any]] = []

    def walk(type_: GraphQLObjectType, selection_set: SelectionSetNode, value: Any, path: list[Any]) -> None:
        if value is None:
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                walk(type_, selection_set, item, [*path, index])
            return
        for node in fields_of(selection_set, fragments):
            name = node.name.value
            key = node.alias.value if node.alias else name
            if name.startswith("__") or key not in value:
                continue
            field = type_.fields[name]
            required = requirement(field)
            if required is not None:
                found.append(([*path, key], *required, value[key]))
            named = get_named_type(field.type)
            if node.selection_set is not None and is_object_type(named):
                walk(named, node.selection_set, value[key], [*path, key])

    walk(root, operation.selection_set, data, [])
    return found


def secrets_in(value: Any) -> list[str]:
    """Any ``secret`` in an answer (a fuzzed createServiceToken), for the suite's no-secret-in-logs check."""
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == "secret" and isinstance(v, str)] + [
            s for v in value.values() for s in secrets_in(v)
        ]
    if isinstance(value, list):
        return [s for v in value for s in secrets_in(v)]
    return []


def grant_sets(projects: list[str]) -> st.SearchStrategy[list[Grant]]:
    def one(permission_set: str) -> st.SearchStrategy[Grant]:
        if SET_LEVELS[permission_set] == "ACCOUNT":
            return st.just(Grant(permission_set, True, ()))
        everywhere = st.just(Grant(permission_set, True, ()))
        listed = st.lists(st.sampled_from(projects), min_size=1, unique=True).map(
            lambda chosen: Grant(permission_set, False, tuple(chosen))
        )
        return everywhere | listed

    return st.lists(st.sampled_from(sorted(SET_LEVELS)).flatmap(one), max_size=4)


def check_operations(live: LiveServer, operations: st.SearchStrategy[str], examples: int) -> dict[str, int]:
    """Runs the property; returns counts of what the run saw, so the test can show it exercised both sides."""
    admin = live.run(live.server.bootstrap("Fuzz", "ENTERPRISE_PLUS"))
    projects = [live.run(create_project(live.server, admin.token, f"p{i}")) for i in range(2)]
    seen = {"null_because_denied": 0, "present_because_allowed": 0}

    @settings(FUZZ_SETTINGS, max_examples=examples)
    @given(grants=grant_sets(projects), query=operations)
    def property_holds(grants: list[Grant], query: str) -> None:
        token = live.run(store_service_token(live.server, admin.account_id, grants))
        reply = live.run(live.server.gql(query, token=token))
        assert reply.status == 200, (query, reply.body)
        assert "INTERNAL_SERVER_ERROR" not in reply.codes, (query, reply.body)
        live.server.issued.extend(secrets_in(reply.data))
        refused = {
            tuple(e.get("path") or ())
            for e in reply.errors
            if e["extensions"]["code"] == "FORBIDDEN" and e["message"].startswith("requires ")
        }
        for path, resource, access, value in guarded_fields(query, reply.data):
            if has(grants, resource, access):
                assert tuple(path) not in refused, (path, resource, access, grants, reply.body)
                seen["present_because_allowed"] += value is not None
            else:
                assert value is None, (path, resource, access, grants, query, reply.body)
                assert tuple(path) in refused, (path, reply.body)
                seen["null_because_denied"] += 1

    property_holds()
    return seen


def test_queries_never_show_a_guarded_field_the_principal_lacks(live_server):
    queries = hypothesis_graphql.queries(SDL, custom_scalars=CUSTOM_SCALARS, allow_x00=False)
    seen = check_operations(live_server, queries, QUERY_EXAMPLES)
    assert seen["null_because_denied"] > 0 and seen["present_because_allowed"] > 0, seen


def test_mutations_never_show_a_guarded_field_the_principal_lacks(live_server):
    # Against a throwaway account in this test's own database; whatever they create dies with it.
    mutations = hypothesis_graphql.mutations(SDL, custom_scalars=CUSTOM_SCALARS, allow_x00=False)
    seen = check_operations(live_server, mutations, MUTATION_EXAMPLES)
    assert seen["null_because_denied"] > 0, seen
