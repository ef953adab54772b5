"""GraphQL input types and the checks that turn them into core values."""

from __future__ import annotations

import strawberry

from tokengate.api.enums import Access, PermissionSetKey, Resource
from tokengate.api.errors import BadUserInput
from tokengate.policy import Grant, GrantProblem, NameProblem, check_grants, checked_name


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


def require_name(value: str, what: str = "name") -> str:
    """Names are 1 to 255 characters (after trimming surrounding spaces)."""
    try:
        return checked_name(value, what)
    except NameProblem as problem:
        raise BadUserInput(str(problem)) from None


def grants_from_input(grants: list[GrantInput], account_project_ids: frozenset[str]) -> tuple[Grant, ...]:
    try:
        return check_grants(
            [Grant(g.permission_set.value, g.all_projects, tuple(str(p) for p in g.project_ids)) for g in grants],
            account_project_ids,
        )
    except GrantProblem as problem:
        raise BadUserInput(str(problem)) from None
