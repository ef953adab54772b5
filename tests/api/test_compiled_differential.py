"""Differential test of compiled execution plans (graphql/engine/compiled.py): every answer of a plan is
graphql-core's: data (with its key order), errors (message, path, locations, extensions, in the same order)
and side effects.

The reference is graphql-core's ``execute`` with Strawberry's plain ``StrawberryGraphQLCoreExecutionContext``,
what every operation without a plan runs on.

Generated part: queries from hypothesis-graphql over the whole Query root of tokengate's schema, then varied
(hypothesis draws it) with what hypothesis-graphql does not write: inline fragments with and without a type
condition, named fragments (some spread twice), aliased copies of fields, ``__typename``, literal
``@skip``/``@include``, literal arguments turned into variables, and now and then a directive on a variable
or a variable that does not coerce (both answered by graphql-core: counted as fallbacks). Each runs on the
seeded account of differential_cases.py through the plan and through graphql-core, for principals
from an account admin down to a token without a single grant; denials counted by ``@requires`` must match too.

Explicit part: tokengate's schema on seeded data (a FORBIDDEN field, a non-null field failing up to the root,
lists of objects, fragments, aliases with different arguments, variables, introspection), and tiny schemas
for what seeded data cannot show (a non-null field failing up to its nullable parent, a resolver raising an
unexpected exception, values that are not values, abstract types, concurrent siblings, odd lists).

Run size: 150 generated queries (each executed twice), plus the explicit cases.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import hypothesis_graphql
import pytest
import strawberry
from graphql import (
    ArgumentNode,
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    NamedTypeNode,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableDefinitionNode,
    VariableNode,
    execute,
    get_named_type,
    is_object_type,
    parse,
    parse_type,
    print_ast,
    validate,
    value_from_ast_untyped,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from tests.api.differential_cases import (
    BAD_LEAVES,
    LEAF_QUERIES,
    ODD_LISTS,
    Box,
    Stranger,
    box_schema,
    boxes_with,
    error_key,
    graphql_context,
    item,
    seed,
)
from tests.api.live_server import LiveServer
from tests.api.test_requires_property import CUSTOM_SCALARS
from tests.conftest import Server
from tokengate.graphql.engine import compiled, cost
from tokengate.graphql.engine.documents import Document, parsed_document
from tokengate.graphql.schema.schema import schema as tokengate_schema

CORE_SCHEMA: GraphQLSchema = tokengate_schema._schema
QUERY_EXAMPLES = 150
GRANT_PROJECTS = (
    "{ account { serviceTokens { displayPrefix grants { permissionSet allProjects projects { id name } } } "
    "members { grants { allProjects projects { name } } } } }"
)
DIFF_SETTINGS = settings(
    deadline=None,
    database=None,  # nothing written to .hypothesis/
    max_examples=QUERY_EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# --- running one document both ways ------------------------------------------------------------------------


def document_of(query: str) -> Document:
    document = parsed_document(query)
    assert document.ast is not None, document.syntax_errors
    return document


async def settle(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


def answer(result: Any) -> tuple[str, Any, list[tuple[Any, ...]]]:
    """The data as JSON (so the key order counts), the data itself, and the errors in order."""
    return json.dumps(result.data, default=str), result.data, [error_key(e) for e in result.errors or ()]


async def through_core(
    schema: GraphQLSchema, document: Document, context: Any, variables: Any = None, root: Any = None
) -> Any:
    return await settle(
        execute(
            schema,
            document.ast,  # type: ignore[arg-type]
            root_value=root,
            context_value=context,
            variable_values=variables,
            executor_class=StrawberryGraphQLCoreExecutionContext,
            is_awaitable=optimized_is_awaitable,
        )
    )


async def through_plan(schema: GraphQLSchema, document: Document, context: Any, variables: Any = None) -> Any:
    """The plan's answer, or None when it leaves the request to graphql-core."""
    result = compiled.execute_compiled(schema, document, None, variables, context)
    return None if result is None else await settle(result)


def ran(schema: GraphQLSchema, document: Document) -> str:
    """How a document runs: "compiled" (possibly with fields handed to graphql-core) or the reason it is not."""
    plan = compiled.plan_for(schema, document, None)
    if isinstance(plan, compiled.NotCompiled):
        return f"fell back: {plan}"
    return "compiled with graphql-core fields" if plan.core_fields else "compiled"


async def both(
    schema: GraphQLSchema, query: str, context: Any = None, variables: Any = None, *, must_compile: bool = True
) -> tuple[Any, Any]:
    document = document_of(query)
    assert validate(schema, document.ast) == [], query  # type: ignore[arg-type]
    if must_compile:
        assert ran(schema, document).startswith("compiled"), ran(schema, document)
    planned = await through_plan(schema, document, context, variables)
    if must_compile:
        assert planned is not None, "the plan left the request to graphql-core"
    core = await through_core(schema, document, context, variables)
    return (answer(planned) if planned is not None else None), answer(core)


