"""GraphQL input types, and their one conversion into core values."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import strawberry

from tokengate.core.policy import Grant
from tokengate.graphql.schema.enums import Access, IpRuleType, PermissionSetKey, Resource


@strawberry.input
class GrantInput:
    permission_set: PermissionSetKey  # type: ignore[valid-type]
    all_projects: bool = True
    project_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input
class CheckInput:
    resource: Resource  # type: ignore[valid-type]
    access: Access  # type: ignore[valid-type]
    project_id: strawberry.ID | None = None


@strawberry.input
class CreateServiceTokenInput:
    name: str
    grants: list[GrantInput]
    expires_at: datetime | None = None


@strawberry.input
class IpRuleInput:
    name: str
    type: IpRuleType  # type: ignore[valid-type]
    cidrs: list[str] = strawberry.field(
        description="IPv4/IPv6 networks such as 203.0.113.0/24; a bare address means that one address. "
        "Host bits must be zero (10.0.0.5/24 is refused)."
    )


def grants_of(inputs: Iterable[GrantInput]) -> list[Grant]:
    """The grants as policy reads them (validated by the services)."""
    return [Grant(g.permission_set.value, g.all_projects, tuple(str(p) for p in g.project_ids)) for g in inputs]
