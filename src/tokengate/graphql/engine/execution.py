"""A cheaper path through graphql-core for plain attribute fields.

Most of a long list is Strawberry "basic" fields: no resolver, no arguments, no extensions. graphql-core
still builds resolve info, calls the resolver through Strawberry's wrapper and completes each value
generically, which was most of the cost of listing 50 tokens. Here:

- a plain field of scalar or enum type is read and coerced directly;
- a plain field holding a list of objects (a token's grants, a grant's projects) executes each item's
  selection directly, without the generic list and object completion around it.

The fast path only answers what graphql-core would answer the same way. Whenever a value is anything but
an ordinary value (None where the schema says non-null, undefined, an exception, an awaitable, an item of a
list that is one of those), whenever reading the attribute or coercing the value raises, and whenever
coercion returns nothing, the field goes graphql-core's own way (``execute_field``), which reads it again
and reports the error with its message, path and locations. ``tests/api/test_execution_differential.py``
compares both ways on generated queries and on values made to fail.

Plans (what a field needs) are kept per schema object, keyed by type and field name, so two schemas with a
same-named type never share one.

What this relies on, checked by ``fast_path_problem()`` when the schema is built; if anything is missing or
different, the plain Strawberry execution context is used instead and a warning is logged once:

graphql-core (``Executor``, called ``ExecutionContext`` before 3.3; verified range in VERIFIED_GRAPHQL_CORE,
pinned in pyproject.toml):
  - ``Executor.execute_fields(parent_type, source_value, path, grouped_field_set, position_context)``:
    overridden here, and not overridden by Strawberry's class in between;
  - ``Executor.execute_field(parent_type, source, field_details_list, path, position_context)``: the way
    back for everything else;
  - ``Executor.collect_subfields(return_type, field_details_list)`` returning ``CollectedFields`` with
    ``grouped_field_set`` and ``new_defer_usages`` (a list under @defer, or a list field with @stream, or
    any list when ``position_context`` is set, goes graphql-core's way);
  - ``Executor.settle_in_background(awaitables)``;
  - the attributes ``schema``, ``is_awaitable``, ``middleware_manager`` (``MiddlewareManager.middlewares``)
    and ``error_propagation``;
  - the completion methods whose behaviour is reproduced for plain values (``complete_value``,
    ``complete_leaf_value``, ``complete_list_value``, ``complete_iterable_value``,
    ``complete_list_item_value``, ``complete_object_value``, ``collect_and_execute_subfields``) not
    overridden by Strawberry's class;
  - ``FieldDetails.node``, ``graphql.pyutils.Path`` and ``graphql.pyutils.gather_with_cancel``.
Strawberry (read once per schema, type and field, when a plan is made; a field without them is not plain):
  - ``GraphQLCoreConverter.DEFINITION_BACKREF`` in a field's extensions, and on that definition
    ``is_basic_field``, ``python_name`` and ``default_resolver``;
  - ``_is_default`` on the resolver Strawberry builds for a field without one.
"""

from __future__ import annotations

import functools
import inspect
import logging
import weakref
from dataclasses import dataclass
from typing import Any