# --- the generated part: tokengate's schema, seeded data, varied queries -----------------------------------


class Variation:
    """A query of hypothesis-graphql rewritten with fragments, aliases, directives and variables."""

    def __init__(self, data: st.DataObject, schema: GraphQLSchema):
        self.draw = data.draw
        self.schema = schema
        self.fragments: list[FragmentDefinitionNode] = []
        self.definitions: list[VariableDefinitionNode] = []
        self.variables: dict[str, Any] = {}
        self.counter = 0
        # Now and then (about one query in eight each, when it has a variable or a directive), something only graphql-core answers: a variable
        # that does not coerce, a directive on a variable.
        self.bad_variable = self.chance(8)
        self.variable_directive = self.chance(8)

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def chance(self, one_in: int) -> bool:
        return self.draw(st.integers(0, one_in - 1)) == one_in - 1  # (hypothesis starts from zeros)

    def document(self, query: str) -> tuple[str, dict[str, Any]]:
        (operation,) = parse(query).definitions
        assert isinstance(operation, OperationDefinitionNode)
        selection = self.selection_set(operation.selection_set, self.schema.query_type)
        varied = OperationDefinitionNode(
            operation=OperationType.QUERY,
            variable_definitions=tuple(self.definitions),
            directives=(),
            selection_set=selection,
        )
        return print_ast(DocumentNode(definitions=(varied, *self.fragments))), self.variables

    def selection_set(self, selection_set: SelectionSetNode, parent: Any) -> SelectionSetNode:
        if not is_object_type(parent):  # what hypothesis-graphql writes for abstract types stays as written
            return selection_set
        selections: list[Any] = [self.field(field, parent) for field in selection_set.selections]
        if self.chance(8):
            selections.append(FieldNode(name=NameNode(value="__typename"), directives=self.directives()))
        if self.chance(5):
            original = self.draw(st.sampled_from([s for s in selections if isinstance(s, FieldNode)]))
            copy = FieldNode(
                alias=NameNode(value=self.fresh("copy")),
                name=original.name,
                arguments=original.arguments,
                directives=(),
                selection_set=original.selection_set,
            )
            selections.insert(self.draw(st.integers(0, len(selections))), copy)
        if self.chance(3):
            start = self.draw(st.integers(0, len(selections) - 1))
            end = self.draw(st.integers(start + 1, len(selections)))
            inner = SelectionSetNode(selections=tuple(selections[start:end]))
            how = self.draw(st.sampled_from(["inline", "typed inline", "fragment", "fragment twice"]))
            condition = NamedTypeNode(name=NameNode(value=parent.name))
            if how.startswith("fragment"):
                name = self.fresh("F")
                self.fragments.append(
                    FragmentDefinitionNode(
                        name=NameNode(value=name), type_condition=condition, directives=(), selection_set=inner
                    )
                )
                spread = [FragmentSpreadNode(name=NameNode(value=name), directives=self.directives())]
                replacement: list[Any] = spread * (2 if how == "fragment twice" else 1)
            else:
                replacement = [
                    InlineFragmentNode(
                        type_condition=condition if how == "typed inline" else None,
                        directives=self.directives(),
                        selection_set=inner,
                    )
                ]
            selections[start:end] = replacement
        return SelectionSetNode(selections=tuple(selections))

    def field(self, field: Any, parent: Any) -> Any:
        if not isinstance(field, FieldNode) or field.name.value.startswith("__"):
            return field
        field_def = parent.fields[field.name.value]
        arguments = tuple(
            self.argument(argument, field_def.args[argument.name.value]) for argument in field.arguments or ()
        )
        sub = field.selection_set
        if sub is not None:
            sub = self.selection_set(sub, get_named_type(field_def.type))
        return FieldNode(
            alias=field.alias, name=field.name, arguments=arguments, directives=self.directives(), selection_set=sub
        )

    def argument(self, argument: ArgumentNode, definition: Any) -> ArgumentNode:
        if not self.chance(2):
            return argument
        name = self.fresh("v")
        self.definitions.append(
            VariableDefinitionNode(
                variable=VariableNode(name=NameNode(value=name)), type=parse_type(str(definition.type)), directives=()
            )
        )
        value = value_from_ast_untyped(argument.value)
        if self.bad_variable:
            value, self.bad_variable = {"not": ["what", "the", "argument", "takes"]}, False
        self.variables[name] = value
        return ArgumentNode(name=argument.name, value=VariableNode(name=NameNode(value=name)))

    def directives(self) -> tuple[DirectiveNode, ...]:
        if not self.chance(8):
            return ()
        name, value = self.draw(
            st.sampled_from([("include", True), ("skip", False), ("include", False), ("skip", True)])
        )
        if self.variable_directive:  # on a variable: graphql-core collects the fields per request (a fallback)
            self.variable_directive = False
            variable = self.fresh("flag")
            self.definitions.append(
                VariableDefinitionNode(
                    variable=VariableNode(name=NameNode(value=variable)), type=parse_type("Boolean!"), directives=()
                )
            )
            self.variables[variable] = self.draw(st.booleans())
            condition: Any = VariableNode(name=NameNode(value=variable))
        else:
            condition = BooleanValueNode(value=value)
        return (
            DirectiveNode(
                name=NameNode(value=name), arguments=(ArgumentNode(name=NameNode(value="if"), value=condition),)
            ),
        )


