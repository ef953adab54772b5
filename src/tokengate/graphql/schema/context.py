"""What every resolver can reach: the caller, the process's resources, the request's client address."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
from strawberry.types import Info as StrawberryInfo

from tokengate.auth.recent_sign_in import require_recent_sign_in
from tokengate.core.errors import Unauthenticated
from tokengate.core.policy import Principal
from tokengate.services import Actor, Backend

if TYPE_CHECKING:
    from tokengate.runtime import Runtime


@dataclass(slots=True)
class Context:
    runtime: Runtime
    principal: Principal | None  # None only for the documents anyone may run (introspection, leak reports)
    client_addr: str | None
    request_id: str
    pages_origin: str | None = None  # the origin the request was sent to (single sign-on's redirect URI)
    noted_grants: list[int] = field(default_factory=list)  # grants that allowed its checks (kept_answers.py)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    @property
    def backend(self) -> Backend:
        return self.runtime.backend

    @property
    def caller(self) -> Principal:
        """The authenticated principal."""
        if self.principal is None:
            raise Unauthenticated("authentication required")
        return self.principal

    @property
    def actor(self) -> Actor:
        """The caller as the services see it: who, through GraphQL, from where."""
        if self.principal is None:
            return Actor("anonymous", "graphql", self.client_addr)
        principal, config = self.principal, self.runtime.config
        return Actor.of(
            principal, self.client_addr, require_recent_sign_in=lambda: require_recent_sign_in(principal, config)
        )


# What resolvers are handed: typed, so ``info.context`` is a Context.
Info = StrawberryInfo[Context, None]
