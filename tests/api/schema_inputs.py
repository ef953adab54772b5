"""What the schema takes from clients, read from the schema itself, so tests that cover every input notice
when a new one is added."""

from __future__ import annotations

from graphql import GraphQLInputType, get_named_type, is_input_object_type, is_object_type

from tokengate.graphql.schema.schema import schema


def _leaves(type_: GraphQLInputType, path: str, scalars: frozenset[str], out: set[str]) -> None:
    named = get_named_type(type_)
    if is_input_object_type(named):
        for name, field in named.fields.items():
            _leaves(field.type, f"{path}.{name}", scalars, out)
    elif named.name in scalars:
        out.add(path)


def arguments_of_scalar(*scalars: str) -> set[str]:
    """Every argument (or input field inside one) of these scalar types, as ``Type.field.argument[.field]``."""
    out: set[str] = set()
    for type_name, type_ in schema._schema.type_map.items():
        if type_name.startswith("__") or not is_object_type(type_):
            continue
        for field_name, field in type_.fields.items():
            for argument_name, argument in field.args.items():
                _leaves(argument.type, f"{type_name}.{field_name}.{argument_name}", frozenset(scalars), out)
    return out
