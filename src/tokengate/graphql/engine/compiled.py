"""Compiled execution plans: a validated query operation turned, once, into the work it always does.

graphql-core decides everything about a query on every request: which fields a selection set collects
(fragments, type conditions, ``@skip``/``@include``), each field's definition, its literal arguments, and, per
value, how to complete it (non-null, list, leaf, object). A plan decides all that once per (document,
operation) and keeps only the per-request work: call each field's resolver (Strawberry's wrapper, so
``@requires`` and argument conversion run exactly as under graphql-core) or read a Strawberry "basic" field's
attribute directly, and complete each value with the step its type needs, building the result dict directly.

What stays graphql-core's own, on purpose:
- field collection: the plan calls graphql-core's ``collect_fields``/``collect_subfields`` at compile time
  (allowed only when no directive depends on a variable), so grouping and fragment rules are its own;
- variables: coerced per request by ``get_variable_values``; a request whose variables do not coerce is
  answered by graphql-core itself (nothing has run yet), as is any operation that is not a query;
- every error: raised, located and recorded by graphql-core's ``Executor`` methods (``handle_field_error``
  with its ``CollectedErrors``, ``ensure_valid_runtime_type``) on the executor ``Executor.build`` would make
  for the request, made when first needed (``Run``); it also settles abandoned awaitables;
- anything a plan does not cover itself is handed to that executor at the point where graphql-core would
  reach it: ``__schema``/``__type`` fields and lists of lists (``execute_field``), values that are not a
  list or tuple where a list is expected (``complete_value``). The concurrency is graphql-core's: sibling
  awaitables are gathered the same way, one awaitable alone is awaited without a task.
Resolvers get the resolve info Strawberry's execution context builds (checked against it by the guard).

Documents that are not compiled (``NotCompiled`` says why) run on graphql-core with Strawberry's execution
context: mutations (serial, rare, and mostly resolver work), subscriptions, operations carrying directives,
``@skip``/``@include`` on variables, any other directive in the operation, fragment variables, documents too
long to be cached, and every document when graphql-core or Strawberry is not what this module was verified
against (``plan_problem``; warned once). Strawberry's internals are read in seams.py only.
``tests/api/test_compiled_differential.py`` proves the plans answer exactly as graphql-core does.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final

import graphql
from graphql import (
    DirectiveNode,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLAbstractType,
    GraphQLError,
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    Node,
    OperationDefinitionNode,
    OperationType,
    TypeNameMetaFieldDef,
    Undefined,
    VariableNode,
    Visitor,
    assert_valid_schema,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    parse,
    visit,
)
from graphql.execution import collect_fields as collect_module
from graphql.execution import executor as executor_module
from graphql.execution import values as values_module
from graphql.execution.collect_fields import FieldDetails, FragmentDetails, collect_fields, collect_subfields
from graphql.execution.executor import (
    Executor,
    collect_iterator_awaitables,
    default_field_resolver,
    default_type_resolver,
    invalid_return_type_error,
)
from graphql.execution.incremental import IncrementalExecutor
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.pyutils import Path, gather_with_cancel
from graphql.pyutils import inspect as inspect_value
from graphql.type import GraphQLResolveInfoHelpers, scalars
from graphql.type.introspection import MetaFields
from strawberry.execution import optimized_is_awaitable

from tokengate.graphql.engine import seams
from tokengate.graphql.engine.documents import MAX_CACHED_TEXT, Document
from tokengate.graphql.engine.seams import basic_field

log = logging.getLogger("tokengate.graphql.engine.compiled")

# The graphql-core versions the plans were verified against (tests/api/test_compiled_differential.py): from
# the first, up to but excluding the second. Widen it only after running that test on the new version.
VERIFIED_GRAPHQL_CORE: Final = ((3, 3, 2), (3, 4, 0))
PLAN_CACHE_SIZE: Final = 1024  # as many as the document cache holds
MAX_COERCION_ERRORS: Final = 50  # graphql-core's default, which operations.run uses

is_awaitable: Final = optimized_is_awaitable  # what operations.run passes to graphql-core
# Exact types that are never awaitable, never an exception, never Undefined: a value of one needs no check
# (``optimized_is_awaitable`` answers False for them without looking further, so skipping it changes nothing).
ORDINARY: Final = frozenset({str, int, float, bool})
NEVER_AWAITABLE: Final = frozenset({str, int, float, bool, type(None), dict, list, tuple})
IMMUTABLE_ARGUMENTS: Final = (str, int, float, bool, type(None), enum.Enum)
# graphql-core's output coercions that answer a value of exactly this type with the value itself (their first
# step: ``if isinstance(output_value, str): return output_value``): a plan stores such a value without the call.
# Int and Float are not here: they check the range. tests/api/test_library_seams.py holds them to it.
UNCHANGED_BY: Final[dict[Callable[[Any], Any], type]] = {
    scalars.serialize_string: str,
    scalars.serialize_id: str,
    scalars.serialize_boolean: bool,
}


class NotCompiled(Exception):
    """Why an operation runs on graphql-core instead of a plan."""


# --- paths --------------------------------------------------------------------------------------------------

# A plan passes a value's position down as a plain tuple (parent, key, type name): graphql-core's Path is a
# NamedTuple of the same three, so equal, but a NamedTuple costs a Python-level call to make. Wherever a Path
# leaves the plan (an error, a resolver's info, the executor), ``real_path`` makes the Path graphql-core
# would have made.
RawPath = tuple[Any, str | int, str | None]


def real_path(path: Path | RawPath) -> Path:
    if type(path) is Path:
        return path
    prev, key, typename = path
    return Path(None if prev is None else real_path(prev), key, typename)


# --- what the plan does per field ---------------------------------------------------------------------------

# How a field gets its value.
TYPENAME: Final = 0  # __typename: the parent type's name, a constant
PLAIN_LEAF: Final = 1  # a Strawberry basic field of scalar or enum type: the attribute, coerced inline
ATTRIBUTE: Final = 2  # a Strawberry basic field of another type: the attribute, then its completion
RESOLVER: Final = 3  # the field's resolve function (Strawberry's wrapper: @requires, argument conversion)
CORE_FIELD: Final = 4  # the whole field on graphql-core's executor (__schema, __type, lists of lists)

Complete = Callable[["Run", Any, Any, Any], Any]  # (request, value, path, info) -> completed


class FieldPlan:
    """One response key of a selection set: how its value is obtained and completed."""

    __slots__ = (
        "arguments",
        "attribute",
        "complete",
        "details",
        "field_def",
        "key",
        "kind",
        "leaf",
        "name",
        "needs_info",
        "node",
        "nodes",
        "non_null",
        "null_message",
        "parent_type",
        "read",
        "resolve",
        "return_type",
        "typename",
        "unchanged",
    )

    def __init__(self, key: str, parent_type: GraphQLObjectType, details: list[FieldDetails], field_def: GraphQLField):
        self.key = key
        self.parent_type = parent_type
        self.name = details[0].node.name.value
        self.typename = parent_type.name
        self.details = details
        self.nodes: list[FieldNode] = [detail.node for detail in details]
        self.node = details[0].node
        self.field_def = field_def
        self.return_type: GraphQLOutputType = field_def.type
        self.non_null = is_non_null_type(field_def.type)
        self.null_message = f"Cannot return null for non-nullable field {parent_type}.{self.node.name.value}."
        self.kind = RESOLVER
        self.resolve: Any = field_def.resolve or default_field_resolver
        self.arguments: dict[str, Any] | None = {}  # None: coerced per request (variables, mutable values)
        self.read: Any = None
        self.attribute = ""
        self.leaf: Any = None  # PLAIN_LEAF: the leaf type's coerce_output_value
        self.unchanged: type | None = None  # PLAIN_LEAF: the exact type whose values ``leaf`` answers as they are
        self.needs_info = False  # completion reads info (is_type_of, resolve_type) though the field is an attribute
        self.complete: Complete = complete_nothing


class SelectionPlan:
    """The collected fields of one selection set on one object type, in response order; ``entries`` holds
    what the loop reads of each field, unpacked in one step."""

    __slots__ = ("entries", "fields", "type_name")

    def __init__(self, type_name: str, fields: list[FieldPlan]):
        self.type_name = type_name
        self.fields = fields
        self.entries = tuple((f.kind, f, f.key, f.read, f.attribute, f.leaf, f.unchanged, f.non_null) for f in fields)


def complete_nothing(run: Run, value: Any, path: Any, info: Any) -> Any:  # pragma: no cover
    raise AssertionError("a field plan was used before it was compiled")


# --- one request --------------------------------------------------------------------------------------------


class Run:
    """One request on a plan: what graphql-core's executor would hold, and the executor itself, made only when
    something needs it (an error, a field handed to graphql-core, abandoned work to settle). A request
    without any of those never builds one: its result is then what ``build_response`` answers when nothing
    was collected (no hooks, no incremental work)."""

    __slots__ = ("_executor", "_helpers", "context", "fragment_definitions", "plan", "variable_values")

    def __init__(self, plan: OperationPlan, context: Any, variable_values: VariableValues):
        self.plan = plan
        self.context = context
        self.variable_values = variable_values
        self.fragment_definitions = dict(plan.fragment_definitions)  # resolvers see it (info.fragments)
        self._executor: Executor[Any] | None = None
        self._helpers: GraphQLResolveInfoHelpers | None = None

    @property
    def executor(self) -> Executor[Any]:
        """The executor ``Executor.build`` makes for this request (operations.run passes no other options)."""
        executor = self._executor
        if executor is None:
            plan = self.plan
            executor = self._executor = plan.executor_class(
                plan.schema,
                self.fragment_definitions,
                plan.fragments,
                None,
                self.context,
                plan.operation,
                self.variable_values,
                default_field_resolver,
                default_type_resolver,
                default_field_resolver,
                False,
                None,
                is_awaitable,
                None,
                hide_suggestions=False,
                abort_signal=None,
                hooks=None,
            )
        return executor

    def info(self, field: FieldPlan, path: Path) -> Any:
        """The resolve info Strawberry's execution context builds for ``field`` at ``path``
        (``build_resolve_info``; ``find_problem`` checks that the two agree)."""
        helpers = self._helpers
        if helpers is None:  # the executor's gather and track, whenever it is made
            helpers = self._helpers = GraphQLResolveInfoHelpers(self.gather_async_work, self.track_async_work)
        plan = self.plan
        return seams.ResolveInfo(
            field.name,
            list(field.nodes),
            field.return_type,
            field.parent_type,
            path,
            plan.schema,
            self.fragment_definitions,
            None,
            plan.operation,
            self.variable_values.coerced,
            self.context,
            is_awaitable,
            None,
            helpers,
            None,  # type: ignore[arg-type] # Strawberry's operation_extensions: None unless passed to execute
        )

    def gather_async_work(self, values: Any) -> Any:
        return self.executor.gather_async_work(values)

    def track_async_work(self, values: Any) -> None:
        self.executor.track_async_work(values)

    def handle_field_error(self, raw_error: Exception, return_type: Any, details: Any, path: Path) -> None:
        self.executor.handle_field_error(raw_error, return_type, details, path)

    def settle_in_background(self, awaitables: list[Any]) -> None:
        self.executor.settle_in_background(awaitables)

    def response(self, data: dict[str, Any] | None) -> Any:
        executor = self._executor
        if executor is None:
            return ExecutionResult(data, None)
        return executor.build_response(data)

    def failed(self, error: GraphQLError) -> Any:
        """A non-null root field failed: no data, as graphql-core's ``execute_operation`` answers."""
        self.executor.collected_errors.add(error, None)
        return self.response(None)


