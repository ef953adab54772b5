"""What a GraphQL operation costs: computed once, on the validated document and its variables as graphql-core
will coerce them (``100.0`` sent for an ``Int`` is 100), before any resolver runs; over the budget, the request
is answered BAD_USER_INPUT with ``extensions.cost`` and ``extensions.budget`` and nothing executes.

    cost(field) = size * (own cost + cost of its selections)

The own cost of a field is 1 (``FIELD_COSTS`` for the few that do more: mutations write, a leak report may run
argon2id). Its size is 1 unless it answers a list, or a page: then the page size (``first``/``last``, or the
argument's default), the length of the list argument that sets it (``checks(requests:)``), or a stated
estimate (``LIST_ESTIMATES``, else ``DEFAULT_LIST_ESTIMATE``) for the lists nothing bounds. Every field costs
at least 1 and aliases are separate fields, so fifty aliases of ``checks`` over 1,000 requests cost fifty times
one. Introspection is costed like anything else, with its lists estimated from this schema (how many types,
how many fields a type has on average, ...): one full introspection query fits the budget, a few dozen
aliases of it do not. A fragment is costed once and its cost reused, so spreading fragments into each other
costs what they would answer, and the computation stays linear in the document.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    ValueNode,
    VariableNode,
    coerce_input_literal,
    coerce_input_value,
    get_named_type,
    get_nullable_type,
    is_enum_type,
    is_input_object_type,
    is_input_type,
    is_interface_type,
    is_list_type,
    is_object_type,
    is_specified_scalar_type,
    type_from_ast,
    value_from_ast_untyped,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef

from tokengate.core.catalog import CATALOG
from tokengate.graphql.schema.audit_log import MAX_PAGE_SIZE

PAGE_SIZE_ARGUMENTS: Final = ("first", "last")
# Pages whose resolver refuses a larger size (with its own message): a larger ``first`` costs no more than this.
PAGE_LIMITS: Final[Mapping[tuple[str, str], int]] = {
    ("Account", "auditLog"): MAX_PAGE_SIZE,
    ("Account", "serviceTokenConnection"): MAX_PAGE_SIZE,
    ("Account", "memberConnection"): MAX_PAGE_SIZE,
    ("Webhook", "deliveries"): MAX_PAGE_SIZE,
}
# A list whose length is set by one of its arguments: that list's length, or that number.
LIST_SIZE_ARGUMENTS: Final[Mapping[tuple[str, str], str]] = {
    ("Query", "checks"): "requests",
    ("ServiceToken", "usage"): "days",
}
# Lists nothing in the request bounds: what a typical account has (an estimate, stated here and in the README).
LIST_ESTIMATES: Final[Mapping[tuple[str, str], float]] = {
    ("Account", "serviceTokens"): 50,
    ("Account", "members"): 50,
    ("Account", "projects"): 20,
    ("Viewer", "grants"): 3,
    ("User", "grants"): 3,
    ("ServiceToken", "grants"): 3,
    ("Grant", "projects"): 5,
    ("IpRestrictions", "rules"): 10,
    ("IpRule", "cidrs"): 5,
    ("Account", "webhooks"): 3,
    ("Webhook", "events"): 5,
    ("Viewer", "userTokens"): 5,
    ("User", "tokens"): 5,
    ("ServiceToken", "lastUsedFrom"): 5,
    ("Query", "givablePermissionSets"): len(CATALOG.permission_sets),
}
DEFAULT_LIST_ESTIMATE: Final = 10
OF_TYPE_ESTIMATE: Final = 0.5
MUTATION_COST: Final = 10  # a transaction with its audit event
FIELD_COSTS: Final[Mapping[tuple[str, str], int]] = {("Mutation", "reportLeakedToken"): 500}  # argon2id, maybe
META_FIELDS: Final[Mapping[str, GraphQLField]] = {
    "__schema": SchemaMetaFieldDef,
    "__type": TypeMetaFieldDef,
    "__typename": TypeNameMetaFieldDef,
}


class CostUnknown(Exception):
    """The document nests fragments deeper than the costing can follow (it is refused as over budget)."""


def _mean(total: int, count: int) -> float:
    return total / count if count else 1.0


@lru_cache(maxsize=8)
def introspection_sizes(schema: GraphQLSchema) -> Mapping[tuple[str, str], float]:
    """The introspection lists of ``schema``, sized from the schema itself: ``types`` is how many there are,
    ``fields`` how many a type has on average, and so on, so that costing ``__schema { types { fields ... } }``
    counts about what the answer holds."""
    types = list(schema.type_map.values())
    composite = [t for t in types if is_object_type(t) or is_interface_type(t)]
    field_count = sum(len(t.fields) for t in composite)  # type: ignore[attr-defined]
    arg_count = sum(len(f.args) for t in composite for f in t.fields.values())  # type: ignore[attr-defined]
    input_fields = sum(len(t.fields) for t in types if is_input_object_type(t))  # type: ignore[attr-defined]
    enum_values = sum(len(getattr(t, "values", ())) for t in types)
    interfaces = sum(len(t.interfaces) for t in composite)  # type: ignore[attr-defined]
    possible = sum(len(schema.get_possible_types(t)) for t in types if is_interface_type(t) or hasattr(t, "types"))
    directives = schema.directives
    return {
        ("__Schema", "types"): len(types),
        ("__Schema", "directives"): len(directives),
        ("__Type", "fields"): _mean(field_count, len(types)),
        ("__Type", "inputFields"): _mean(input_fields, len(types)),
        ("__Type", "enumValues"): _mean(enum_values, len(types)),
        ("__Type", "interfaces"): _mean(interfaces, len(types)),
        ("__Type", "possibleTypes"): _mean(possible, len(types)),
        ("__Field", "args"): _mean(arg_count, field_count),
        ("__Directive", "args"): _mean(sum(len(d.args) for d in directives), len(directives)),
        ("__Directive", "locations"): _mean(sum(len(d.locations) for d in directives), len(directives)),
        # Most type references are one or two levels deep (a list of non-null items is three): each deeper
        # ofType is less likely to be there, where a query asks for eight of them.
        ("__Type", "ofType"): OF_TYPE_ESTIMATE,
    }


class _Costing:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
    ):
        self.schema = schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.sent = variables
        self.definitions = {d.variable.name.value: d for d in operation.variable_definitions or ()}
        self.variables: dict[str, Any] = {}  # coerced as execution will coerce them, each when first read
        self.estimates = {**introspection_sizes(schema), **LIST_ESTIMATES}
        self.fragment_costs: dict[tuple[str, bool], float] = {}

    def selections(self, parent: GraphQLNamedType, selection_set: SelectionSetNode, paged: bool) -> float:
        total = 0.0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(parent, selection, paged)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition is not None else parent
                total += self.selections(inner or parent, selection.selection_set, paged)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, paged)
        return total

    def fragment(self, name: str, paged: bool) -> float:
        key = (name, paged)
        cost = self.fragment_costs.get(key)
        if cost is None:
            definition = self.fragments.get(name)
            fragment_type = self.schema.get_type(definition.type_condition.name.value) if definition else None
            cost = 0.0
            if definition is not None and fragment_type is not None:
                cost = self.selections(fragment_type, definition.selection_set, paged)
            self.fragment_costs[key] = cost
        return cost

    def field(self, parent: GraphQLNamedType, node: FieldNode, paged: bool) -> float:
        name = node.name.value
        definition = META_FIELDS.get(name) or getattr(parent, "fields", {}).get(name)
        if definition is None:
            return 1
        own = FIELD_COSTS.get((parent.name, name), MUTATION_COST if parent is self.schema.mutation_type else 1)
        size, pages = self.size(parent.name, name, definition, node, paged)
        inner = 0.0
        if node.selection_set is not None:
            inner = self.selections(get_named_type(definition.type), node.selection_set, pages)
        return size * (own + inner)

    def size(
        self, parent: str, name: str, definition: GraphQLField, node: FieldNode, paged: bool
    ) -> tuple[float, bool]:
        """How many times the field's selections are answered (at least once: nothing is free), and whether its
        own lists are that page."""
        for argument in PAGE_SIZE_ARGUMENTS:
            if argument in definition.args:
                value = self.argument(node, argument)
                if value is Undefined or value is None:
                    value = definition.args[argument].default_value
                if not isinstance(value, int) or isinstance(value, bool):
                    return 1, True
                return max(1, min(value, PAGE_LIMITS.get((parent, name), value))), True
        estimate = self.estimates.get((parent, name))
        if not is_list_type(get_nullable_type(definition.type)):  # type: ignore[arg-type]
            return (estimate if estimate is not None else 1), False
        if paged:
            return 1, False  # the page's items: counted by the paged field above
        sized_by = LIST_SIZE_ARGUMENTS.get((parent, name))
        if sized_by is not None:
            value = self.argument(node, sized_by)
            if value is Undefined or value is None:
                value = definition.args[sized_by].default_value
            if isinstance(value, list):
                return max(1, len(value)), False
            return max(1, value if isinstance(value, int) and not isinstance(value, bool) else 1), False
        return max(1.0, estimate if estimate is not None else DEFAULT_LIST_ESTIMATE), False

    def argument(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                return self.value(argument.value)
        return Undefined

    def variable(self, name: str) -> Any:
        """The value of ``$name`` as graphql-core will coerce it (``100.0`` for an ``Int`` is 100: costing the
        text sent would let a float pass as a size of 1), Undefined when it will not coerce (then the request is
        refused before any resolver runs). A list's items are left as sent: its length is what counts, and
        graphql-core makes a single item a list of one."""
        if name in self.variables:
            return self.variables[name]
        value: Any = Undefined
        definition = self.definitions.get(name)
        input_type = type_from_ast(self.schema, definition.type) if definition is not None else None
        if definition is not None and is_input_type(input_type):
            if name not in self.sent:
                if definition.default_value is not None:
                    value = coerce_input_literal(definition.default_value, input_type)  # type: ignore[arg-type]
            elif is_list_type(get_nullable_type(input_type)) and self.sent[name] is not None:  # type: ignore[arg-type]
                sent = self.sent[name]
                value = sent if isinstance(sent, list) else [sent]
            else:
                value = coerce_input_value(self.sent[name], input_type)  # type: ignore[arg-type]
        self.variables[name] = value
        return value

    def value(self, node: ValueNode) -> Any:
        if isinstance(node, VariableNode):
            return self.variable(node.name.value)
        if isinstance(node, ListValueNode):
            return list(node.values)  # its length is what counts
        if isinstance(node, IntValueNode):
            return int(node.value)  # validated: a 32-bit Int
        if isinstance(node, NullValueNode):
            return None
        return value_from_ast_untyped(node, self.sent)


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> int:
    """The cost of ``operation`` (of a validated ``document``) with ``variables``; ``CostUnknown`` when its
    fragments nest too deeply to follow."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 1
    costing = _Costing(schema, document, operation, variables or {})
    try:
        return math.ceil(costing.selections(root, operation.selection_set, False))
    except RecursionError:
        raise CostUnknown from None


