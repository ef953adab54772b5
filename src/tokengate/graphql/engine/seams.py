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

import inspect
import logging
from typing import Any, Final

from graphql import GraphQLField

__all__ = ["AVAILABLE", "BASIC_RESULT_CODE", "DEFINITION_BACKREF", "PROBLEM", "ExecutionContext", "ResolveInfo"]
__all__ += ["StrawberryField", "basic_field", "problem"]

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