# --- executing a plan ---------------------------------------------------------------------------------------


def execute_selection(run: Run, selection: SelectionPlan, source: Any, path: Any) -> Any:
    """graphql-core's ``execute_fields`` for a compiled selection: a dict, or an awaitable of it."""
    results: dict[str, Any] = {}
    awaitable_fields: list[str] = []
    typename = selection.type_name
    try:
        for kind, field, key, read, attribute, coerce, unchanged, non_null in selection.entries:
            if kind == PLAIN_LEAF:
                try:
                    value = read(source, attribute)
                    if type(value) is unchanged:  # what the coercion answers as it is (UNCHANGED_BY)
                        results[key] = value
                        continue
                    if value is None:
                        if not non_null:
                            results[key] = None
                            continue
                    elif type(value) in ORDINARY or not (
                        is_awaitable(value) or isinstance(value, Exception) or value is Undefined
                    ):
                        coerced = coerce(value)
                        if type(coerced) in ORDINARY:
                            results[key] = coerced
                            continue
                        if coerced is None or coerced is Undefined:
                            raise TypeError(leaf_message(field.return_type, value, coerced))
                        if is_awaitable(coerced):
                            results[key] = await_completed(run, field, coerced, (path, key, typename))
                            awaitable_fields.append(key)
                        else:
                            results[key] = coerced
                        continue
                except Exception as raw_error:
                    run.handle_field_error(
                        raw_error, field.return_type, field.details, real_path((path, key, typename))
                    )
                    results[key] = None
                    continue
                # None where the schema says non-null, an exception, an awaitable, Undefined: the general way.
                result = complete_resolved(run, field, value, (path, key, typename), None)
            elif kind == TYPENAME:
                results[key] = typename
                continue
            else:
                result = execute_field(run, field, source, (path, key, typename))
            results[key] = result
            if type(result) not in NEVER_AWAITABLE and is_awaitable(result):
                awaitable_fields.append(key)
    except Exception:
        if awaitable_fields:  # as graphql-core: siblings already started are settled, not abandoned
            run.settle_in_background([results[key] for key in awaitable_fields])
        raise
    if not awaitable_fields:
        return results
    return gather_fields(results, awaitable_fields)


