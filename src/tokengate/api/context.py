"""What every resolver can reach: the principal, the database, the request's client address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from tokengate.api.errors import Unauthenticated
from tokengate.auth import Authenticator
from tokengate.config import Config
from tokengate.invalidation import InvalidationListener
from tokengate.ip_guard import IpGuard
from tokengate.observability import Metrics
from tokengate.policy import Principal
from tokengate.store.audit import AuditEntry


@dataclass
class Services:
    """Process-wide resources, built once by the app factory."""

    config: Config
    pool: asyncpg.Pool
    authenticator: Authenticator
    metrics: Metrics
    ip_guard: IpGuard
    listener: InvalidationListener | None = None


@dataclass
class Context:
    services: Services
    principal: Principal | None
    client_addr: str | None
    request_id: str

    @property
    def pool(self) -> asyncpg.Pool:
        return self.services.pool

    @property
    def caller(self) -> Principal:
        """The authenticated principal (only introspection runs without one)."""
        if self.principal is None:
            raise Unauthenticated("authentication required")
        return self.principal

    def audit_entry(self, action: str, target_id: str | None, details: dict[str, Any] | None = None) -> AuditEntry:
        principal = self.caller
        return AuditEntry(
            account_id=principal.account_id,
            action=action,
            actor=principal.actor,
            source="graphql",
            client_addr=self.client_addr,
            target_id=target_id,
            details=details or {},
        )
