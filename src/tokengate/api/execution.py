"""A cheaper path through graphql-core for plain attribute fields.

Most of a long list is Strawberry "basic" fields: no resolver, no arguments, no extensions. graphql-core
still builds resolve info, calls the resolver through Strawberry's wrapper and completes each value
generically, which was most of the cost of listing 50 tokens. Here:

- a plain field of scalar or enum type is read and coerced directly;
- a plain field holding a list of objects (a token's grants, a grant's projects) executes each item's
  selection directly, without the generic list and object completion around it.

Anything else, and any value that would be a field error (null where the schema says non-null, a value
that does not coerce), goes graphql-core's own way, so answers and errors are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLLeafType,
    GraphQLObjectType,
    Undefined,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.pyutils import Path
from graphql.pyutils.gather_with_cancel import gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter


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


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    # (type name, field name) -> what the field needs; shared by all requests (the schema is fixed)
    _plans: dict[tuple[str, str], Plan] = {}

    def _plan(self, parent_type: GraphQLObjectType, field_name: str) -> Plan:
        key = (parent_type.name, field_name)
        plan = self._plans.get(key, _UNPLANNED)
        if plan is _UNPLANNED:
            plan = self._plans[key] = self._make_plan(parent_type, field_name)
        return plan  # type: ignore[return-value]

    def _make_plan(self, parent_type: GraphQLObjectType, field_name: str) -> Plan:
        field_def = self.schema.get_field(parent_type, field_name)
        if field_def is None or field_def.args or not getattr(field_def.resolve, "_is_default", False):
            return None
        definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if definition is None or not definition.is_basic_field:
            return None
        field_type = field_def.type
        inner = get_nullable_type(field_type)
        if is_leaf_type(inner):
            return PlainLeaf(
                definition.python_name, definition.default_resolver, inner, not is_non_null_type(field_type)
            )
        if is_non_null_type(field_type) and is_list_type(inner) and is_non_null_type(inner.of_type):
            item_type = get_nullable_type(inner.of_type)
            if is_object_type(item_type) and item_type.is_type_of is None:
                return PlainObjectList(definition.python_name, definition.default_resolver, item_type)
        return None

    def execute_fields(  # type: ignore[override]
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        if self._has_middleware:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        is_awaitable = self.is_awaitable
        try:
            for response_name, plan, field_details_list in self._fields_plan(parent_type, grouped_field_set):
                if plan is not None:
                    value = plan.read(source_value, plan.attribute)
                    if type(plan) is PlainLeaf:
                        if value is None:
                            if plan.nullable:
                                results[response_name] = None
                                continue
                        else:
                            coerced = plan.leaf.coerce_output_value(value)
                            if coerced is not None and coerced is not Undefined:
                                results[response_name] = coerced
                                continue
                    elif isinstance(value, list | tuple) and None not in value:
                        result = self._execute_items(plan, value, field_details_list, path, parent_type, response_name)
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

        async def get_results() -> dict[str, Any]:
            awaited = await gather_with_cancel(*(results[name] for name in awaitable_fields))
            results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def _execute_items(
        self,
        plan: PlainObjectList,
        items: list[Any] | tuple[Any, ...],
        field_details_list: Any,
        path: Path | None,
        parent_type: GraphQLObjectType,
        response_name: str,
    ) -> Any:
        """Each item's selection, as graphql-core would complete ``[Object!]!`` for non-null items."""
        selection = self.collect_subfields(plan.item_type, field_details_list)[0]
        field_path = Path(path, response_name, parent_type.name)
        completed = [
            self.execute_fields(plan.item_type, item, Path(field_path, index, None), selection, None)
            for index, item in enumerate(items)
        ]
        pending = [index for index, value in enumerate(completed) if self.is_awaitable(value)]
        if not pending:
            return completed

        async def await_items() -> list[Any]:
            awaited = await gather_with_cancel(*(completed[index] for index in pending))
            for index, value in zip(pending, awaited, strict=True):
                completed[index] = value
            return completed

        return await_items()

    def _fields_plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[tuple[str, Plan, Any]]:
        """Per request, per selection (the same object for every item of a list): what each field needs."""
        plans = self.__dict__.setdefault("_field_plans", {})
        cached = plans.get(id(grouped_field_set))
        if cached is not None:
            return cached[1]
        plan = []
        for response_name, field_details_list in grouped_field_set.items():
            node = field_details_list[0].node
            plain = None if node.arguments else self._plan(parent_type, node.name.value)
            plan.append((response_name, plain, field_details_list))
        # Keep the selection alive with its plan so that its id cannot be reused during this request.
        plans[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan

    @property
    def _has_middleware(self) -> bool:
        manager = self.middleware_manager
        return manager is not None and bool(manager.middlewares)
