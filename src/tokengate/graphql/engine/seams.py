"""Strawberry's internals that the compiled plans (compiled.py) rely on, read here and nowhere else.

Strawberry promises its public API (``strawberry.Schema`` and its ``execution_context_class``,
``strawberry.execution.optimized_is_awaitable``, the decorators); the plans also read what it does not promise:

- ``strawberry.schema.schema.StrawberryGraphQLCoreExecutionContext``: the execution context a schema uses by
  default (its ``build_resolve_info``, and graphql-core's methods it inherits unchanged);
- ``strawberry.schema.schema._OperationContextAwareGraphQLResolveInfo``: the resolve info that context builds,
  which a plan builds the same way;
- ``GraphQLCoreConverter.DEFINITION_BACKREF``: the key of a field's ``StrawberryField`` in its graphql-core
  extensions, and on that field ``is_basic_field``, ``default_resolver``, ``python_name`` and ``get_result``;
- the code of ``_get_basic_result``, the resolver ``GraphQLCoreConverter.from_resolver`` gives a basic field
  (found among the constants of ``from_resolver``'s code), and the ``_is_default`` mark on it.

Read the same way, each alone (when one is gone, only its shortcut is off and Strawberry's own runs):
- the ``is_type_of`` Strawberry gives an object type with interfaces, checked never to read its info
  (``info_free_type_check``: the plans call it without building one);
- ``_resolver``/``_async_resolver`` of ``from_resolver`` and what they close over (``_strawberry_info_from_graphql``,
  ``extension_resolver``, ``_get_result``, the converter's config and scalar registry, the field's extension
  resolvers) and ``convert_arguments``: ``direct_resolver`` does their per-call work with literal arguments
  converted once;
- ``CustomGraphQLEnumType.coerce_output_value``, answered from a table (``leaf_coercion``).

The first list is read once, when this module is imported, inside one ``try``: a renamed or changed internal
(an ImportError, an AttributeError, or a code that is no longer there) does not stop tokengate from starting.
``PROBLEM`` then says what is missing, ``AVAILABLE`` is False, a warning is logged once (on the first
query), and every operation runs on Strawberry's own execution (its schema's ``execution_context_class``
through graphql-core's ``execute``), answering exactly as before, only slower. The upper bound on
strawberry-graphql in pyproject.toml keeps such a change from arriving unseen; ``tests/api/test_library_seams.py``
simulates the rename.
"""

from __future__ import annotations

import dis
import enum
import functools
import inspect
import logging
from typing import Any, Final

from graphql import GraphQLField

__all__ = ["AVAILABLE", "BASIC_RESULT_CODE", "DEFINITION_BACKREF", "PROBLEM", "ExecutionContext", "ResolveInfo"]
__all__ += ["INFO_FREE_TYPE_CHECKS", "StrawberryField", "basic_field", "direct_resolver", "info_free_type_check"]
__all__ += ["problem"]

log = logging.getLogger("tokengate.graphql.engine.seams")

ExecutionContext: Any = None  # StrawberryGraphQLCoreExecutionContext
ResolveInfo: Any = None  # _OperationContextAwareGraphQLResolveInfo
StrawberryField: Any = None
DEFINITION_BACKREF: str = ""
BASIC_RESULT_CODE: Any = None  # the code object of _get_basic_result
PROBLEM: str | None = None

try:
    from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext as ExecutionContext
    from strawberry.schema.schema import _OperationContextAwareGraphQLResolveInfo as ResolveInfo
    from strawberry.schema.schema_converter import GraphQLCoreConverter
    from strawberry.types.field import StrawberryField

    DEFINITION_BACKREF = GraphQLCoreConverter.DEFINITION_BACKREF
    if not isinstance(DEFINITION_BACKREF, str):
        raise AttributeError("GraphQLCoreConverter.DEFINITION_BACKREF is not a string")
    for name in ("is_basic_field", "default_resolver", "python_name", "get_result"):
        getattr(StrawberryField, name)
    BASIC_RESULT_CODE = next(
        (
            constant
            for constant in GraphQLCoreConverter.from_resolver.__code__.co_consts
            if inspect.iscode(constant) and constant.co_name == "_get_basic_result"
        ),
        None,
    )
    if BASIC_RESULT_CODE is None:
        raise AttributeError("GraphQLCoreConverter.from_resolver no longer defines _get_basic_result")
