"""A cheaper path through graphql-core for plain attribute fields.

Most fields of a long list (a token's id, name, state; a project's name) are Strawberry "basic" fields:
no resolver, no arguments, no extensions, a scalar or enum type. graphql-core still builds resolve info,
dispatches through the resolver and completes the value generically for each of them, which is most of
the cost of listing 50 tokens. Here such a field is read and coerced directly; anything else (and any
value that would raise a field error, such as null in a non-null field) takes graphql-core's own path,
so results and errors are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import GraphQLLeafType, GraphQLObjectType, Undefined, get_nullable_type, is_leaf_type, is_non_null_type
from graphql.pyutils import Path
from graphql.pyutils.gather_with_cancel import gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter


@dataclass(frozen=True, slots=True)
class PlainField:
    attribute: str
    read: Any  # the Strawberry field's default resolver: (source, attribute) -> value
    leaf: GraphQLLeafType
    nullable: bool


_UNPLANNED = object()


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    # (type name, field name) -> PlainField, or None when the field needs graphql-core's full path
    _plans: dict[tuple[str, str], PlainField | None] = {}

    def _plan(self, parent_type: GraphQLObjectType, field_name: str) -> PlainField | None:
        key = (parent_type.name, field_name)
        plan = self._plans.get(key, _UNPLANNED)
        if plan is _UNPLANNED:
            plan = self._plans[key] = self._make_plan(parent_type, field_name)
        return plan  # type: ignore[return-value]

    def _make_plan(self, parent_type: GraphQLObjectType, field_name: str) -> PlainField | None:
        field_def = self.schema.get_field(parent_type, field_name)
        if field_def is None or field_def.args or not getattr(field_def.resolve, "_is_default", False):
            return None
        definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
        leaf = get_nullable_type(field_def.type)
        if definition is None or not definition.is_basic_field or not is_leaf_type(leaf):
            return None
        return PlainField(
            definition.python_name, definition.default_resolver, leaf, not is_non_null_type(field_def.type)
        )

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
            for response_name, plain, field_details_list in self._fields_plan(parent_type, grouped_field_set):
                if plain is not None:
                    value = plain.read(source_value, plain.attribute)
                    if value is None:
                        if plain.nullable:
                            results[response_name] = None
                            continue
                    else:
                        coerced = plain.leaf.coerce_output_value(value)
                        if coerced is not None and coerced is not Undefined:
                            results[response_name] = coerced
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

    def _fields_plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> list[tuple[str, Any, Any]]:
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
