"""The one place where client input is checked before any resolver runs.

- Text PostgreSQL cannot store is refused for every String and ID input, in variables and literals alike:
  PostgreSQL refuses NUL (U+0000) in ``text`` and asyncpg cannot encode an unpaired surrogate (JSON allows
  ``"\\ud800"``); either would otherwise surface as a database error deep in a resolver, i.e. a 500.
- Validation errors are the client's: a literal a scalar cannot parse (an Int of 5000 digits makes Python's
  ``int()`` raise ValueError) is reported by validation with that exception attached, which would otherwise
  read as an unexpected server error and be masked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import DocumentNode, ExecutionResult, GraphQLError, Node, StringValueNode
from strawberry.extensions import SchemaExtension

from tokengate.api.errors import BadUserInput

UNSTORABLE_MESSAGE = "must not contain NUL (\\u0000) characters or unpaired surrogates"


def is_storable(text: str) -> bool:
    """True when PostgreSQL can store ``text`` as UTF-8 ``text``."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_variable(variables: dict[str, Any] | None) -> str | None:
    """The name of the first variable holding unstorable text anywhere inside it (iteratively: JSON
    variables may nest deeper than the recursion limit)."""
    for name, value in (variables or {}).items():
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if not is_storable(item):
                    return name
            elif isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return None


def _nodes(document: DocumentNode) -> Iterator[Node]:
    stack: list[Any] = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, Node):
            yield item
            stack.extend(getattr(item, key) for key in item.keys if key != "loc")
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def has_unstorable_literal(query: str, document: DocumentNode) -> bool:
    # Only an escape (\u0000, \u{0}) yields NUL in a literal: the lexer refuses raw control characters
    # and unpaired surrogate escapes. So the walk runs only for the rare query with a \u escape.
    if "\\u" not in query:
        return False
    return any(isinstance(node, StringValueNode) and not is_storable(node.value) for node in _nodes(document))


def as_client_error(error: GraphQLError) -> GraphQLError:
    if error.original_error is None:
        return error
    return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path)


class InputGuard(SchemaExtension):
    """BAD_USER_INPUT before execution for unstorable text; validation errors never count as unexpected."""

    def on_validate(self) -> Iterator[None]:
        yield
        context = self.execution_context
        errors = context.pre_execution_errors
        if errors and any(error.original_error is not None for error in errors):
            # In place: strawberry has already put this list in its answer. (ValidationCache keeps the same
            # list for the next request with this document, which then finds it converted already.)
            errors[:] = [as_client_error(error) for error in errors]

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        problem = None
        name = unstorable_variable(context.variables)
        if name is not None:
            problem = f"variable ${name} {UNSTORABLE_MESSAGE}"
        elif (
            context.query is not None
            and context.graphql_document is not None
            and has_unstorable_literal(context.query, context.graphql_document)
        ):
            problem = f"string values {UNSTORABLE_MESSAGE}"
        if problem is not None:
            context.result = ExecutionResult(data=None, errors=[BadUserInput(problem)])
        yield
