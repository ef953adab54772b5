"""Property: for random grant sets and random operations generated from schema.graphql, a field carrying
``@requires(resource, access)`` that the principal lacks is never non-null in the answer (and one it has is
never refused with a ``requires ...`` error).

The oracle is the reference permission matrix (not tokengate's policy module): a principal has
``resource:access`` when one of its grants' permission sets gives that resource at that access or higher.
Every ``@requires`` in the schema is on an account resource, which needs no project (asserted below: a field
on a project resource needs the oracle to learn which project it is about).

Run sizes: 200 generated queries and 100 generated mutations, 100 sequences of member changes that must give
nothing the caller lacks, and 80 sequences of updateUser/deactivateUser/deleteUserToken on people the account admin
made that must take away nothing the caller lacks (each with its own freshly stored token and grant set), against
one throwaway account on a server of its own.
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
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes

from tests.api.live_server import LiveServer
from tests.api.test_graphql import create_project
from tests.conftest import store_service_token
from tests.store.test_migrations import reference
from tokengate.core.catalog import is_account_resource
from tokengate.core.policy import Grant

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


# --- no escalation: createUser and updateUser never give what the caller lacks ------------------------------

ESCALATION_EXAMPLES = 100
LICENSES = ("DEVELOPER", "READ_ONLY", "IT")
CREATE_MEMBER = """
mutation($email: String!, $license: License!, $grants: [GrantInput!]!) {
  createUser(email: $email, license: $license, grants: $grants) { id }
}
"""
UPDATE_MEMBER = """
mutation($id: ID!, $license: License, $grants: [GrantInput!]) { updateUser(id: $id, license: $license, grants: $grants) { id } }
"""


def holdings(grants: list[Grant], license_: str | None, projects: list[str]) -> set[tuple[str, str, str]]:
    """(resource, access, scope) a holder of ``grants`` under ``license_`` has, from the reference matrix: scope
    "account" for account resources, else each project (and "all" when every project is covered)."""
    held: set[tuple[str, str, str]] = set()
    for grant in grants:
        for (permission_set, resource), level in MATRIX.items():
            if permission_set != grant.permission_set:
                continue
            account = is_account_resource(resource)
            cap = {"READ_ONLY": 0 if account else 1, "IT": 2 if account else 0}.get(license_ or "", 2)
            level = min(level, cap)
            everywhere = grant.all_projects or SET_LEVELS[permission_set] == "ACCOUNT"
            scopes = ["account"] if account else ([*projects, "all"] if everywhere else list(grant.project_ids))
            for access, needed in LEVELS.items():
                if level >= needed:
                    held.update((resource, access, scope) for scope in scopes)
    return held


def as_input(grants: list[Grant]) -> list[dict[str, Any]]:
    return [
        {"permissionSet": g.permission_set, "allProjects": g.all_projects, "projectIds": list(g.project_ids)}
        for g in grants
    ]


async def stored_user(server: Any, user_id: str) -> tuple[list[Grant], str]:
    rows = await server.pool.fetch(
        "SELECT permission_set, all_projects, project_ids FROM grants WHERE user_id = $1", user_id
    )
    license_ = await server.pool.fetchval("SELECT license FROM users WHERE id = $1", user_id)
    return [Grant(r["permission_set"], r["all_projects"], tuple(r["project_ids"])) for r in rows], license_


def test_no_sequence_of_member_changes_gives_what_the_caller_lacks(live_server):
    live = live_server
    admin = live.run(live.server.bootstrap("Escalation", "ENTERPRISE_PLUS"))
    projects = [live.run(create_project(live.server, admin.token, f"p{i}")) for i in range(2)]
    seen = {"given": 0, "refused": 0, "by_account_admin": 0, "by_user": 0}
    counter = iter(range(10**9))
    step = st.tuples(
        st.booleans(),  # create (True) or update one of the users made so far
        st.sampled_from(LICENSES) | st.none(),
        grant_sets(projects) | st.none(),
        st.integers(min_value=0, max_value=10),
    )

    @settings(FUZZ_SETTINGS, max_examples=ESCALATION_EXAMPLES)
    @given(
        caller_grants=grant_sets(projects),
        caller_license=st.sampled_from(LICENSES) | st.none(),  # None: a service token, else a user's license
        steps=st.lists(step, min_size=1, max_size=4),
    )
    def property_holds(caller_grants, caller_license, steps) -> None:
        server = live.server
        if caller_license is None:
            token = live.run(store_service_token(server, admin.account_id, caller_grants))
        else:
            reply = live.run(
                server.gql(
                    CREATE_MEMBER,
                    {
                        "email": f"caller{next(counter)}@acme.test",
                        "license": caller_license,
                        "grants": as_input(caller_grants),
                    },
                    token=admin.token,
                )
            )
            assert reply.errors == [], reply.body
            token = live.run(server.issue_user_token(reply.data["createUser"]["id"]))
            seen["by_user"] += 1
        made: list[str] = []
        for create, license_, grants, pick in steps:
            if create or not made:
                variables = {"email": f"m{next(counter)}@acme.test", "license": license_ or "DEVELOPER"}
                reply = live.run(
                    server.gql(CREATE_MEMBER, {**variables, "grants": as_input(grants or [])}, token=token)
                )
                if reply.data and reply.data.get("createUser"):
                    made.append(reply.data["createUser"]["id"])
            else:
                variables = {"id": made[pick % len(made)], "license": license_}
                variables["grants"] = as_input(grants) if grants is not None else None
                reply = live.run(server.gql(UPDATE_MEMBER, variables, token=token))
            assert reply.status == 200 and "INTERNAL_SERVER_ERROR" not in reply.codes, reply.body
            seen["refused" if reply.errors else "given"] += 1
        is_admin = caller_license != "READ_ONLY" and any(g.permission_set == "ACCOUNT_ADMIN" for g in caller_grants)
        seen["by_account_admin"] += is_admin
        if is_admin:
            return
        lacked = holdings(caller_grants, caller_license, projects)
        for user_id in made:
            grants, license_ = live.run(stored_user(server, user_id))
            beyond = holdings(grants, license_, projects) - lacked
            assert not beyond, (caller_grants, caller_license, steps, grants, license_, sorted(beyond)[:5])

    property_holds()
    # Both sides were exercised: changes given by callers who are not account admins, and changes refused.
    assert seen["given"] > 0 and seen["refused"] > 0 and seen["by_user"] > 0, seen


# --- ...nor takes away what the caller lacks: updateUser, deactivateUser, deleteUserToken (issue 20) ----------

REMOVAL_EXAMPLES = 80
DEACTIVATE_MEMBER = "mutation($id: ID!) { deactivateUser(id: $id) { id } }"
DELETE_USER_TOKEN = "mutation($id: ID!) { deleteUserToken(id: $id) { id } }"
ACTIONS = ("update", "deactivate", "delete_token")


async def still_held(server: Any, user_id: str, token: str, projects: list[str]) -> set[tuple[str, str, str]]:
    """What the user holds through its personal token now: nothing once deactivated or the token deleted."""
    active = await server.pool.fetchval(
        "SELECT u.state = 'active' AND t.state = 'active' FROM users u JOIN tokens t ON t.user_id = u.id "
        "WHERE u.id = $1 AND t.id = $2",
        user_id,
        token[4:20],
    )
    grants, license_ = await stored_user(server, user_id)
    return holdings(grants, license_, projects) if active else set()


def test_no_sequence_of_member_changes_takes_away_what_the_caller_lacks(live_server):
    live = live_server
    admin = live.run(live.server.bootstrap("Removal", "ENTERPRISE_PLUS"))
    projects = [live.run(create_project(live.server, admin.token, f"p{i}")) for i in range(2)]
    p0, p1 = projects
    seen = {"taken": 0, "refused": 0}
    counter = iter(range(10**9))
    step = st.tuples(
        st.sampled_from(ACTIONS),
        st.integers(min_value=0, max_value=10),  # which target
        st.sampled_from(LICENSES) | st.none(),
        grant_sets(projects) | st.none(),
    )

    def run(server: Any, query: str, variables: dict[str, Any], token: str) -> Any:
        reply = live.run(server.gql(query, variables, token=token))
        assert reply.status == 200 and "INTERNAL_SERVER_ERROR" not in reply.codes, reply.body
        return reply

    @settings(FUZZ_SETTINGS, max_examples=REMOVAL_EXAMPLES)
    @given(
        caller_grants=grant_sets(projects),
        caller_license=st.sampled_from(LICENSES) | st.none(),  # None: a service token
        targets=st.lists(st.tuples(st.sampled_from(LICENSES), grant_sets(projects)), min_size=1, max_size=3),
        steps=st.lists(step, min_size=1, max_size=4),
    )
    # The attack of issue 20 (an ADMIN of one project against more than it holds), and what it may still do.
    @example(
        caller_grants=[Grant("ADMIN", False, (p0,))],
        caller_license="DEVELOPER",
        targets=[
            ("DEVELOPER", [Grant("ADMIN", False, (p1,))]),
            ("DEVELOPER", [Grant("JOB_ADMIN")]),
            ("DEVELOPER", [Grant("SECURITY_ADMIN")]),
        ],
        steps=[
            ("update", 0, None, []),
            ("deactivate", 1, None, None),
            ("update", 2, "READ_ONLY", None),
            ("delete_token", 2, None, None),
        ],
    )
    @example(
        caller_grants=[Grant("ADMIN", False, (p0,))],
        caller_license=None,
        targets=[("DEVELOPER", [Grant("JOB_VIEWER", False, (p0,))])] * 3,
        steps=[("update", 0, None, []), ("deactivate", 1, None, None), ("delete_token", 2, None, None)],
    )
    def property_holds(caller_grants, caller_license, targets, steps) -> None:
        server = live.server
        made: list[tuple[str, str]] = []
        for license_, grants in targets:  # people the account admin made, each signed in
            variables = {"email": f"r{next(counter)}@acme.test", "license": license_, "grants": as_input(grants)}
            user_id = run(server, CREATE_MEMBER, variables, admin.token).data["createUser"]["id"]
            made.append((user_id, live.run(server.issue_user_token(user_id))))
        before = {user_id: live.run(still_held(server, user_id, token, projects)) for user_id, token in made}
        if caller_license is None:
            caller = live.run(store_service_token(server, admin.account_id, caller_grants))
        else:
            variables = {"email": f"c{next(counter)}@acme.test", "license": caller_license}
            reply = run(server, CREATE_MEMBER, {**variables, "grants": as_input(caller_grants)}, admin.token)
            caller = live.run(server.issue_user_token(reply.data["createUser"]["id"]))
        for action, pick, license_, grants in steps:
            user_id, token = made[pick % len(made)]
            if action == "update":
                variables = {"id": user_id, "license": license_, "grants": None if grants is None else as_input(grants)}
                reply = run(server, UPDATE_MEMBER, variables, caller)
            elif action == "deactivate":
                reply = run(server, DEACTIVATE_MEMBER, {"id": user_id}, caller)
            else:
                reply = run(server, DELETE_USER_TOKEN, {"id": token[4:20]}, caller)
            seen["refused"] += bool(reply.errors)
        if caller_license != "READ_ONLY" and any(g.permission_set == "ACCOUNT_ADMIN" for g in caller_grants):
            return
        lacked = holdings(caller_grants, caller_license, projects)
        for user_id, token in made:
            after = live.run(still_held(server, user_id, token, projects))
            taken, given_ = before[user_id] - after, after - before[user_id]
            assert not taken - lacked, (caller_grants, caller_license, targets, steps, sorted(taken - lacked)[:5])
            assert not given_ - lacked, (caller_grants, caller_license, targets, steps, sorted(given_ - lacked)[:5])
            seen["taken"] += bool(taken)

    property_holds()
    # Both sides were exercised: access taken away by callers who are not account admins, and changes refused.
    assert seen["taken"] > 0 and seen["refused"] > 0, seen
