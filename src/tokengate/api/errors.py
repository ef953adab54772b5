"""Typed GraphQL errors: each carries ``extensions.code`` and passes through unmasked."""

from __future__ import annotations

from graphql import GraphQLError


class ApiError(GraphQLError):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str):
        super().__init__(message, extensions={"code": self.code})


class Unauthenticated(ApiError):
    code = "UNAUTHENTICATED"


class Forbidden(ApiError):
    code = "FORBIDDEN"


class NotFound(ApiError):
    code = "NOT_FOUND"


class BadUserInput(ApiError):
    code = "BAD_USER_INPUT"


class PlanRestricted(ApiError):
    code = "PLAN_RESTRICTED"


EXPECTED_CODES = frozenset(cls.code for cls in (Unauthenticated, Forbidden, NotFound, BadUserInput, PlanRestricted))


def not_found(kind: str) -> NotFound:
    """The one answer for an id that does not exist and an id of another account."""
    return NotFound(f"{kind} not found")
