"""The process-wide resources of a running server, built once by the app factory (app.py)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiohttp import web

from tokengate.api.documents import DocumentCache
from tokengate.authentication import Authenticator
from tokengate.config import Config
from tokengate.gate import Gate
from tokengate.invalidation import CacheInvalidator, InvalidationListener
from tokengate.ip_guard import IpGuard
from tokengate.observability import Metrics
from tokengate.scheduled_notices import NoticeJob
from tokengate.services import Backend
from tokengate.webhook_delivery import DeliveryWorker


@dataclass
class Runtime:
    config: Config
    pool: asyncpg.Pool
    backend: Backend  # what services write with
    authenticator: Authenticator
    ip_guard: IpGuard
    invalidator: CacheInvalidator
    gate: Gate
    metrics: Metrics
    documents: DocumentCache
    listener: InvalidationListener
    deliveries: DeliveryWorker  # webhook deliveries from the outbox
    notices: NoticeJob  # expiry and disuse notices


RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)