class _Actual:
    """The cost of an executed operation, from its answer: the same formula as the estimate, with each list's
    size the number of items the resolvers really returned (a field answered null costs its own point)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode):
        self.schema = schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def selections(self, parent: GraphQLNamedType, selection_set: SelectionSetNode, data: Mapping[str, Any]) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias is not None else selection.name.value
                if key in data:
                    total += self.field(parent, selection, data[key])
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition is not None else parent
                total += self.selections(inner or parent, selection.selection_set, data)
            elif isinstance(selection, FragmentSpreadNode):
                definition = self.fragments.get(selection.name.value)
                fragment_type = self.schema.get_type(definition.type_condition.name.value) if definition else None
                if definition is not None and fragment_type is not None:
                    total += self.selections(fragment_type, definition.selection_set, data)
        return total

    def field(self, parent: GraphQLNamedType, node: FieldNode, value: Any) -> int:
        name = node.name.value
        definition = META_FIELDS.get(name) or getattr(parent, "fields", {}).get(name)
        own = FIELD_COSTS.get((parent.name, name), MUTATION_COST if parent is self.schema.mutation_type else 1)
        size = max(1, len(value)) if isinstance(value, list) else 1
        if definition is None or node.selection_set is None or value is None:
            return size * own
        return size * own + self.value(get_named_type(definition.type), node.selection_set, value)

    def value(self, named: GraphQLNamedType, selection_set: SelectionSetNode, value: Any) -> int:
        if isinstance(value, list):
            return sum(self.value(named, selection_set, item) for item in value)
        if isinstance(value, Mapping):
            return self.selections(named, selection_set, value)
        return 0


class ActualPlan:
    """One selection set of ``_Actual``'s walk decided once per (document, operation): its fields as (response
    key, own cost, the plan of the value's selections or None), the fragments and inline fragments it contains
    already followed (inline ones merged in, named ones shared: ``groups``). Walking an answer then only reads
    the data: no definition lookup, no fragment resolution, no type checks per item.

    The fields whose value can only be one item (a built-in scalar or an enum, never a list) are ``flat``: when
    the answer has all their keys, they cost ``flat_cost`` together, counted once here instead of per item."""

    __slots__ = ("fields", "flat", "flat_cost", "flat_keys", "groups")

    def __init__(
        self,
        fields: tuple[tuple[str, int, ActualPlan | None], ...],
        groups: tuple[ActualPlan, ...],
        flat: tuple[tuple[str, int], ...] = (),
    ):
        self.fields = fields
        self.groups = groups
        self.flat = flat
        self.flat_keys = frozenset(key for key, _ in flat)
        self.flat_cost = sum(own for _, own in flat)


FLAT: Final = ActualPlan((), ())  # while compiling: marks a field ``ActualPlan.flat`` takes


class _ActualCompiler:
    """``_Actual``'s walk, done once on the document instead of on every answer (the same lookups, in the same
    places: a field's definition and own cost from the type the walk reaches it by)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode):
        self.schema = schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.spreads: dict[str, ActualPlan | None] = {}

    def selections(self, parent: GraphQLNamedType, selection_set: SelectionSetNode) -> ActualPlan:
        fields: list[tuple[str, int, ActualPlan | None]] = []
        groups: list[ActualPlan] = []
        self._collect(parent, selection_set, fields, groups)
        flat = [(key, own) for key, own, inner in fields if inner is FLAT]
        rest = tuple((key, own, inner) for key, own, inner in fields if inner is not FLAT)
        return ActualPlan(rest, tuple(groups), tuple(flat))

    def _collect(
        self,
        parent: GraphQLNamedType,
        selection_set: SelectionSetNode,
        fields: list[tuple[str, int, ActualPlan | None]],
        groups: list[ActualPlan],
    ) -> None:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                fields.append(self.field(parent, selection))
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition is not None else parent
                self._collect(inner or parent, selection.selection_set, fields, groups)
            elif isinstance(selection, FragmentSpreadNode):
                group = self.spread(selection.name.value)
                if group is not None:
                    groups.append(group)

    def spread(self, name: str) -> ActualPlan | None:
        if name in self.spreads:
            return self.spreads[name]
        definition = self.fragments.get(name)
        fragment_type = self.schema.get_type(definition.type_condition.name.value) if definition else None
        group = None
        if definition is not None and fragment_type is not None:
            group = self.selections(fragment_type, definition.selection_set)
        self.spreads[name] = group
        return group

    def field(self, parent: GraphQLNamedType, node: FieldNode) -> tuple[str, int, ActualPlan | None]:
        key = node.alias.value if node.alias is not None else node.name.value
        name = node.name.value
        definition = META_FIELDS.get(name) or getattr(parent, "fields", {}).get(name)
        own = FIELD_COSTS.get((parent.name, name), MUTATION_COST if parent is self.schema.mutation_type else 1)
        inner = None
        if definition is not None:
            if node.selection_set is not None:
                inner = self.selections(get_named_type(definition.type), node.selection_set)
            elif _one_item(definition):
                inner = FLAT
        return key, own, inner