def execute_field(run: Run, field: FieldPlan, source: Any, path: Any) -> Any:
    """graphql-core's ``execute_field`` for one compiled field."""
    kind = field.kind
    if kind == CORE_FIELD:
        return run.executor.execute_field(field.parent_type, source, field.details, real_path(path), None)
    info = None
    try:
        if kind == RESOLVER:
            path = real_path(path)
            info = run.info(field, path)
            arguments = field.arguments
            if arguments is None:
                arguments = get_argument_values(field.field_def, field.node, run.variable_values, None, False)
            result = field.resolve(source, info, **arguments)
        else:
            result = field.read(source, field.attribute)
            if field.needs_info:
                path = real_path(path)
                info = run.info(field, path)
    except Exception as raw_error:
        run.handle_field_error(raw_error, field.return_type, field.details, real_path(path))
        return None
    return complete_resolved(run, field, result, path, info)


def complete_resolved(run: Run, field: FieldPlan, result: Any, path: Any, info: Any) -> Any:
    """The rest of graphql-core's ``execute_field`` once the resolver answered ``result``."""
    try:
        if type(result) not in NEVER_AWAITABLE and is_awaitable(result):
            return complete_awaitable_value(run, field, result, path, info)
        completed = field.complete(run, result, path, info)
        if type(completed) not in NEVER_AWAITABLE and is_awaitable(completed):
            return await_completed(run, field, completed, path)
    except Exception as raw_error:
        run.handle_field_error(raw_error, field.return_type, field.details, real_path(path))
        return None
    return completed


