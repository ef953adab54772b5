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

All of them are read once, when this module is imported, inside one ``try``: a renamed or changed internal
(an ImportError, an AttributeError, or a code that is no longer there) does not stop tokengate from starting.
``PROBLEM`` then says what is missing, ``AVAILABLE`` is False, a warning is logged once (on the first
query), and every operation runs on Strawberry's own execution (its schema's ``execution_context_class``
through graphql-core's ``execute``), answering exactly as before, only slower. The upper bound on
strawberry-graphql in pyproject.toml keeps such a change from arriving unseen; ``tests/api/test_library_seams.py``
simulates the rename.
"""

from __future__ import annotations

import dis
import inspect
import logging
from typing import Any, Final

from graphql import GraphQLField

__all__ = ["AVAILABLE", "BASIC_RESULT_CODE", "DEFINITION_BACKREF", "PROBLEM", "ExecutionContext", "ResolveInfo"]
__all__ += ["INFO_FREE_TYPE_CHECKS", "StrawberryField", "basic_field", "info_free_type_check", "problem"]

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