def assert_costs_agree(schema: GraphQLSchema, document: Document, data: Any) -> int:
    """The actual cost counted on the compiled walk (cost.actual_plan, what operations.run uses) is the one
    ``cost._Actual`` counts on the document itself, for this answer."""
    assert document.ast is not None
    operation = document.operation(None)
    assert operation is not None
    plan = cost.actual_plan(schema, document.ast, operation)
    assert plan is not None
    walked = cost.actual_cost(schema, document.ast, operation, data, plan)
    root = schema.get_root_type(operation.operation)
    assert root is not None
    reference = (
        1
        if data is None
        else max(1, cost._Actual(schema, document.ast).selections(root, operation.selection_set, data))
    )
    assert walked == reference, (print_ast(document.ast), data)
    return walked


def denials(server: Server) -> Counter[tuple[str, str]]:
    return Counter(server.runtime.metrics.denials)


async def compare_with_effects(server: Server, query: str, variables: dict[str, Any], context: Any) -> tuple[Any, ...]:
    """Both answers, and the denials each counted (``@requires`` runs per field, the same number of times)."""
    document = document_of(query)
    assert validate(CORE_SCHEMA, document.ast) == [], query  # type: ignore[arg-type]
    before = denials(server)
    planned = await through_plan(CORE_SCHEMA, document, context, variables)
    after_plan = denials(server)
    core = await through_core(CORE_SCHEMA, document, context, variables)
    after_core = denials(server)
    for result in (planned, core):
        if result is not None:
            assert_costs_agree(CORE_SCHEMA, document, result.data)
    return (
        ran(CORE_SCHEMA, document),
        None if planned is None else answer(planned),
        answer(core),
        after_plan - before,
        after_core - after_plan,
    )


def test_plans_answer_generated_queries_exactly_as_graphql_core(live_server: LiveServer):
    server = live_server.server
    principals = live_server.run(seed(server))
    contexts = {name: live_server.run(graphql_context(server, token)) for name, token in principals.items()}
    queries = hypothesis_graphql.queries(CORE_SCHEMA, custom_scalars=CUSTOM_SCALARS, allow_x00=False)
    seen: Counter[str] = Counter()

    def compare(varied: str, variables: dict[str, Any], who: str) -> None:
        how, planned, core, plan_denials, core_denials = live_server.run(
            compare_with_effects(server, varied, variables, contexts[who])
        )
        if planned is None:
            seen["fell back: variables graphql-core refuses" if how.startswith("compiled") else how] += 1
        else:
            assert planned[:2] == core[:2], (who, varied, variables)  # the data, its key order included
            # Errors of sibling fields that wait on the database concurrently are recorded in the order their
            # queries return, which the two executions need not share (the plan awaits fewer coroutine layers).
            # Explicit tests below keep the order.
            assert sorted(planned[2], key=repr) == sorted(core[2], key=repr), (who, varied, variables)
            assert plan_denials == core_denials, (who, varied)
            seen[how] += 1
        _, data_value, errors = core
        seen["queries"] += 1
        seen["with errors"] += bool(errors)
        seen["forbidden"] += sum(1 for e in errors if (e[3] or {}).get("code") == "FORBIDDEN")
        seen["with variables"] += bool(variables)
        seen["with fragments"] += "..." in varied
        text = json.dumps(data_value, default=str)
        seen["service tokens shown"] += '"displayPrefix"' in text or '"rotationRecommended"' in text
        seen["grant projects shown"] += '"allProjects"' in text

    @DIFF_SETTINGS
    @given(query=queries, who=st.sampled_from(sorted(contexts)), data=st.data())
    def same_answer(query: str, who: str, data: st.DataObject) -> None:
        compare(*Variation(data, CORE_SCHEMA).document(query), who)

    same_answer()
    for who in sorted(contexts):  # shapes generation rarely reaches (a nested list of lists), compared every run
        compare(GRANT_PROJECTS, {}, who)
    print(f"compiled differential run: {dict(seen)}")
    compiled_runs = seen["compiled"] + seen["compiled with graphql-core fields"]
    assert seen["queries"] >= QUERY_EXAMPLES, seen
    assert compiled_runs >= 0.7 * seen["queries"], seen  # most queries run on their plan
    assert seen["forbidden"] > 0 and seen["service tokens shown"] > 0 and seen["grant projects shown"] > 0, seen
    assert seen["with variables"] > 0 and seen["with fragments"] > 0, seen


# --- the explicit part on tokengate's schema ---------------------------------------------------------------