except (ImportError, AttributeError) as error:
    PROBLEM = f"a Strawberry internal the plans read is gone ({type(error).__name__}: {error})"

AVAILABLE: Final = PROBLEM is None


def _nested_codes(code: Any, name: str) -> list[Any]:
    """The code objects named ``name`` defined anywhere inside ``code`` (functions in functions)."""
    found = []
    for constant in code.co_consts:
        if inspect.iscode(constant):
            if constant.co_name == name:
                found.append(constant)
            found.extend(_nested_codes(constant, name))
    return found


def _never_reads_second_argument(code: Any) -> bool:
    if code.co_argcount != 2:
        return False
    second = code.co_varnames[1]
    return second not in code.co_cellvars and not any(
        instruction.argval == second
        for instruction in dis.get_instructions(code)
        if instruction.opname.startswith(("LOAD_", "DELETE_", "STORE_"))
    )


# The ``is_type_of`` Strawberry gives an object type implementing an interface (defined in
# ``GraphQLCoreConverter.from_object`` and ``_get_is_type_of``), each checked here never to read its ``info``
# argument: the plans call it without building one. Empty (each call gets its info, as before) when they are gone.
INFO_FREE_TYPE_CHECKS: frozenset[Any] = frozenset()
if AVAILABLE:
    try:
        INFO_FREE_TYPE_CHECKS = frozenset(
            code
            for owner in (GraphQLCoreConverter.from_object, GraphQLCoreConverter._get_is_type_of)
            for code in _nested_codes(owner.__code__, "is_type_of")
            if _never_reads_second_argument(code)
        )
    except (AttributeError, TypeError):
        INFO_FREE_TYPE_CHECKS = frozenset()


def info_free_type_check(is_type_of: Any) -> bool:
    """True for Strawberry's own ``is_type_of`` of an object type, which answers from the value alone."""
    return getattr(is_type_of, "__code__", None) in INFO_FREE_TYPE_CHECKS


_warned: list[bool] = []


def problem() -> str | None:
    """What is missing (warned once), or None when every internal the plans read is there."""
    if PROBLEM is not None and not _warned:
        _warned.append(True)
        log.warning("GraphQL compiled plans off, every operation runs on Strawberry's own execution: %s", PROBLEM)
    return PROBLEM