async def complete_awaitable_value(run: Run, field: FieldPlan, result: Any, path: Any, info: Any) -> Any:
    try:
        resolved = await result
        completed = field.complete(run, resolved, path, info)
        if type(completed) not in NEVER_AWAITABLE and is_awaitable(completed):
            completed = await completed
    except Exception as raw_error:
        run.handle_field_error(raw_error, field.return_type, field.details, real_path(path))
        completed = None
    return completed


async def await_completed(run: Run, field: FieldPlan, completed: Any, path: Any) -> Any:
    try:
        return await completed
    except Exception as raw_error:
        run.handle_field_error(raw_error, field.return_type, field.details, real_path(path))
        return None


def leaf_message(leaf: Any, value: Any, coerced: Any) -> str:
    """graphql-core's ``complete_leaf_value`` message for a coercion that returned nothing (``leaf`` may still
    be wrapped in non-null: the message names the named type, as graphql-core's does)."""
    while isinstance(leaf, GraphQLNonNull):
        leaf = leaf.of_type
    return (
        f"Expected `{inspect_value(leaf)}.coerce_output_value({inspect_value(value)})` to return"
        f" non-nullable value, returned: {inspect_value(coerced)}"
    )


# --- completions, one per return type shape (made at compile time) ------------------------------------------
#
# Each is graphql-core's ``complete_value`` for one type, with the non-null wrapper folded in: an exception
# value is raised, null is null (or, for a non-null type, the "Cannot return null" field error), anything
# else gets the type's own completion. graphql-core checks the same things in the same order, one call
# deeper for a non-null type; the completions of lists, objects and abstract types never answer null, so
# the non-null check after them can only fail on a null value.


def leaf_completion(leaf: GraphQLLeafType, non_null: bool, message: str) -> Complete:
    """``complete_leaf_value``: the type's own output coercion; nothing back is an error."""
    coerce = seams.leaf_coercion(leaf)

    def complete(run: Run, value: Any, path: Any, info: Any) -> Any:
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            if non_null:
                raise TypeError(message)
            return None
        coerced = coerce(value)
        if coerced is Undefined or coerced is None:
            raise TypeError(leaf_message(leaf, value, coerced))
        return coerced

    return complete


def object_completion(
    object_type: GraphQLObjectType, selection: SelectionPlan, details: list[FieldDetails], non_null: bool, message: str
) -> Complete:
    """``complete_object_value``: ``is_type_of`` when the type has one, then the compiled selection."""
    is_type_of = object_type.is_type_of

    def complete(run: Run, value: Any, path: Any, info: Any) -> Any:
        if value is None or value is Undefined:
            if non_null:
                raise TypeError(message)
            return None
        if isinstance(value, Exception):
            raise value
        if is_type_of is not None:
            matches = is_type_of(value, info)
            if matches is not True and is_awaitable(matches):  # (a bool never is)
                return execute_checked_subfields(run, object_type, selection, details, value, path, matches)
            if not matches:
                raise invalid_return_type_error(object_type, value, details)
        return execute_selection(run, selection, value, path)

    return complete


async def execute_checked_subfields(
    run: Run,
    object_type: GraphQLObjectType,
    selection: SelectionPlan,
    details: list[FieldDetails],
    value: Any,
    path: Any,
    matches: Any,
) -> Any:
    if not await matches:
        raise invalid_return_type_error(object_type, value, details)
    fields = execute_selection(run, selection, value, path)
    if type(fields) not in NEVER_AWAITABLE and is_awaitable(fields):
        return await fields
    return fields


def abstract_completion(
    abstract_type: GraphQLAbstractType,
    completions: dict[str, tuple[GraphQLObjectType, Complete]],
    details: list[FieldDetails],
    non_null: bool,
    message: str,
) -> Complete:
    """``complete_abstract_value``: the type's ``resolve_type`` (or the executor's), checked by the executor's
    ``ensure_valid_runtime_type``, then the completion compiled for that object type."""

    def complete_as(run: Run, runtime_type: GraphQLObjectType, value: Any, path: Any, info: Any) -> Any:
        compiled = completions.get(runtime_type.name)
        if compiled is None or compiled[0] is not runtime_type:  # pragma: no cover - checked as a possible type
            return run.executor.complete_object_value(runtime_type, details, info, real_path(path), value, None)
        return compiled[1](run, value, path, info)

    async def await_complete_object_value(run: Run, runtime_type: Any, value: Any, path: Any, info: Any) -> Any:
        checked = run.executor.ensure_valid_runtime_type(await runtime_type, abstract_type, details, info, value)
        completed = complete_as(run, checked, value, path, info)
        if type(completed) not in NEVER_AWAITABLE and is_awaitable(completed):
            return await completed
        return completed  # pragma: no cover - an object's completion of a sync value

    def complete(run: Run, value: Any, path: Any, info: Any) -> Any:
        if isinstance(value, Exception):
            raise value
        if value is None or value is Undefined:
            if non_null:
                raise TypeError(message)
            return None
        resolve_type = abstract_type.resolve_type or default_type_resolver
        runtime_type = resolve_type(value, info, abstract_type)
        if is_awaitable(runtime_type):
            return await_complete_object_value(run, runtime_type, value, path, info)
        checked = run.executor.ensure_valid_runtime_type(runtime_type, abstract_type, details, info, value)
        return complete_as(run, checked, value, path, info)

    return complete


