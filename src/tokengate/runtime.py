"""The process-wide resources of a running server, built once by the app factory (app.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from aiohttp import web

from tokengate.auth.credentials import Authenticator
from tokengate.auth.gate import Gate
from tokengate.auth.ip_guard import IpGuard
from tokengate.auth.listener import CacheInvalidator, InvalidationListener
from tokengate.config import Config
from tokengate.graphql.engine.documents import DocumentCache
from tokengate.graphql.engine.kept_answers import KeptAnswers
from tokengate.http.observability import Metrics
from tokengate.jobs.token_notices import NoticeJob
from tokengate.jobs.webhook_delivery import DeliveryWorker
from tokengate.services import Backend


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
    answers: KeptAnswers = field(default_factory=KeptAnswers)  # queries that read only their principal


RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)