import graphql
from graphql import (
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

log = logging.getLogger("tokengate.graphql.engine.execution")

# The graphql-core versions this module was verified against (tests/api/test_execution_differential.py):
# from the first, up to but excluding the second. Widen it only after running that test on the new version.
VERIFIED_GRAPHQL_CORE = ((3, 3, 2), (3, 4, 0))

# Exact types whose values are never an exception, an awaitable or undefined: no further check needed.
ORDINARY = frozenset({str, int, float, bool, dict, list})


@dataclass(frozen=True, slots=True)
class PlainLeaf:
    attribute: str
    read: Any  # the Strawberry field's default resolver: (source, attribute) -> value
    leaf: GraphQLLeafType
    nullable: bool


@dataclass(frozen=True, slots=True)
class PlainObjectList:
    """A plain field of type ``[Object!]!``: a list, never null, of objects never null."""

    attribute: str
    read: Any
    item_type: GraphQLObjectType


Plan = PlainLeaf | PlainObjectList | None
_UNPLANNED = object()


# Per schema object (dropped with it: schemas built in tests come and go): (type name, field name) -> plan.
# Names are unique within one schema, and only within one.
_SCHEMA_PLANS: weakref.WeakKeyDictionary[GraphQLSchema, dict[tuple[str, str], Plan]] = weakref.WeakKeyDictionary()


def plans_of(schema: GraphQLSchema) -> dict[tuple[str, str], Plan]:
    plans = _SCHEMA_PLANS.get(schema)
    if plans is None:
        plans = _SCHEMA_PLANS.setdefault(schema, {})
    return plans


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def _make_plan(self, parent_type: GraphQLObjectType, field_name: str) -> Plan:
        field_def = self.schema.get_field(parent_type, field_name)
        if field_def is None or field_def.args or not getattr(field_def.resolve, "_is_default", False):
            return None
        definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not getattr(definition, "is_basic_field", False):
            return None
        attribute = getattr(definition, "python_name", None)
        read = getattr(definition, "default_resolver", None)
        if not isinstance(attribute, str) or not callable(read):
            return None
        field_type = field_def.type
        inner = get_nullable_type(field_type)
        if is_leaf_type(inner):
            return PlainLeaf(attribute, read, inner, not is_non_null_type(field_type))
        if is_non_null_type(field_type) and is_list_type(inner) and is_non_null_type(inner.of_type):
            item_type = get_nullable_type(inner.of_type)
            if is_object_type(item_type) and item_type.is_type_of is None:
                return PlainObjectList(attribute, read, item_type)
        return None

    def execute_fields(  # type: ignore[override]
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        manager = self.middleware_manager
        if manager is not None and manager.middlewares:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        is_awaitable = self.is_awaitable
        try:
            for response_name, plan, field_details_list in self._fields_plan(parent_type, grouped_field_set):
                if type(plan) is PlainLeaf:
                    try:
                        value = plan.read(source_value, plan.attribute)
                        if value is None:
                            if plan.nullable:
                                results[response_name] = None
                                continue
                        elif type(value) in ORDINARY or not (
                            value is Undefined or isinstance(value, Exception) or is_awaitable(value)
                        ):
                            coerced = plan.leaf.coerce_output_value(value)
                            if type(coerced) in ORDINARY or (
                                coerced is not None and coerced is not Undefined and not is_awaitable(coerced)
                            ):
                                results[response_name] = coerced
                                continue
                    except Exception:  # noqa: S110 - execute_field below reads it again and reports it where it belongs
                        pass
                elif plan is not None and self.error_propagation:
                    result = self._execute_items(
                        plan, source_value, field_details_list, path, parent_type, response_name, position_context
                    )
                    if result is not Undefined:
                        results[response_name] = result
                        if is_awaitable(result):
                            awaitable_fields.append(response_name)
                        continue
                # Everything else, and plain values that would be field errors, go graphql-core's way.
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return gather_fields(results, awaitable_fields)

    def _execute_items(
        self,
        plan: PlainObjectList,
        source_value: Any,
        field_details_list: Any,
        path: Path | None,
        parent_type: GraphQLObjectType,
        response_name: str,
        position_context: Any,
    ) -> Any:
        """Each item's selection, as graphql-core completes ``[Object!]!`` for a list of ordinary objects;
        ``Undefined`` when the value is anything else, or @defer is involved (graphql-core's way then reads
        and completes it)."""
        if position_context is not None:  # inside a deferred fragment
            return Undefined
        is_awaitable = self.is_awaitable
        try:
            items = plan.read(source_value, plan.attribute)
            if type(items) is not list and type(items) is not tuple:
                return Undefined
            for item in items:
                if item is None or isinstance(item, Exception) or is_awaitable(item):
                    return Undefined
            collected = self.collect_subfields(plan.item_type, field_details_list)
        except Exception:
            return Undefined
        if collected.new_defer_usages:
            return Undefined
        selection = collected.grouped_field_set
        # From here on, errors are the items' fields' own (located, propagating as for a non-null list).
        field_path = Path(path, response_name, parent_type.name)
        completed: list[Any] = []
        pending: list[int] = []
        try:
            for index, item in enumerate(items):
                value = self.execute_fields(
                    plan.item_type, item, field_path.add_key(index, None), selection, position_context
                )
                if is_awaitable(value):
                    pending.append(index)
                completed.append(value)
        except Exception:
            if pending:
                self.settle_in_background([completed[index] for index in pending])
            raise
        if not pending:
            return completed

        async def await_items() -> list[Any]:
            if len(pending) == 1:
                completed[pending[0]] = await completed[pending[0]]
            else:
                awaited = await gather_with_cancel(*(completed[index] for index in pending))
                for index, value in zip(pending, awaited, strict=True):
                    completed[index] = value
            return completed

        return await_items()

    def _fields_plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[tuple[str, Plan, Any]]:
        """Per request, per selection (the same object for every item of a list): what each field needs."""
        cache = self.__dict__.setdefault("_field_plans", {})
        cached = cache.get(id(grouped_field_set))
        if cached is not None:
            return cached[1]
        known = plans_of(self.schema)
        selection = []
        for response_name, field_details_list in grouped_field_set.items():
            node = field_details_list[0].node
            plan = None
            if not node.arguments:
                key = (parent_type.name, node.name.value)
                plan = known.get(key, _UNPLANNED)
                if plan is _UNPLANNED:
                    plan = known[key] = self._make_plan(parent_type, node.name.value)
                if type(plan) is PlainObjectList and streamed(field_details_list):
                    plan = None
            selection.append((response_name, plan, field_details_list))
        # Keep the selection alive with its plan so that its id cannot be reused during this request.
        cache[id(grouped_field_set)] = (grouped_field_set, selection)
        return selection


def streamed(field_details_list: Any) -> bool:
    """Whether a list field carries @stream (its handling is in the list completion the fast path skips)."""
    return any(d.name.value == "stream" for details in field_details_list for d in details.node.directives or ())


# --- the guard -------------------------------------------------------------------------------------------

SIGNATURES = {
    "execute_fields": ["self", "parent_type", "source_value", "path", "grouped_field_set", "position_context"],
    "execute_field": ["self", "parent_type", "source", "field_details_list", "path", "position_context"],
    "collect_subfields": ["self", "return_type", "field_details_list"],
    "settle_in_background": ["self", "awaitables"],
}
REPRODUCED = (
    "execute_fields",
    "execute_field",
    "complete_value",
    "complete_leaf_value",
    "complete_list_value",
    "complete_iterable_value",
    "complete_list_item_value",
    "complete_object_value",
    "collect_and_execute_subfields",
)
ATTRIBUTES = ("schema", "is_awaitable", "middleware_manager", "error_propagation")


def fast_path_problem() -> str | None:
    """Why the fast path cannot be trusted with the installed graphql-core and Strawberry, or None."""
    version = tuple(graphql.version_info[:3])
    low, high = VERIFIED_GRAPHQL_CORE
    if not low <= version < high:
        return f"graphql-core {graphql.version} is outside the verified range {low} to {high}"
    executor = getattr(graphql.execution, "Executor", None)
    if not isinstance(executor, type) or not issubclass(StrawberryGraphQLCoreExecutionContext, executor):
        return "graphql-core has no Executor that Strawberry's execution context extends"
    for name, expected in SIGNATURES.items():
        method = getattr(executor, name, None)
        try:
            parameters = list(inspect.signature(method).parameters) if callable(method) else None
        except (TypeError, ValueError):
            parameters = None
        if parameters != expected:
            return f"Executor.{name} has parameters {parameters}, expected {expected}"
    for name in REPRODUCED:
        if getattr(StrawberryGraphQLCoreExecutionContext, name, None) is not getattr(executor, name, None):
            return f"Strawberry's execution context overrides Executor.{name}"
    annotations: dict[str, Any] = {}
    for klass in reversed(executor.__mro__):
        annotations.update(getattr(klass, "__annotations__", {}))
    missing = [name for name in ATTRIBUTES if name not in annotations]
    if missing:
        return f"Executor no longer declares {missing}"
    collected = getattr(graphql.execution, "CollectedFields", None) or getattr(
        getattr(graphql.execution, "collect_fields", None), "CollectedFields", None
    )
    if not {"grouped_field_set", "new_defer_usages"} <= set(getattr(collected, "_fields", ())):
        return "CollectedFields has no grouped_field_set and new_defer_usages"
    if not isinstance(getattr(GraphQLCoreConverter, "DEFINITION_BACKREF", None), str):
        return "Strawberry's GraphQLCoreConverter has no DEFINITION_BACKREF"
    return None


@functools.cache
def execution_context_class() -> type[StrawberryGraphQLCoreExecutionContext]:
    """``FastExecutionContext`` when its reliance on graphql-core holds, else Strawberry's own (warned once)."""
    problem = fast_path_problem()
    if problem is None:
        return FastExecutionContext
    log.warning("GraphQL fast path disabled, using Strawberry's plain execution: %s", problem)
    return StrawberryGraphQLCoreExecutionContext


async def gather_fields(results: dict[str, Any], awaitable_fields: list[str]) -> dict[str, Any]:
    """The awaited values of ``awaitable_fields`` into ``results``, as graphql-core's ``execute_fields`` does."""
    if len(awaitable_fields) == 1:  # as graphql-core: no task for a single awaitable
        key = awaitable_fields[0]
        results[key] = await results[key]
    else:
        awaited = await gather_with_cancel(*(results[key] for key in awaitable_fields))
        results.update(zip(awaitable_fields, awaited, strict=True))
    return results
