"""Running one GraphQL operation of a prepared document: the steps between the HTTP door and graphql-core.

Request errors (syntax, validation, an operation that cannot be chosen, unstorable text in the inputs) are
answered before anything executes; then graphql-core executes the operation on the Strawberry schema, with
the fast execution context (execution.py). Strawberry's own request pipeline is not used: parsing and
validation are cached per document (documents.py), and its extension hooks would only repeat that work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from graphql import (
    ExecutionResult,
    GraphQLError,
    Node,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    execute,
)
from strawberry.execution import optimized_is_awaitable

from tokengate.api.compiled import execute_compiled
from tokengate.api.context import Context
from tokengate.api.documents import Document
from tokengate.api.execution import execution_context_class
from tokengate.api.schema import schema
from tokengate.errors import InvalidInput
from tokengate.validation import shown

CORE_SCHEMA: Final = schema._schema
EXECUTOR: Final = execution_context_class()  # the fast path, unless graphql-core changed under it
UNSTORABLE_MESSAGE: Final = "must not contain NUL (\\u0000) characters or unpaired surrogates"


class RequestRefused(Exception):
    """A request the GraphQL door answers with an HTTP status of its own (not a GraphQL result)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class RequestErrors:
    """Errors that stop a request before execution: the answer has no data."""

    errors: tuple[GraphQLError, ...]


def is_storable(text: str) -> bool:
    """True when PostgreSQL can store ``text`` as UTF-8 ``text`` (no NUL, no unpaired surrogate)."""
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


def _nodes(root: Node) -> Iterator[Node]:
    stack: list[Any] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, Node):
            yield item
            stack.extend(getattr(item, key) for key in item.keys if key != "loc")
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def has_unstorable_literal(document: Document) -> bool:
    # Only an escape (\u0000, \u{0}) yields NUL in a literal: the lexer refuses raw control characters and
    # unpaired surrogate escapes. So the walk runs only for the rare query with a \u escape.
    if "\\u" not in document.text or document.ast is None:
        return False
    return any(isinstance(node, StringValueNode) and not is_storable(node.value) for node in _nodes(document.ast))


def unstorable_input(document: Document, variables: dict[str, Any] | None) -> InvalidInput | None:
    """Text PostgreSQL cannot store, refused for every String and ID input before any resolver runs (it would
    otherwise surface as a database error deep in a resolver)."""
    name = unstorable_variable(variables)
    if name is not None:
        return InvalidInput(f"variable ${name} {UNSTORABLE_MESSAGE}")
    if has_unstorable_literal(document):
        return InvalidInput(f"string values {UNSTORABLE_MESSAGE}")
    return None


def operation_not_chosen(document: Document, operation_name: str | None) -> RequestErrors | None:
    """The request error when the operation to run cannot be chosen (GraphQL's GetOperation): several
    operations and no operationName, or no operation of that name."""
    if document.operation(operation_name) is not None:
        return None
    if operation_name is None:
        message = "the document has several operations: send operationName to choose one"
    else:
        message = f"no operation named {shown(operation_name)!r} in the document"
    return RequestErrors((GraphQLError(message, extensions={"code": "BAD_REQUEST"}),))


def refuse_unsupported(operation: OperationDefinitionNode, allow_mutations: bool) -> None:
    """Refuse what the transport answers with a status of its own: a subscription, a mutation over GET."""
    if operation.operation == OperationType.SUBSCRIPTION:
        raise RequestRefused(400, "subscriptions are not supported")
    if operation.operation == OperationType.MUTATION and not allow_mutations:
        raise RequestRefused(405, "mutations must be sent with POST", {"Allow": "POST"})


async def run(
    document: Document,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    context: Context,
    *,
    allow_mutations: bool,
) -> ExecutionResult | RequestErrors:
    """Choose the operation, validate (once per document), guard the inputs, then execute. Raises
    ``RequestRefused`` (before validation, as Strawberry did: a subscription is a 400, not a validation error)."""
    if document.ast is None:
        return RequestErrors(document.syntax_errors)
    not_chosen = operation_not_chosen(document, operation_name)
    if not_chosen is not None:
        return not_chosen
    operation = document.operation(operation_name)
    assert operation is not None
    refuse_unsupported(operation, allow_mutations)
    errors = document.validation_errors(CORE_SCHEMA)
    if errors:
        return RequestErrors(errors)
    problem = unstorable_input(document, variables)
    if problem is not None:
        return RequestErrors((GraphQLError(str(problem), original_error=problem),))
    result = execute_compiled(CORE_SCHEMA, document, operation_name, variables, context)
    if result is None:  # no plan for this operation (compiled.py), or variables graphql-core refuses
        result = execute(
            CORE_SCHEMA,
            document.ast,
            variable_values=variables,
            operation_name=operation_name,
            context_value=context,
            executor_class=EXECUTOR,
            is_awaitable=optimized_is_awaitable,
        )
    if not isinstance(result, ExecutionResult):
        result = await result
    if is_request_error(result):
        return RequestErrors(tuple(result.errors or ()))
    return result


def is_request_error(result: ExecutionResult) -> bool:
    """graphql-core answers a request error it finds while executing (variable values that cannot be coerced)
    with an errors-only result; unlike a field error that nulls the whole data, none of its errors has a path."""
    return result.data is None and bool(result.errors) and all(error.path is None for error in result.errors or ())