def list_completion(list_type: GraphQLList[Any], item: Complete, field: FieldPlan, non_null: bool) -> Complete:
    """``complete_list_value`` for a list or tuple (what resolvers return); anything else (a generator, an
    async iterable, not an iterable at all) is completed by the executor's own ``complete_value``."""
    item_type = list_type.of_type
    details = field.details
    message = field.null_message

    def complete(run: Run, value: Any, path: Any, info: Any) -> Any:
        if value is None or value is Undefined:
            if non_null:
                raise TypeError(message)
            return None
        if type(value) is not list and type(value) is not tuple:
            path = real_path(path)
            if info is None:
                info = run.info(field, path)
            return run.executor.complete_value(list_type, details, info, path, value, None)
        completed_results: list[Any] = []
        append = completed_results.append
        awaitable_indices: list[int] = []
        iterator = iter(value)
        index = 0
        try:
            for entry in iterator:
                item_path = (path, index, None)
                if is_awaitable(entry):
                    append(complete_awaitable_item(run, item, item_type, details, entry, item_path, info))
                    awaitable_indices.append(index)
                else:
                    try:
                        completed = item(run, entry, item_path, info)
                        if type(completed) not in NEVER_AWAITABLE and is_awaitable(completed):
                            append(await_completed_item(run, item_type, details, completed, item_path))
                            awaitable_indices.append(index)
                        else:
                            append(completed)
                    except Exception as raw_error:
                        run.handle_field_error(raw_error, item_type, details, real_path(item_path))
                        append(None)
                index += 1
        except Exception:
            pending = [completed_results[i] for i in awaitable_indices]
            pending.extend(collect_iterator_awaitables(iterator, is_awaitable))
            if pending:
                run.settle_in_background(pending)
            raise
        if not awaitable_indices:
            return completed_results
        return gather_items(completed_results, awaitable_indices)

    return complete


async def complete_awaitable_item(
    run: Run, item: Complete, item_type: Any, details: Any, entry: Any, item_path: Any, info: Any
) -> Any:
    try:
        completed = item(run, await entry, item_path, info)
        if type(completed) not in NEVER_AWAITABLE and is_awaitable(completed):
            completed = await completed
    except Exception as raw_error:
        run.handle_field_error(raw_error, item_type, details, real_path(item_path))
        return None
    return completed


async def await_completed_item(run: Run, item_type: Any, details: Any, completed: Any, path: Any) -> Any:
    try:
        return await completed
    except Exception as raw_error:
        run.handle_field_error(raw_error, item_type, details, real_path(path))
        return None


async def gather_items(completed_results: list[Any], awaitable_indices: list[int]) -> list[Any]:
    if len(awaitable_indices) == 1:
        index = awaitable_indices[0]
        completed_results[index] = await completed_results[index]
    else:
        awaited = await gather_with_cancel(*(completed_results[index] for index in awaitable_indices))
        for index, value in zip(awaitable_indices, awaited, strict=True):
            completed_results[index] = value
    return completed_results


# --- compiling ----------------------------------------------------------------------------------------------