def basic_field(field_def: GraphQLField) -> tuple[Any, str] | None:
    """(read, attribute) for a Strawberry basic field: no resolver, no extensions, no exception handler, so
    Strawberry's own resolver only returns ``definition.default_resolver(source, python_name)``; None for any
    other field, and for every field when the internals are not there."""
    if not AVAILABLE:
        return None
    resolve = field_def.resolve
    if getattr(resolve, "__code__", None) is not BASIC_RESULT_CODE or not getattr(resolve, "_is_default", False):
        return None
    definition = (field_def.extensions or {}).get(DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or not definition.is_basic_field:
        return None
    if type(definition).get_result is not StrawberryField.get_result:
        return None
    read, attribute = definition.default_resolver, definition.python_name
    if not callable(read) or not isinstance(attribute, str):
        return None
    return read, attribute


# The resolver Strawberry gives a field that has one (``_resolver``, ``_async_resolver``, defined in
# ``GraphQLCoreConverter.from_resolver``), and the functions it closes over, recognised by their code.
RESOLVER_CODES: dict[Any, bool] = {}  # code -> is it the async one
INFO_CODE: Any = None  # _strawberry_info_from_graphql
GET_RESULT_CODE: Any = None  # _get_result
EXTENSION_RESOLVER_CODE: Any = None  # extension_resolver, in wrap_field_extensions
convert_arguments: Any = None  # what Strawberry's get_arguments converts with (strawberry.types.arguments)
Info: Any = None
StrawberryResolver: Any = None
if AVAILABLE:
    try:
        from strawberry.extensions.field_extension import FieldExtension
        from strawberry.schema import schema_converter as _converter_module
        from strawberry.types.fields.resolver import StrawberryResolver
        from strawberry.types.info import Info

        _codes = GraphQLCoreConverter.from_resolver.__code__
        RESOLVER_CODES = {code: code.co_name == "_async_resolver" for code in _nested_codes(_codes, "_resolver")}
        RESOLVER_CODES.update({code: True for code in _nested_codes(_codes, "_async_resolver")})
        INFO_CODE = next(iter(_nested_codes(_codes, "_strawberry_info_from_graphql")), None)
        GET_RESULT_CODE = next(iter(_nested_codes(_codes, "_get_result")), None)
        EXTENSION_RESOLVER_CODE = next(iter(_nested_codes(_codes, "extension_resolver")), None)
        convert_arguments = _converter_module.convert_arguments
        _default_map_arguments = FieldExtension.map_arguments
        if len(RESOLVER_CODES) != 2 or None in (INFO_CODE, GET_RESULT_CODE, EXTENSION_RESOLVER_CODE):
            RESOLVER_CODES = {}
    except (ImportError, AttributeError, TypeError):
        RESOLVER_CODES = {}
IMMUTABLE: Final = (str, int, float, bool, type(None), enum.Enum)


def _closure(function: Any) -> dict[str, Any] | None:
    code, cells = getattr(function, "__code__", None), getattr(function, "__closure__", None)
    if code is None or cells is None or len(code.co_freevars) != len(cells):
        return None
    try:
        return {name: cell.cell_contents for name, cell in zip(code.co_freevars, cells, strict=True)}
    except ValueError:  # an empty cell
        return None


def direct_resolver(field_def: GraphQLField, arguments: dict[str, Any]) -> Any:
    """For a field whose resolver is Strawberry's own (no exception handler can apply to it), called with the
    literal ``arguments`` graphql-core coerced once: a function ``(source, info, **arguments)`` (the same
    arguments again, already converted: ignored) doing what that resolver
    does per call (the Strawberry ``Info``, the resolver's self, parent, root and info parameters, the field's
    extensions in Strawberry's order, ``get_result``), with the arguments converted to Python once, here, by
    Strawberry's ``convert_arguments``. None when anything differs (then the field runs Strawberry's own
    resolver): another resolver, handlers, an extension reshaping the arguments, converted values that are
    not immutable (a resolver could change them), or a conversion that fails (the request reports it)."""
    resolve = field_def.resolve
    is_async = RESOLVER_CODES.get(getattr(resolve, "__code__", None))
    if is_async is None:
        return None
    outer = _closure(resolve)
    if outer is None or outer.get("field_exception_handlers") != ():
        return None
    make_info, with_extensions = outer.get("_strawberry_info_from_graphql"), outer.get("_get_result_with_extensions")
    if getattr(make_info, "__code__", None) is not INFO_CODE:
        return None
    if getattr(with_extensions, "__code__", None) is not EXTENSION_RESOLVER_CODE:
        return None
    info_parts, chain = _closure(make_info), _closure(with_extensions)
    if info_parts is None or chain is None:
        return None
    field, converter = chain.get("field"), chain.get("self")
    get_result = chain.get("_get_result")
    if field is not info_parts.get("field") or converter is not info_parts.get("self"):
        return None
    if (
        getattr(get_result, "__code__", None) is not GET_RESULT_CODE
        or (_closure(get_result) or {}).get("field") is not field
    ):
        return None
    if field is not (field_def.extensions or {}).get(DEFINITION_BACKREF) or not isinstance(field, StrawberryField):
        return None
    if any(type(extension).map_arguments is not _default_map_arguments for extension in field.extensions):
        return None
    extension_functions = tuple(chain.get("extension_functions") or ())
    config, scalar_registry = converter.config, converter.scalar_registry
    try:
        converted = convert_arguments(
            dict(arguments), field.arguments, scalar_registry=scalar_registry, config=config, info=None
        )
    except Exception:
        return None
    if not all(isinstance(value, IMMUTABLE) for value in converted.values()):
        return None
    info_class = config.info_class
    resolver = field.base_resolver
    self_parameter = parent_name = root_name = info_name = None
    if resolver:
        self_parameter = resolver.self_parameter
        parent_name = resolver.parent_parameter.name if resolver.parent_parameter else None
        root_name = resolver.root_parameter.name if resolver.root_parameter else None
        info_name = resolver.info_parameter.name if resolver.info_parameter else None

    def call(source: Any, info: Any, /, **_: Any) -> Any:
        # _resolver, _get_result_with_extensions (extension_resolver), get_arguments, wrapped_get_result
        strawberry_info = info_class(_raw_info=info, _field=field)
        kwargs = dict(converted)
        args = [source] if self_parameter else []
        if parent_name:
            kwargs[parent_name] = source
        if root_name:
            kwargs[root_name] = source
        if info_name:
            kwargs[info_name] = strawberry_info
        requested_info = "info" in kwargs
        if requested_info:
            kwargs.pop("info")

        def wrapped_get_result(_source: Any, info: Any, **kwargs: Any) -> Any:
            if requested_info:
                kwargs["info"] = info
            return field.get_result(_source, info=info, args=args, kwargs=kwargs)

        if not extension_functions:
            return wrapped_get_result(source, strawberry_info, **kwargs)
        return functools.reduce(
            lambda chained_fn, next_fn: functools.partial(next_fn, chained_fn), extension_functions, wrapped_get_result
        )(source, strawberry_info, **kwargs)

    plain = (
        not extension_functions
        and resolver
        and info_class is Info
        and type(field).get_result is StrawberryField.get_result
        and type(resolver).__call__ is StrawberryResolver.__call__
    )
    if plain:
        # The same without the layers that only pass things on: no extension to chain, the stock Info (built
        # only when the resolver asks for it: making it does nothing else), ``get_result`` calling the resolver.
        needs_info = bool(info_name) or "info" in converted

        def call_plain(source: Any, info: Any, /, **_: Any) -> Any:
            kwargs = dict(converted)
            if parent_name:
                kwargs[parent_name] = source
            if root_name:
                kwargs[root_name] = source
            if needs_info:
                strawberry_info = info_class(_raw_info=info, _field=field)
                if info_name:
                    kwargs[info_name] = strawberry_info
                if "info" in kwargs:  # Strawberry pops it and passes its Info back under that name, last
                    del kwargs["info"]
                    kwargs["info"] = strawberry_info
            if self_parameter:
                return resolver(source, **kwargs)
            return resolver(**kwargs)

    chosen = call_plain if plain else call
    if not is_async:
        return chosen

    async def call_async(source: Any, info: Any, /, **_: Any) -> Any:
        result = chosen(source, info)
        return await result if inspect.isawaitable(result) else result  # await_maybe

    return call_async


EnumType: Any = None  # Strawberry's CustomGraphQLEnumType
if AVAILABLE:
    try:
        from strawberry.schema.schema_converter import CustomGraphQLEnumType as EnumType
    except ImportError:
        EnumType = None


def leaf_coercion(leaf: Any) -> Any:
    """The leaf type's ``coerce_output_value``, or for a Strawberry enum whose values are all strings (or all
    ints) the same answer from a table: Strawberry's own compares the member's value with each of the type's
    values in turn and answers the first name that matches; anything the table does not hold (another type of
    value, a value no name has) is still answered by Strawberry's own, exceptions included."""
    coerce = leaf.coerce_output_value
    if EnumType is None or type(leaf) is not EnumType or type(leaf).coerce_output_value is not _ENUM_COERCE:
        return coerce
    if "coerce_output_value" in getattr(leaf, "__dict__", {}):
        return coerce
    kinds = {type(value.value) for value in leaf.values.values()}
    if len(kinds) != 1 or not kinds <= {str, int}:
        return coerce
    kind = kinds.pop()
    table: dict[Any, str] = {}
    for name, value in leaf.values.items():
        table.setdefault(value.value, name)
    wrapped_cls = leaf.wrapped_cls

    def coerce_enum(output_value: Any) -> Any:
        if isinstance(output_value, wrapped_cls):
            key = output_value.value
            if type(key) is kind:
                name = table.get(key)
                if name is not None:
                    return name
        return coerce(output_value)

    return coerce_enum


_ENUM_COERCE: Any = getattr(EnumType, "coerce_output_value", None)