def _one_item(definition: GraphQLField) -> bool:
    """Whether the field's answered value is never a list: a built-in scalar or an enum, not in a list (a custom
    scalar may answer one)."""
    nullable = get_nullable_type(definition.type)
    return not is_list_type(nullable) and (is_specified_scalar_type(nullable) or is_enum_type(nullable))


def _walk(plan: ActualPlan, data: Mapping[str, Any]) -> int:
    """``_Actual.selections`` on a compiled plan."""
    total = 0
    if plan.flat:
        if plan.flat_keys <= data.keys():
            total = plan.flat_cost
        else:  # some left out (fields of a fragment on another type): only those answered count
            for key, own in plan.flat:
                if key in data:
                    total += own
    for key, own, inner in plan.fields:
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, list):
            total += (len(value) or 1) * own
            if inner is not None:
                for item in value:
                    total += _walk(inner, item) if type(item) is dict else _walk_value(inner, item)
        else:
            total += own
            if inner is not None and value is not None:
                total += _walk(inner, value) if type(value) is dict else _walk_value(inner, value)
    for group in plan.groups:
        total += _walk(group, data)
    return total


def _walk_value(plan: ActualPlan, value: Any) -> int:
    """``_Actual.value`` on a compiled plan."""
    if isinstance(value, list):
        return sum(_walk_value(plan, item) for item in value)
    if isinstance(value, Mapping):
        return _walk(plan, value)
    return 0


def actual_plan(schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode) -> ActualPlan | None:
    """The compiled walk of ``operation``'s answers; None for an operation of no root type, or nesting deeper
    than compiling follows (then ``_Actual`` walks the answer itself)."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    try:
        return _ActualCompiler(schema, document).selections(root, operation.selection_set)
    except RecursionError:
        return None


def actual_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    data: Mapping[str, Any] | None,
    plan: ActualPlan | None = None,
) -> int:
    """What ``operation`` (of ``document``) cost, counted on the ``data`` it answered: every field answered costs
    its own cost once per item of the lists it is in, so a list of 2 costs twice one item, not its estimate of 50.
    ``plan``: ``actual_plan`` of the operation, kept by the caller (the same count, without re-reading the
    document on every answer; tests/api/test_compiled_differential.py compares the two)."""
    root = schema.get_root_type(operation.operation)
    if root is None or data is None:
        return 1
    if plan is not None:
        try:
            return max(1, _walk(plan, data))
        except RecursionError:
            pass  # the document's own walk decides
    try:
        return max(1, _Actual(schema, document).selections(root, operation.selection_set, data))
    except RecursionError:
        return 1
