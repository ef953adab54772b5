"""The Strawberry schema and its printed SDL.

Strawberry defines the types, resolvers and directives and prints the SDL; requests are run by
api/operations.py on its graphql-core schema, so no Strawberry extension is configured here.
"""

from __future__ import annotations

from typing import Final

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


# Fields ("Type.field") whose answer is a function of the caller's principal and the field's arguments alone: no
# database, no clock, no client address, no side effect but a check's grant note (Context.noted_grants). A query
# selecting nothing else is answered again from memory for the same principal (graphql/engine/kept_answers.py);
# tests/api/test_kept_answers.py proves every one answers as executed.
ANSWERED_FROM_PRINCIPAL: Final = frozenset(
    {
        "Query.viewer",  # Viewer(kind, principal)
        "Query.account",  # Account.of(principal)
        "Query.check",  # principal.decide
        "Query.checks",
        "Query.permissionSets",  # the catalog and the principal's plan
        "Query.givablePermissionSets",  # core.policy's givable_sets(principal, projects)
        "Viewer.id",
        "Viewer.kind",
        "Viewer.account",
        "Account.id",
        "Account.name",
        "Account.plan",
        "Account.availablePermissionSets",
        "Decision.allowed",
        "Decision.reason",
        "PermissionSet.key",
        "PermissionSet.name",
        "PermissionSet.level",
        "PermissionSet.availableOnPlan",
        "GivablePermissionSet.key",
        "GivablePermissionSet.allowed",
        "GivablePermissionSet.reason",
    }
)


def sdl() -> str:
    """The schema in SDL, as committed in schema.graphql."""
    return schema.as_str() + "\n"