@pytest.fixture
def seeded(live_server: LiveServer) -> Iterator[tuple[LiveServer, dict[str, Any]]]:
    principals = live_server.run(seed(live_server.server))
    contexts = {name: live_server.run(graphql_context(live_server.server, token)) for name, token in principals.items()}
    yield live_server, contexts


def same(live: LiveServer, query: str, context: Any, variables: Any = None) -> tuple[Any, Any]:
    """Both answers for ``query`` (which must compile), asserted equal; the reference answer's data and errors."""
    planned, core = live.run(both(CORE_SCHEMA, query, context, variables))
    assert planned == core, query
    return core[1], core[2]


def test_a_forbidden_field_is_null_with_its_error_and_its_siblings_answer(seeded: Any):
    live, contexts = seeded
    query = "{ account { name serviceTokens { id name } members { email } plan } }"
    data, errors = same(live, query, contexts["no_grants"])
    assert data["account"]["serviceTokens"] is None and data["account"]["members"] is None, data
    assert data["account"]["name"] == "Differential" and data["account"]["plan"] == "ENTERPRISE_PLUS", data
    assert [(e[1], e[3]["code"]) for e in errors] == [
        (["account", "serviceTokens"], "FORBIDDEN"),
        (["account", "members"], "FORBIDDEN"),
    ], errors
    data, errors = same(live, query, contexts["admin"])  # the positive case: the admin sees them
    assert errors == [] and len(data["account"]["serviceTokens"]) >= 5 and data["account"]["members"], data


def test_a_forbidden_field_counts_one_denial_as_under_graphql_core(seeded: Any):
    live, contexts = seeded
    query = "{ account { serviceTokens { id } } }"
    _, planned, core, plan_denials, core_denials = live.run(
        compare_with_effects(live.server, query, {}, contexts["no_grants"])
    )
    assert planned == core
    assert plan_denials == core_denials == Counter({("SERVICE_TOKENS", "READ"): 1})


def test_a_non_null_field_failing_nulls_the_whole_answer(seeded: Any):
    live, contexts = seeded
    # checks is [Decision!]!: more than 1,000 questions fail it, and the null goes up to data (the root is
    # non-null).
    data, errors = same(
        live,
        "query($r: [CheckInput!]!) { viewer { kind } checks(requests: $r) { allowed } }",
        contexts["admin"],
        {"r": [{"resource": "JOBS", "access": "READ"}] * 1001},
    )
    assert data is None and [(e[1], e[3]["code"]) for e in errors] == [(["checks"], "BAD_USER_INPUT")], errors


def test_lists_of_objects_fragments_and_aliases_with_different_arguments(seeded: Any):
    live, contexts = seeded
    query = """
        query Listing {
          account {
            ...Tokens
            deleted: serviceTokens(includeDeleted: true) { id state ... on ServiceToken { name } }
            ... on Account { alsoTokens: serviceTokens { ...TokenFields } }
          }
          jobs: check(resource: JOBS, access: WRITE) { allowed reason }
          billing: check(resource: BILLING, access: READ) { ... { allowed } reason }
          permissionSets { key availableOnPlan }
        }
        fragment Tokens on Account { serviceTokens { ...TokenFields grants { permissionSet projects { id name } } } }
        fragment TokenFields on ServiceToken { id displayPrefix format __typename }
    """
    data, errors = same(live, query, contexts["admin"])
    assert errors == []
    assert len(data["account"]["deleted"]) > len(data["account"]["serviceTokens"]) > 0, data
    assert list(data) == ["account", "jobs", "billing", "permissionSets"], list(data)
    assert list(data["account"]) == ["serviceTokens", "deleted", "alsoTokens"], list(data["account"])
    assert list(data["account"]["serviceTokens"][0]) == ["id", "displayPrefix", "format", "__typename", "grants"]
    assert data["jobs"] != data["billing"] or data["jobs"]["reason"] != data["billing"]["reason"], data


def test_variables_in_arguments_are_coerced_per_request(seeded: Any):
    live, contexts = seeded
    query = """query ($resource: Resource!, $access: Access!, $project: ID, $deleted: Boolean) {
        check(resource: $resource, access: $access, projectId: $project) { allowed reason }
        account { serviceTokens(includeDeleted: $deleted) { id } }
    }"""
    for variables in (
        {"resource": "JOBS", "access": "WRITE", "project": None, "deleted": True},
        {"resource": "BILLING", "access": "READ", "deleted": False},
        {"resource": "SERVICE_TOKENS", "access": "READ"},
    ):
        data, errors = same(live, query, contexts["admin"], variables)
        assert errors == [] and data["check"]["reason"], (variables, data)
    # Variables graphql-core refuses: nothing runs on the plan, graphql-core answers its own errors.
    document = document_of(query)
    bad = {"resource": "NOT_A_RESOURCE", "access": "READ"}
    assert live.run(through_plan(CORE_SCHEMA, document, contexts["admin"], bad)) is None
    assert live.run(through_core(CORE_SCHEMA, document, contexts["admin"], bad)).errors