class OperationPlan:
    """A query operation of one document, compiled against one schema."""

    __slots__ = ("core_fields", "executor_class", "fragment_definitions", "fragments", "operation", "root", "schema")

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode):
        self.schema = schema
        self.operation = operation
        self.executor_class = seams.ExecutionContext  # Strawberry's, the one operations.run gives graphql-core
        self.fragment_definitions: dict[str, FragmentDefinitionNode] = {}
        self.fragments: dict[str, FragmentDetails] = {}
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                if definition.variable_definitions:
                    raise NotCompiled("fragment variables")
                self.fragment_definitions[definition.name.value] = definition
                self.fragments[definition.name.value] = FragmentDetails(definition, None)
        self.core_fields = 0  # fields handed whole to graphql-core
        root_type = schema.query_type
        if root_type is None:
            raise NotCompiled("the schema has no query type")
        try:
            collected = collect_fields(schema, self.fragments, no_variables(schema), root_type, operation)
            self.root = self._selection(root_type, collected.grouped_field_set, collected.new_defer_usages)
        except RecursionError:
            raise NotCompiled("selections nested too deeply") from None

    def execute(self, context: Any, variables: dict[str, Any] | None) -> Any:
        """The ``ExecutionResult`` (or an awaitable of it) graphql-core would answer; None when the variables
        do not coerce (graphql-core answers those)."""
        schema, operation = self.schema, self.operation
        variable_values = get_variable_values(
            schema, operation.variable_definitions or (), variables or {}, max_errors=MAX_COERCION_ERRORS
        )
        if isinstance(variable_values, list):
            return None
        run = Run(self, context, variable_values)
        try:
            data = execute_selection(run, self.root, None, None)
            if type(data) is not dict and is_awaitable(data):
                return await_response(run, data)
        except GraphQLError as error:
            return run.failed(error)
        return run.response(data)

    # compile time

    def _selection(
        self, object_type: GraphQLObjectType, grouped: dict[str, list[FieldDetails]], defers: Any
    ) -> SelectionPlan:
        if defers:
            raise NotCompiled("@defer")
        return SelectionPlan(
            object_type.name, [self._field(object_type, key, details) for key, details in grouped.items()]
        )

    def _subselection(self, object_type: GraphQLObjectType, details: list[FieldDetails]) -> SelectionPlan:
        collected = collect_subfields(
            self.schema, self.fragments, no_variables(self.schema), self.operation, object_type, details
        )
        return self._selection(object_type, collected.grouped_field_set, collected.new_defer_usages)

    def _field(self, parent_type: GraphQLObjectType, key: str, details: list[FieldDetails]) -> FieldPlan:
        node = details[0].node
        field_def = self.schema.get_field(parent_type, node.name.value)
        if field_def is None:
            raise NotCompiled(f"no field {parent_type.name}.{node.name.value}")  # pragma: no cover - validated
        field = FieldPlan(key, parent_type, details, field_def)
        if node.name.value.startswith("__"):
            if field_def is TypeNameMetaFieldDef and field_def.resolve is MetaFields.type_name:
                field.kind = TYPENAME
            else:  # __schema, __type: introspection is graphql-core's
                field.kind = CORE_FIELD
                self.core_fields += 1
            return field
        if is_list_type(unwrap_non_null(get_item_type(field.return_type))):
            field.kind = CORE_FIELD  # a list of lists: graphql-core resolves and completes it
            self.core_fields += 1
            return field
        if field_def.args or node.arguments:
            field.arguments = literal_arguments(field_def, node)
        plain = basic_field(field_def)
        if plain is not None:
            field.kind = ATTRIBUTE
            field.read, field.attribute = plain
        elif field.arguments is not None:
            direct = seams.direct_resolver(field_def, field.arguments)  # these arguments converted once, kept
            if direct is not None:
                field.resolve = direct
        field.complete = self._completion(field.return_type, field)
        named = unwrap_non_null(field.return_type)
        if field.kind == ATTRIBUTE and is_leaf_type(named):
            field.kind = PLAIN_LEAF
            field.leaf = seams.leaf_coercion(named)
            field.unchanged = UNCHANGED_BY.get(field.leaf)
        return field

    def _completion(self, return_type: GraphQLOutputType, field: FieldPlan) -> Complete:
        non_null = isinstance(return_type, GraphQLNonNull)
        type_: Any = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
        message = field.null_message
        if isinstance(type_, GraphQLList):
            return list_completion(type_, self._completion(type_.of_type, field), field, non_null)
        if is_leaf_type(type_):
            return leaf_completion(type_, non_null, message)
        if is_object_type(type_):
            if type_.is_type_of is not None and not seams.info_free_type_check(type_.is_type_of):
                field.needs_info = True
            selection = self._subselection(type_, field.details)
            return object_completion(type_, selection, field.details, non_null, message)
        if is_abstract_type(type_):
            field.needs_info = True
            completions: dict[str, tuple[GraphQLObjectType, Complete]] = {}
            for possible in self.schema.get_possible_types(type_):
                selection = self._subselection(possible, field.details)
                completions[possible.name] = (possible, object_completion(possible, selection, field.details, True, ""))
            return abstract_completion(type_, completions, field.details, non_null, message)
        raise NotCompiled(f"unexpected output type {return_type}")  # pragma: no cover


def unwrap_non_null(type_: Any) -> Any:
    return type_.of_type if isinstance(type_, GraphQLNonNull) else type_


def get_item_type(type_: Any) -> Any:
    """The item type of a (non-null) list type; None for any other type."""
    type_ = unwrap_non_null(type_)
    return type_.of_type if isinstance(type_, GraphQLList) else None


def no_variables(schema: GraphQLSchema) -> Any:
    """The variable values of an operation without variables (collection at compile time reads none: every
    directive it evaluates has literal arguments, checked by ``check_operation``)."""
    values = get_variable_values(schema, (), {})
    assert not isinstance(values, list)
    return values


def literal_arguments(field_def: GraphQLField, node: FieldNode) -> dict[str, Any] | None:
    """A field's arguments when they are literals, coerced once by graphql-core's ``get_argument_values``;
    None (coerce per request) when they use a variable, when coercion fails (the request reports it where
    graphql-core does), or when a value is one a resolver could change (a list, an input object)."""
    if any(uses_variable(argument.value) for argument in node.arguments or ()):
        return None
    try:
        arguments = get_argument_values(field_def, node, None, None, False)
    except Exception:
        return None
    if all(isinstance(value, IMMUTABLE_ARGUMENTS) for value in arguments.values()):
        return arguments
    return None


class Usage(Visitor):
    """The directives and whether any variable occurs in a piece of a document (graphql-core's visitor)."""

    def __init__(self, root: Node):
        super().__init__()
        self.directives: list[DirectiveNode] = []
        self.variables = False
        visit(root, self)

    def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
        self.directives.append(node)

    def enter_variable(self, node: VariableNode, *_: Any) -> None:
        self.variables = True


