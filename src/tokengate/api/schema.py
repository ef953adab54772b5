"""The Strawberry schema and its printed SDL."""

from __future__ import annotations

import functools
import logging

import strawberry
from graphql import GraphQLError, ValidationContext, ValidationRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.extensions.query_depth_limiter import IgnoreContext
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from tokengate.api.directives import Requires
from tokengate.api.errors import ApiError
from tokengate.api.execution import execution_context_class
from tokengate.api.input_guard import InputGuard
from tokengate.api.mutations import Mutation
from tokengate.api.queries import Query
from tokengate.api.service_tokens import ServiceTokenMutations

log = logging.getLogger("tokengate.graphql")

# Abuse limits. Introspection fields are exempt from the depth limit: GraphiQL's and codegen's
# introspection query nests ofType a dozen levels deep.
MAX_DEPTH = 10
MAX_ALIASES = 50
MAX_TOKENS = 5000
CACHE_SIZE = 1024


def is_introspection_field(context: IgnoreContext) -> bool:
    return context.field_name.startswith("__")


_StrawberryDepthLimit = query_depth_limiter.create_validator(MAX_DEPTH, is_introspection_field)


class DepthLimit(_StrawberryDepthLimit):  # type: ignore[misc, valid-type]
    """Strawberry's depth limit, except that it reads Int literals with ``int()`` while it is built: one past
    Python's 4300-digit limit raises ValueError there and would crash validation (a masked 500-like answer)."""

    def __init__(self, context: ValidationContext) -> None:
        try:
            super().__init__(context)
        except ValueError:
            ValidationRule.__init__(self, context)
            context.report_error(GraphQLError("an Int literal has too many digits"))


# The rule classes are built once: MaxAliasesLimiter and QueryDepthLimiter build new classes per
# instance, which changes ValidationCache's key every request and turns the cache off (10x slower).
LIMIT_RULES = (max_aliases.create_validator(MAX_ALIASES), DepthLimit)


def is_unexpected(error: GraphQLError) -> bool:
    """An error that is not a client's fault: it gets masked and logged with its traceback."""
    original = error.original_error
    return original is not None and not isinstance(original, (ApiError, GraphQLError))


class TokengateSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        # Typed errors and client mistakes are answers, not incidents; the HTTP layer logs the rest.
        return None


def build_schema() -> strawberry.Schema:
    return TokengateSchema(
        query=Query,
        mutation=merge_types("Mutation", (Mutation, ServiceTokenMutations)),
        schema_directives=[Requires],
        execution_context_class=execution_context_class(),  # the fast path, unless graphql-core changed
        extensions=[
            functools.partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
            functools.partial(AddValidationRules, list(LIMIT_RULES)),
            functools.partial(ParserCache, maxsize=CACHE_SIZE),
            functools.partial(ValidationCache, maxsize=CACHE_SIZE),
            InputGuard,
        ],
    )


schema = build_schema()


def sdl() -> str:
    """The schema in SDL, as committed in schema.graphql."""
    return schema.as_str() + "\n"