def test_introspection_runs_on_graphql_core_inside_the_plan(seeded: Any):
    live, contexts = seeded
    query = '{ __typename viewer { __typename kind } __type(name: "Decision") { name fields { name } } }'
    assert ran(CORE_SCHEMA, document_of(query)) == "compiled with graphql-core fields"
    data, errors = same(live, query, contexts["job_runner"])
    assert errors == [] and data["__type"]["name"] == "Decision" and data["__typename"] == "Query", data


def test_what_a_plan_does_not_run_is_left_to_graphql_core(seeded: Any):
    live, contexts = seeded
    for query, reason in (
        ('mutation { reportLeakedToken(token: "nope") }', "a mutation"),
        ("query ($flag: Boolean!) { viewer @include(if: $flag) { kind } }", "@include on a variable"),
    ):
        document = document_of(query)
        assert ran(CORE_SCHEMA, document) == f"fell back: {reason}"
        assert live.run(through_plan(CORE_SCHEMA, document, contexts["admin"], {"flag": True})) is None
    # Literal @skip/@include are decided once, at compile time.
    data, _ = same(live, "{ viewer @skip(if: true) { kind } account @include(if: true) { name } }", contexts["admin"])
    assert data == {"account": {"name": "Differential"}}


# --- the explicit part on tiny schemas ---------------------------------------------------------------------


@strawberry.type
class Part:
    label: str

    @strawberry.field
    def count(self) -> int:
        if self.label == "broken":
            raise ValueError("this part has no count")
        if self.label == "buggy":
            raise RuntimeError("a bug in a resolver")
        return len(self.label)

    @strawberry.field
    def weight(self) -> int | None:
        return None if self.label == "weightless" else 3


@strawberry.type
class Machine:
    name: str
    part: Part | None
    parts: list[Part] | None
    required: Part


@strawberry.type
class MachineQuery:
    @strawberry.field
    def machine(self) -> Machine | None:
        return Machine(
            name="press",
            part=Part(label="broken"),
            parts=[Part(label="ok"), Part(label="broken")],
            required=Part(label="buggy"),
        )

    @strawberry.field
    def other(self) -> Machine:
        return Machine(name="lathe", part=Part(label="ok"), parts=[Part(label="weightless")], required=Part(label="ok"))


MACHINES = strawberry.Schema(query=MachineQuery)._schema


async def test_a_non_null_field_failing_nulls_its_nearest_nullable_parent():
    planned, core = await both(MACHINES, "{ machine { name part { label count } parts { count } } other { name } }")
    assert planned == core
    data, errors = core[1], core[2]
    assert data == {"machine": {"name": "press", "part": None, "parts": None}, "other": {"name": "lathe"}}, data
    assert [e[1] for e in errors] == [["machine", "part", "count"], ["machine", "parts", 1, "count"]], errors


async def test_a_resolver_raising_an_unexpected_exception_is_reported_where_graphql_core_reports_it():
    planned, core = await both(MACHINES, "{ machine { required { count } } other { parts { weight count } } }")
    assert planned == core
    assert core[1] == {"machine": None, "other": {"parts": [{"weight": None, "count": 10}]}}, core[1]
    ((message, path, locations, _, cause),) = core[2]
    assert (message, path, cause) == ("a bug in a resolver", ["machine", "required", "count"], "RuntimeError")
    assert locations == [{"line": 1, "column": 24}]


@pytest.mark.parametrize("bad", list(BAD_LEAVES.values()), ids=list(BAD_LEAVES))
async def test_a_leaf_that_does_not_complete_is_reported_where_graphql_core_reports_it(bad: Any):
    compared = 0
    for where, make_box in boxes_with(bad).items():
        core_schema = box_schema(make_box)
        for name, query in LEAF_QUERIES.items():
            planned, core = await both(core_schema, query)
            assert planned == core, (where, name)
            compared += bool(core[2])
    assert compared > 0


@pytest.mark.parametrize("make", list(ODD_LISTS.values()), ids=list(ODD_LISTS))
async def test_a_list_value_graphql_core_would_not_complete_as_is_goes_its_way(make: Any):
    def make_box() -> Box:
        good = item()
        return Box(
            item=good,
            maybe_item=None,
            items=make(good),
            count=1,
            maybe_count=None,
            color=item().color,
            maybe_color=None,
        )

    planned, core = await both(box_schema(make_box), "{ box { count items { count label maybeColor } } }")
    assert planned == core


async def test_a_source_without_the_attribute_is_reported_at_the_field():
    planned, core = await both(box_schema(Stranger), "{ box { maybeCount count } }")
    assert planned == core and [e[1] for e in core[2]] == [["box", "maybeCount"], ["box", "count"]], core


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Dog(Named):
    barks: bool


@strawberry.type
class Cat(Named):
    @strawberry.field
    async def lives(self) -> int:
        await asyncio.sleep(0)
        return 9


@strawberry.type
class Plant:
    species: str


Living = Annotated[Dog | Cat | Plant, strawberry.union("Living")]


