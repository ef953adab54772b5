"""The Strawberry schema and its printed SDL.

Strawberry defines the types, resolvers and directives and prints the SDL; requests are run by
api/operations.py on its graphql-core schema, so no Strawberry extension is configured here.
"""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from tokengate.api.directives import Requires
from tokengate.api.members import MemberMutations
from tokengate.api.mutations import Mutation
from tokengate.api.queries import Query
from tokengate.api.service_tokens import ServiceTokenMutations
from tokengate.api.token_policy import TokenPolicyMutations
from tokengate.api.user_tokens import UserTokenMutations
from tokengate.api.webhooks import WebhookMutations

schema = strawberry.Schema(
    query=Query,
    mutation=merge_types(
        "Mutation",
        (Mutation, ServiceTokenMutations, UserTokenMutations, MemberMutations, TokenPolicyMutations, WebhookMutations),
    ),
    schema_directives=[Requires],
)


def sdl() -> str:
    """The schema in SDL, as committed in schema.graphql."""
    return schema.as_str() + "\n"
