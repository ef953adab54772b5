"""How GraphQL errors are answered: refusals with their contract codes, outages as SERVICE_UNAVAILABLE,
client mistakes as BAD_USER_INPUT, and anything else masked (logged with its traceback and request id)."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from tokengate.auth.gate import UNAVAILABLE_MESSAGE
from tokengate.core.errors import DomainError
from tokengate.store import DATABASE_UNAVAILABLE, DatabaseUnavailable

log = logging.getLogger("tokengate.graphql")


def is_database_unavailable(error: GraphQLError) -> bool:
    return isinstance(error.original_error, (DatabaseUnavailable, *DATABASE_UNAVAILABLE))


def is_unexpected(error: GraphQLError) -> bool:
    """An error that is not a client's fault: it gets masked and logged with its traceback."""
    original = error.original_error
    return original is not None and not isinstance(original, (DomainError, GraphQLError))


def format_errors(errors: list[GraphQLError] | tuple[GraphQLError, ...], request_id: str) -> list[dict[str, Any]]:
    formatted = []
    for error in errors:
        if is_database_unavailable(error):  # an outage, not a bug: the request is answered 503
            formatted.append(
                {"message": UNAVAILABLE_MESSAGE, "path": error.path, "extensions": {"code": "SERVICE_UNAVAILABLE"}}
            )
            continue
        if is_unexpected(error):
            log.error("unexpected error in request %s at %s", request_id, error.path, exc_info=error.original_error)
            formatted.append(
                {
                    "message": f"Internal server error (request id {request_id})",
                    "path": error.path,
                    "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
                }
            )
            continue
        entry = error.formatted
        original = error.original_error
        code = original.code if isinstance(original, DomainError) else "BAD_USER_INPUT"
        # Not unexpected: a refusal, or a syntax, validation or variable coercion error.
        entry.setdefault("extensions", {}).setdefault("code", code)
        formatted.append(entry)
    return formatted