@strawberry.type
class Pet:
    """Not a Named: a resolver answering it for a Named is a field error."""

    name: str


@strawberry.type
class AbstractQuery:
    @strawberry.field
    def named(self) -> list[Named]:
        return [Dog(name="rex", barks=True), Cat(name="tom")]

    @strawberry.field
    def living(self) -> list[Living | None]:
        return [Plant(species="fern"), Cat(name="felix"), None]

    @strawberry.field
    def wrong(self) -> Named | None:
        return Pet(name="impostor")  # type: ignore[return-value]

    @strawberry.field
    def dog(self) -> Dog | None:
        return Plant(species="not a dog")  # type: ignore[return-value]


ABSTRACT = strawberry.Schema(query=AbstractQuery, types=[Dog, Cat])._schema


async def test_interfaces_and_unions_resolve_their_types_as_graphql_core_does():
    query = """{
        named { __typename name ... on Dog { barks } ... on Cat { lives } }
        living { __typename ... on Plant { species } ... on Named { name } ... on Cat { lives } }
        wrong { name }
        dog { barks name }
    }"""
    planned, core = await both(ABSTRACT, query)
    assert planned == core
    assert core[1]["named"] == [
        {"__typename": "Dog", "name": "rex", "barks": True},
        {"__typename": "Cat", "name": "tom", "lives": 9},
    ], core[1]
    assert [e[1] for e in core[2]] == [["wrong"], ["dog"]], core[2]


@strawberry.type
class Checked(Named):
    """A type check of its own that reads its info: the plan builds it (Strawberry's own is called without)."""

    @classmethod
    def is_type_of(cls, obj: Any, info: Any) -> bool:
        return isinstance(obj, Checked) and info.parent_type.name == "CheckedQuery"


@strawberry.type
class CheckedQuery:
    @strawberry.field
    def checked(self) -> list[Checked]:
        return [Checked(name="a"), Checked(name="b")]

    @strawberry.field
    def dogs(self) -> list[Dog]:
        return [Dog(name="rex", barks=True)]


async def test_a_type_check_reading_its_info_gets_it_and_strawberrys_own_gets_none():
    checked = strawberry.Schema(query=CheckedQuery)._schema
    assert not compiled.seams.info_free_type_check(checked.get_type("Checked").is_type_of)  # type: ignore[union-attr]
    assert compiled.seams.info_free_type_check(checked.get_type("Dog").is_type_of)  # type: ignore[union-attr]
    planned, core = await both(checked, "{ checked { name } dogs { name barks } }")
    assert planned == core and core[2] == [], core
    assert core[1] == {"checked": [{"name": "a"}, {"name": "b"}], "dogs": [{"name": "rex", "barks": True}]}


@strawberry.type
class EmptyQuery:
    empty: list[int] = strawberry.field(default_factory=list)
    none: list[Part] = strawberry.field(default_factory=list)
    maybe: list[Part] | None = None


COST_WALKS = {
    strawberry.Schema(query=EmptyQuery)._schema: ["{ empty none { label } maybe { label } }"],
    ABSTRACT: [
        """{ named { __typename ...N ... on Dog { barks ...N } ... on Cat { lives } }
             living { __typename ... on Plant { species } ... on Named { ...N name } ... { ...L } }
             again: named { name } named { __typename } wrong { name } dog { barks name } }
           fragment N on Named { name n2: name }
           fragment L on Living { ... on Cat { lives ...N } }""",
        "{ living { ...L } } fragment L on Living { __typename ...M } fragment M on Living { ... on Dog { name } }",
    ],
    MACHINES: ["{ machine { name part { label count } parts { count } } other { name parts { weight count } } }"],
}


async def test_the_compiled_actual_cost_counts_what_the_document_walk_counts():
    """cost.actual_plan (fragments followed once, shared where spread again) against cost._Actual on answers
    with nulls, field errors, aliases, duplicate keys, abstract types and fragments spread in fragments."""
    counted = []
    for schema, queries in {**COST_WALKS, CONCURRENT: ["{ matrix numbers later: laterItems }"]}.items():
        for query in queries:
            document = document_of(query)
            assert validate(schema, document.ast) == [], query  # type: ignore[arg-type]
            events = {"first": asyncio.Event(), "second": asyncio.Event()}
            result = await through_core(schema, document, events, root=EmptyQuery())
            counted.append(assert_costs_agree(schema, document, result.data))
            assert_costs_agree(schema, document, None)
    assert counted[0] == 3 and counted[-1] == 2 + 3 + 3, counted  # an empty list costs its own point


# [[1, 2], [3]] is a list of 2; 3 numbers; 3 later items


