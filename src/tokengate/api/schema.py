"""The Strawberry schema and its printed SDL."""

from __future__ import annotations

import functools
import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.types import ExecutionContext

from tokengate.api.directives import Requires
from tokengate.api.errors import ApiError
from tokengate.api.mutations import Mutation
from tokengate.api.queries import Query

log = logging.getLogger("tokengate.graphql")


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
        mutation=Mutation,
        schema_directives=[Requires],
        extensions=[
            functools.partial(ParserCache, maxsize=1024),
            functools.partial(ValidationCache, maxsize=1024),
        ],
    )


schema = build_schema()


def sdl() -> str:
    """The schema in SDL, as committed in schema.graphql."""
    return schema.as_str() + "\n"
