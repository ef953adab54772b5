"""Query root."""

from __future__ import annotations

import strawberry

from tokengate.core.catalog import CATALOG
from tokengate.core.errors import InvalidInput
from tokengate.core.policy import Principal
from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.enums import Access, Resource
from tokengate.graphql.schema.inputs import CheckInput
from tokengate.graphql.schema.members import (
    GIVABLE_DESCRIPTION,
    GivablePermissionSet,
    givable_permission_sets,
)
from tokengate.graphql.schema.node import Node
from tokengate.graphql.schema.node_lookup import find_node
from tokengate.graphql.schema.types import Account, DecisionView, PermissionSet, Viewer

MAX_CHECKS = 1000  # questions in one `checks` call


def decide(principal: Principal, resource: str, access: str, project_id: str | None) -> DecisionView:
    """An answer, never an error: a project that is unknown or another account's is ``allowed: false,
    reason: "project not found"`` (the same for both), so one bad id in a ``checks`` batch nulls nothing else."""
    return DecisionView.of(principal.decide(resource, access, project_id))


def noted(info: Info, view: DecisionView) -> DecisionView:
    """Record which grant allowed it (Grant.lastUsedAt); a dict update, written in batches."""
    if view.allowed and view.grant_id is not None:
        info.context.runtime.gate.usage.note_grant(view.grant_id)
        info.context.noted_grants.append(view.grant_id)  # noted again when the answer is given from memory
    return view


@strawberry.type
class Query:
    @strawberry.field(description="Who is calling.")
    def viewer(self, info: Info) -> Viewer:
        principal = info.context.caller
        return Viewer(kind=principal.kind, principal=principal)

    @strawberry.field(
        description="The object this id names (any type that implements Node), if it is of the caller's own "
        "account and the caller may read it where the schema lists it; null otherwise, never an error. "
        "Token ids printed before ids had a type prefix are still accepted."
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await find_node(info, str(id))

    @strawberry.field(description="The caller's account.")
    def account(self, info: Info) -> Account:
        return Account.of(info.context.caller)

    @strawberry.field(description="The catalog, with what the caller's plan allows on service tokens.")
    def permission_sets(self, info: Info) -> list[PermissionSet]:
        allowed = CATALOG.sets_for_plan(info.context.caller.account_plan)
        return [
            PermissionSet(key=s.key, name=s.name, level=s.level, available_on_plan=s.key in allowed)
            for s in CATALOG.permission_sets.values()
        ]

    @strawberry.field(description=GIVABLE_DESCRIPTION)
    def givable_permission_sets(
        self, info: Info, project_ids: list[strawberry.ID] | None = None
    ) -> list[GivablePermissionSet]:
        scope = None if project_ids is None else [str(project_id) for project_id in project_ids]
        return givable_permission_sets(info.context.caller, scope)

    @strawberry.field(description="May the caller have this access (in this project)?")
    def check(
        self,
        info: Info,
        resource: Resource,  # type: ignore[valid-type]
        access: Access,  # type: ignore[valid-type]
        project_id: strawberry.ID | None = None,
    ) -> DecisionView:
        return noted(info, decide(info.context.caller, resource.value, access.value, project_id))

    @strawberry.field(description=f"Several checks (at most {MAX_CHECKS}) in one round trip, answered in order.")
    def checks(self, info: Info, requests: list[CheckInput]) -> list[DecisionView]:
        principal = info.context.caller
        if len(requests) > MAX_CHECKS:
            raise InvalidInput(f"at most {MAX_CHECKS} requests in one checks call")
        return [noted(info, decide(principal, r.resource.value, r.access.value, r.project_id)) for r in requests]