@strawberry.type
class ConcurrentQuery:
    """Two async siblings that each wait for the other: answered only if they run concurrently."""

    @strawberry.field
    async def first(self, info: strawberry.Info) -> str:
        events = info.context
        events["first"].set()
        await asyncio.wait_for(events["second"].wait(), 5)
        return "first"

    @strawberry.field
    async def second(self, info: strawberry.Info) -> str:
        events = info.context
        events["second"].set()
        await asyncio.wait_for(events["first"].wait(), 5)
        return "second"

    @strawberry.field
    async def numbers(self) -> list[int]:
        return [1, 2, 3]

    @strawberry.field
    def later_items(self) -> list[int | None]:
        async def value(number: int) -> int:
            await asyncio.sleep(0)
            if number == 2:
                raise ValueError("two is not allowed")
            return number

        return [value(1), value(2), value(3)]  # type: ignore[list-item]

    @strawberry.field
    async def stream(self) -> list[int]:
        async def numbers() -> AsyncIterator[int]:
            for number in (4, 5):
                yield number

        return numbers()  # type: ignore[return-value]

    @strawberry.field
    def matrix(self) -> list[list[int]]:
        return [[1, 2], [3]]


CONCURRENT = strawberry.Schema(query=ConcurrentQuery)._schema


async def test_async_siblings_run_concurrently_and_keep_the_selection_order():
    def events() -> dict[str, asyncio.Event]:
        return {"first": asyncio.Event(), "second": asyncio.Event()}

    query = "{ second first numbers laterItems stream matrix }"
    document = document_of(query)
    planned = await through_plan(CONCURRENT, document, events())
    core = await through_core(CONCURRENT, document, events())
    assert answer(planned) == answer(core)
    assert json.dumps(planned.data) == (
        '{"second": "second", "first": "first", "numbers": [1, 2, 3], "laterItems": [1, null, 3],'
        ' "stream": [4, 5], "matrix": [[1, 2], [3]]}'
    )
    assert [e.path for e in planned.errors] == [["laterItems", 1]]


def test_plans_are_kept_per_document_and_bounded():
    cache = compiled.PlanCache(size=3)
    documents = [document_of(f"{{ viewer {{ kind }} a{i}: account {{ name }} }}") for i in range(5)]
    plans = [cache.get(CORE_SCHEMA, document, None) for document in documents]
    assert len(cache) == 3
    assert cache.get(CORE_SCHEMA, documents[4], None) is plans[4]
    assert all(isinstance(plan, compiled.OperationPlan) for plan in plans)
    text = "{ viewer { kind } }" + " " * (compiled.MAX_CACHED_TEXT + 1)
    assert str(compiled.plan_for(CORE_SCHEMA, document_of(text), None)) == "a document too long to be cached"


def test_an_unverified_graphql_core_disables_the_plans_with_one_warning(monkeypatch: pytest.MonkeyPatch, caplog: Any):
    import graphql

    document = document_of("{ __typename }")
    assert compiled.plan_problem() is None and ran(CORE_SCHEMA, document) == "compiled"
    compiled.plan_problem.cache_clear()
    monkeypatch.setattr(graphql, "version_info", (3, 4, 0, "final", 0))
    monkeypatch.setattr(graphql, "version", "3.4.0")
    try:
        with caplog.at_level("WARNING", logger="tokengate.graphql.engine.compiled"):
            assert compiled.execute_compiled(CORE_SCHEMA, document, None, None, None) is None
            assert compiled.execute_compiled(CORE_SCHEMA, document, None, None, None) is None
        warnings = [r.getMessage() for r in caplog.records if r.name == "tokengate.graphql.engine.compiled"]
        assert len(warnings) == 1 and "3.4.0 is outside the verified range" in warnings[0], warnings
    finally:
        compiled.plan_problem.cache_clear()
    monkeypatch.undo()
    assert compiled.plan_problem() is None


def test_literal_arguments_are_coerced_once_unless_a_resolver_could_change_them():
    query = '{ check(resource: JOBS, access: READ, projectId: "p") { allowed } checks(requests: []) { allowed } }'
    plan = compiled.plan_for(CORE_SCHEMA, document_of(query), None)
    assert isinstance(plan, compiled.OperationPlan)
    check, checks = plan.root.fields
    assert check.arguments is not None and check.arguments["projectId"] == "p"
    assert checks.arguments is None  # a list: coerced per request, so no resolver can change the next one's


def test_resolvers_with_literal_arguments_skip_strawberrys_per_call_conversion(seeded: Any):
    """Strawberry's own resolvers called with literal arguments run directly (seams.direct_resolver: arguments
    converted once, Info and extensions as Strawberry builds them) and answer as graphql-core does; arguments a
    resolver could change, and those of variables, keep Strawberry's resolver."""
    live, contexts = seeded
    query = (
        "{ viewer { kind account { name plan serviceTokens(includeDeleted: true) { name } } } "
        'check(resource: JOBS, access: READ, projectId: "p") { allowed reason } '
        "checks(requests: []) { allowed } }"
    )
    plan = compiled.plan_for(CORE_SCHEMA, document_of(query), None)
    assert isinstance(plan, compiled.OperationPlan)
    viewer, check, checks = plan.root.fields
    assert viewer.resolve is not viewer.field_def.resolve and check.resolve is not check.field_def.resolve
    assert checks.resolve is checks.field_def.resolve  # a list argument: converted per call, by Strawberry
    for who, context in sorted(contexts.items()):
        data, errors = same(live, query, context)
        assert data is not None or errors, who
    mixed = "query($p: ID) { check(resource: JOBS, access: READ, projectId: $p) { allowed reason } }"
    plan = compiled.plan_for(CORE_SCHEMA, document_of(mixed), None)
    assert isinstance(plan, compiled.OperationPlan)
    assert plan.root.fields[0].resolve is plan.root.fields[0].field_def.resolve
    for context in contexts.values():
        same(live, mixed, context, {"p": "p"})


