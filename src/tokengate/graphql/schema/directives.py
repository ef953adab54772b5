"""``@requires(resource, access)``: printed in the SDL and enforced on every field that carries it."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.schema_directive import Location

from tokengate.core.catalog import is_account_resource
from tokengate.core.errors import Forbidden, NotFound
from tokengate.graphql.schema.enums import Access, Resource


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="requires",
    description="The caller needs this access to the resource; otherwise the field is null with FORBIDDEN.",
)
class Requires:
    resource: Resource  # type: ignore[valid-type]
    access: Access = Access.READ  # type: ignore[valid-type, attr-defined]


PROJECT_ARGUMENTS = ("project_id", "id")


class RequiresExtension(FieldExtension):
    """Asks policy (through the principal's ``decide``) before the resolver runs."""

    def __init__(self, resource: str, access: str):
        self.resource = resource
        self.access = access
        self.message = f"requires {resource}:{access}"
        self.account_resource = is_account_resource(resource)

    def _check(self, source: Any, info: Any, kwargs: dict[str, Any]) -> None:
        principal = info.context.principal
        if principal is None:
            raise Forbidden(self.message)
        project_id = None
        if not self.account_resource:
            project_id = getattr(source, "project_id_for_policy", None)
            for name in PROJECT_ARGUMENTS:
                if project_id is None and kwargs.get(name) is not None:
                    project_id = str(kwargs[name])
        decision = principal.decide(self.resource, self.access, project_id)
        if decision.unknown_project:
            raise NotFound("project")
        if not decision.allowed:
            info.context.runtime.metrics.count_denial(self.resource, self.access)
            raise Forbidden(self.message)
        info.context.runtime.gate.usage.note_grant(decision.grant_id)

    def resolve(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        self._check(source, info, kwargs)
        return next_(source, info, **kwargs)

    async def resolve_async(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        self._check(source, info, kwargs)
        return await next_(source, info, **kwargs)


def requires(resource: Any, access: Any = Access.READ, **field_options: Any) -> Any:  # type: ignore[attr-defined]
    """A Strawberry field (usable as a decorator) guarded by ``@requires(resource, access)``."""
    return strawberry.field(
        directives=[Requires(resource=resource, access=access)],
        extensions=[RequiresExtension(resource.value, access.value)],
        **field_options,
    )
