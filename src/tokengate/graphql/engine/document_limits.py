"""Abuse limits on GraphQL documents, applied while parsing (tokens) and validating (aliases, depth)."""

from __future__ import annotations

from typing import Final

from graphql import GraphQLError, ValidationContext, ValidationRule
from strawberry.extensions import max_aliases, query_depth_limiter
from strawberry.extensions.query_depth_limiter import IgnoreContext

# Introspection fields are exempt from the depth limit: GraphiQL's and codegen's introspection query nests
# ofType a dozen levels deep.
MAX_DEPTH: Final = 10
MAX_ALIASES: Final = 50
MAX_TOKENS: Final = 5000
MAX_DOCUMENT_LENGTH: Final = 100_000  # characters: a comment or string is one token, lexed a character at a time
# Without credentials only introspection and leak reports run: the full introspection query (every option, as
# GraphiQL and codegen ask) is 183 tokens in 1.6 kB, so this is about three times what they need. The parse
# runs on the event loop before the gate admits the request: 2,000 tokens took 20 ms there, 600 take 6 ms.
ANONYMOUS_MAX_TOKENS: Final = 600
ANONYMOUS_MAX_LENGTH: Final = 8 * 1024
# A body without credentials holds at most such a document and a few variables: a larger one is refused by its
# Content-Length, before it is read (a megabyte takes a millisecond to decode, 135 times a second).
ANONYMOUS_MAX_BODY_BYTES: Final = 64 * 1024


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


# Built once: MaxAliasesLimiter and QueryDepthLimiter build new classes per instance.
LIMIT_RULES: Final = (max_aliases.create_validator(MAX_ALIASES), DepthLimit)