@strawberry.type
class Parameters:
    """Resolvers asking for what Strawberry passes by parameter: self, root, parent, info under any name."""

    label: str

    @strawberry.field
    def own(self, times: int = 2) -> str:
        return self.label * times

    @strawberry.field
    def rooted(self, root: Any, word: str) -> str:
        return f"{root.label}:{word}"

    @strawberry.field
    def parented(self, parent: strawberry.Parent[Any], tag: str = "t") -> str:
        return f"{parent.label}/{tag}"

    @strawberry.field
    def named_info(self, inf: strawberry.Info, n: int) -> str:
        return f"{inf.field_name}:{inf.path.key}:{n}:{type(inf).__name__}"

    @strawberry.field
    def plain_info(self, info: strawberry.Info) -> list[str]:
        return [info.field_name, str(info.path.key), info.python_name]

    @strawberry.field
    @staticmethod
    def alone(flag: bool) -> bool:
        return not flag

    @strawberry.field
    async def later(self, info: strawberry.Info, word: str = "w") -> str:
        return f"{info.field_name}:{word}:{self.label}"


@strawberry.type
class ParametersQuery:
    @strawberry.field
    def item(self) -> Parameters:
        return Parameters(label="x")


async def test_direct_resolvers_pass_self_root_parent_and_info_as_strawberry_does():
    schema = strawberry.Schema(query=ParametersQuery)._schema
    query = """{ item { own o3: own(times: 3) rooted(word: "r") parented parented2: parented(tag: "u")
        namedInfo(n: 4) plainInfo alone(flag: true) later l2: later(word: "v") } }"""
    fields = schema.get_type("Parameters").fields  # type: ignore[union-attr]
    for name, arguments in {"own": {}, "rooted": {"word": "r"}, "namedInfo": {"n": 4}, "alone": {"flag": True}}.items():
        assert compiled.seams.direct_resolver(fields[name], arguments) is not None, name
    planned, core = await both(schema, query)
    assert planned == core and core[2] == [], core
    assert core[1]["item"]["namedInfo"] == "namedInfo:namedInfo:4:Info" and core[1]["item"]["l2"] == "later:v:x"


async def test_graphql_requests_run_on_their_plan(server: Server):
    seeded = await server.bootstrap("Planned")
    query = "{ viewer { kind account { name plan } } }"
    await server.gql(query, token=seeded.token)  # a document is kept from its second sighting (documents.py)
    # Another body for the same document: the same body would be answered from memory (kept_answers.py).
    reply = await server.gql(query, {}, token=seeded.token)
    assert reply.status == 200 and reply.data == {
        "viewer": {"kind": "USER", "account": {"name": "Planned", "plan": "ENTERPRISE"}}
    }, reply.body
    document = server.runtime.documents.get(query)
    cache = compiled._CACHES[CORE_SCHEMA]
    entries = [plan for ast, plan in cache._entries.values() if ast is document.ast]
    assert len(entries) == 1 and isinstance(entries[0], compiled.OperationPlan), entries


async def test_a_document_the_compiler_fails_on_runs_on_graphql_core(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: Any
):
    seeded = await server.bootstrap("Unplanned")

    def broken(*args: Any) -> None:
        raise RuntimeError("a bug in the compiler")

    monkeypatch.setattr(compiled.OperationPlan, "__init__", broken)
    query = "{ account { name } unplanned: viewer { kind } }"
    with caplog.at_level("WARNING", logger="tokengate.graphql.engine.compiled"):
        reply = await server.gql(query, token=seeded.token)
    assert reply.status == 200 and reply.data == {"account": {"name": "Unplanned"}, "unplanned": {"kind": "USER"}}
    assert str(compiled.plan_for(CORE_SCHEMA, server.runtime.documents.get(query), None)) == (
        "compiling failed: RuntimeError"
    )
    assert any("could not compile a query" in record.getMessage() for record in caplog.records)


def test_the_guard_notices_resolve_info_unlike_the_execution_contexts(monkeypatch: pytest.MonkeyPatch):
    assert compiled.info_problem() is None
    built = compiled.Run.info
    monkeypatch.setattr(compiled.Run, "info", lambda run, field, path: built(run, field, path)._replace(root_value=1))
    assert compiled.info_problem() == "the execution context's resolve info differs in ['root_value']"