def uses_variable(value: Node) -> bool:
    return Usage(value).variables


def check_operation(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode) -> None:
    """Raise ``NotCompiled`` for what a plan does not run: not a query, directives graphql-core would
    evaluate per request (or handles beyond field collection), incremental delivery."""
    if operation.operation != OperationType.QUERY:
        raise NotCompiled(f"a {operation.operation.value}")
    if operation.directives:
        raise NotCompiled("directives on the operation")
    if schema.get_directive("defer") or schema.get_directive("stream"):
        raise NotCompiled("the schema has @defer or @stream")
    for directive in Usage(document).directives:
        if directive.name.value not in ("skip", "include"):
            raise NotCompiled(f"@{directive.name.value}")
        if any(uses_variable(argument.value) for argument in directive.arguments or ()):
            raise NotCompiled(f"@{directive.name.value} on a variable")


async def gather_fields(results: dict[str, Any], awaitable_fields: list[str]) -> dict[str, Any]:
    """The awaited values of ``awaitable_fields`` into ``results``, as graphql-core's ``execute_fields`` does."""
    if len(awaitable_fields) == 1:  # as graphql-core: no task for a single awaitable
        key = awaitable_fields[0]
        results[key] = await results[key]
    else:
        awaited = await gather_with_cancel(*(results[key] for key in awaitable_fields))
        results.update(zip(awaitable_fields, awaited, strict=True))
    return results


async def await_response(run: Run, data: Awaitable[Any]) -> Any:
    try:
        awaited = await data
    except GraphQLError as error:
        return run.failed(error)
    return run.response(awaited)


# --- the cache and the entry point --------------------------------------------------------------------------

PlanOrReason = OperationPlan | NotCompiled


class PlanCache:
    """Plans by (document, operation name), least recently used dropped first; one per schema."""

    def __init__(self, size: int = PLAN_CACHE_SIZE):
        self.size = size
        # Keyed by the id of the document's syntax tree, kept alive in the entry so the id is not reused.
        self._entries: OrderedDict[tuple[int, str | None], tuple[DocumentNode, PlanOrReason]] = OrderedDict()

    def get(self, schema: GraphQLSchema, document: Document, operation_name: str | None) -> PlanOrReason:
        ast = document.ast
        assert ast is not None
        key = (id(ast), operation_name)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry[1]
        plan = compile_operation(schema, document, operation_name)
        self._entries[key] = (ast, plan)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return plan

    def __len__(self) -> int:
        return len(self._entries)


def compile_operation(schema: GraphQLSchema, document: Document, operation_name: str | None) -> PlanOrReason:
    operation = document.operation(operation_name)
    if operation is None or document.ast is None:
        return NotCompiled("no such operation")
    if document.validation_errors(schema):  # (cached: operations.run validated it already)
        return NotCompiled("an invalid document")
    try:
        check_operation(schema, document.ast, operation)
        return OperationPlan(schema, document.ast, operation)
    except NotCompiled as reason:
        return reason
    except Exception as error:  # a bug here must cost speed, never an answer: graphql-core runs it
        log.warning("could not compile a query; graphql-core runs it", exc_info=True)
        return NotCompiled(f"compiling failed: {type(error).__name__}")


_CACHES: weakref.WeakKeyDictionary[GraphQLSchema, PlanCache] = weakref.WeakKeyDictionary()


def plan_for(schema: GraphQLSchema, document: Document, operation_name: str | None) -> PlanOrReason:
    """The plan of the chosen operation of a validated document, or why there is none."""
    problem = plan_problem()
    if problem is not None:
        return NotCompiled(problem)
    if document.ast is None:
        return NotCompiled("a syntax error")
    if len(document.text) > MAX_CACHED_TEXT:
        return NotCompiled("a document too long to be cached")
    cache = _CACHES.get(schema)
    if cache is None:
        assert_valid_schema(schema)
        cache = _CACHES.setdefault(schema, PlanCache())
    return cache.get(schema, document, operation_name)


def execute_compiled(
    schema: GraphQLSchema,
    document: Document,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    context: Any,
) -> Any:
    """What graphql-core's ``execute`` answers for a validated document (an ``ExecutionResult`` or an awaitable
    of it), from the operation's plan; None when there is no plan or the variables do not coerce: then the
    caller runs graphql-core."""
    plan = plan_for(schema, document, operation_name)
    if isinstance(plan, NotCompiled):
        return None
    return plan.execute(context, variables)


# --- the guard ----------------------------------------------------------------------------------------------

