"""The Strawberry schema and its printed SDL.

Strawberry defines the types, resolvers and directives and prints the SDL; requests are run by
api/operations.py on its graphql-core schema, so no Strawberry extension is configured here.
"""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from tokengate.graphql.schema.directives import Requires
from tokengate.graphql.schema.members import MemberMutations
from tokengate.graphql.schema.mutations import Mutation
from tokengate.graphql.schema.queries import Query
from tokengate.graphql.schema.scim_tokens import ScimTokenMutations
from tokengate.graphql.schema.service_tokens import ServiceTokenMutations
from tokengate.graphql.schema.sign_in import SignInMutations
from tokengate.graphql.schema.single_sign_on import SingleSignOnMutations
from tokengate.graphql.schema.token_policy import TokenPolicyMutations
from tokengate.graphql.schema.trust_policies import TrustPolicyMutations
from tokengate.graphql.schema.user_tokens import UserTokenMutations
from tokengate.graphql.schema.webhooks import WebhookMutations

schema = strawberry.Schema(
    query=Query,
    mutation=merge_types(
        "Mutation",
        (
            Mutation,
            ServiceTokenMutations,
            UserTokenMutations,
            MemberMutations,
            TokenPolicyMutations,
            WebhookMutations,
            SignInMutations,
            TrustPolicyMutations,
            ScimTokenMutations,
            SingleSignOnMutations,
        ),
    ),
    schema_directives=[Requires],
)


def sdl() -> str:
    """The schema in SDL, as committed in schema.graphql."""
    return schema.as_str() + "\n"