EXECUTOR_METHODS = {
    "__init__": [
        "self",
        "schema",
        "fragment_definitions",
        "fragments",
        "root_value",
        "context_value",
        "operation",
        "variable_values",
        "field_resolver",
        "type_resolver",
        "subscribe_field_resolver",
        "enable_early_execution",
        "middleware_manager",
        "is_awaitable",
        "is_async_iterable",
        "hide_suggestions",
        "abort_signal",
        "hooks",
    ],
    "build_resolve_info": ["self", "field_def", "field_nodes", "parent_type", "path"],
    "handle_field_error": ["self", "raw_error", "return_type", "field_details_list", "path"],
    "execute_field": ["self", "parent_type", "source", "field_details_list", "path", "position_context"],
    "complete_value": ["self", "return_type", "field_details_list", "info", "path", "result", "position_context"],
    "complete_object_value": [
        "self",
        "return_type",
        "field_details_list",
        "info",
        "path",
        "result",
        "position_context",
    ],
    "ensure_valid_runtime_type": ["self", "runtime_type_name", "return_type", "field_details_list", "info", "result"],
    "settle_in_background": ["self", "awaitables"],
    "build_response": ["self", "data"],
}
FUNCTIONS = {
    (collect_module, "collect_fields"): [
        "schema",
        "fragments",
        "variable_values",
        "runtime_type",
        "operation",
        "hide_suggestions",
        "forbid_skip_and_include",
        "on_selection_set",
    ],
    (collect_module, "collect_subfields"): [
        "schema",
        "fragments",
        "variable_values",
        "operation",
        "return_type",
        "field_details_list",
        "hide_suggestions",
    ],
    (values_module, "get_argument_values"): [
        "type_def",
        "node",
        "variable_values",
        "fragment_variable_values",
        "hide_suggestions",
    ],
    (values_module, "get_variable_values"): ["schema", "var_def_nodes", "inputs", "max_errors", "hide_suggestions"],
    (executor_module, "invalid_return_type_error"): ["return_type", "result", "field_details_list"],
    (executor_module, "collect_iterator_awaitables"): ["iterator", "is_awaitable"],
}
# graphql-core's methods whose behaviour the plans reproduce (for a query without @defer or @stream): Strawberry's
# execution context must take them from graphql-core's IncrementalExecutor unchanged, or the plans would
# answer differently from the fallback.
REPRODUCED = (
    "execute_operation",
    "execute_collected_root_fields",
    "execute_root_grouped_field_set",
    "execute_fields",
    "execute_field",
    "complete_value",
    "complete_awaitable_value",
    "complete_list_value",
    "complete_iterable_value",
    "complete_list_item_value",
    "complete_awaitable_list_item_value",
    "complete_leaf_value",
    "complete_abstract_value",
    "complete_object_value",
    "collect_and_execute_subfields",
    "execute_collected_subfields",
    "get_stream_usage",
    "handle_field_error",
)


def parameters_of(function: Any) -> list[str] | None:
    try:
        return list(inspect.signature(function).parameters) if callable(function) else None
    except (TypeError, ValueError):
        return None


@functools.cache
def plan_problem() -> str | None:
    """Why plans cannot be trusted with the installed graphql-core and Strawberry (warned once), or None."""
    problem = find_problem()
    if problem is not None:
        log.warning("compiled execution plans disabled, every query runs on graphql-core: %s", problem)
    return problem


def find_problem() -> str | None:
    problem = seams.problem()  # every Strawberry internal the plans read (seams.py)
    if problem is not None:
        return problem
    version = tuple(graphql.version_info[:3])
    low, high = VERIFIED_GRAPHQL_CORE
    if not low <= version < high:
        return f"graphql-core {graphql.version} is outside the verified range {low} to {high}"
    for name, expected in EXECUTOR_METHODS.items():
        if parameters_of(getattr(Executor, name, None)) != expected:
            return f"Executor.{name} does not have the parameters {expected}"
    for (module, name), expected in FUNCTIONS.items():
        if parameters_of(getattr(module, name, None)) != expected:
            return f"{module.__name__}.{name} does not have the parameters {expected}"
    context = seams.ExecutionContext
    incremental = context.__mro__[1]
    if incremental is not IncrementalExecutor:
        return "Strawberry's execution context no longer extends graphql-core's IncrementalExecutor"
    overridden = [name for name in REPRODUCED if getattr(context, name) is not getattr(incremental, name)]
    if overridden:
        return f"Strawberry's execution context overrides {overridden}"
    if MetaFields.type_name(None, _TypenameInfo) != "Typename":  # type: ignore[no-untyped-call]
        return "graphql-core's __typename resolver no longer answers the parent type's name"
    return info_problem()


class _TypenameInfo:
    parent_type = GraphQLObjectType("Typename", {})


def info_problem() -> str | None:
    """Whether ``Run.info`` builds what the execution context's own ``build_resolve_info`` does (the helpers
    aside: the same executor methods, reached through the request)."""
    schema = GraphQLSchema(GraphQLObjectType("Query", {"probe": GraphQLField(GraphQLString)}))
    document = parse("{ probe }")
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    run = Run(OperationPlan(schema, document, operation), object(), no_variables(schema))
    field = run.plan.root.fields[0]
    path = Path(None, "probe", "Query")
    ours = run.info(field, path)
    theirs = run.executor.build_resolve_info(field.field_def, list(field.nodes), field.parent_type, path)
    if type(ours) is not type(theirs):
        return f"the execution context's resolve info is a {type(theirs).__name__}"
    differing = [
        name for name in theirs._fields if name != "async_helpers" and getattr(ours, name) != getattr(theirs, name)
    ]
    if differing or not isinstance(theirs.async_helpers, GraphQLResolveInfoHelpers):
        return f"the execution context's resolve info differs in {differing or ['async_helpers']}"
    return None
