"""The application factory: resources owned through ``cleanup_ctx`` (one exit stack: each stopped once started,
even when a later one fails to start), the middleware, and one module per door."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp_cors
from aiohttp import web

from tokengate.auth.credentials import Authenticator
from tokengate.auth.gate import Gate
from tokengate.auth.ip_guard import IpGuard, database_loader
from tokengate.auth.legacy_verifier import LegacyVerifier
from tokengate.auth.listener import CacheInvalidator, InvalidationListener, heartbeat, must_hear
from tokengate.auth.principal_cache import PrincipalCache
from tokengate.auth.sessions import SessionReader
from tokengate.config import Config
from tokengate.core.limits import Throttle
from tokengate.graphql.engine.documents import DocumentCache
from tokengate.http import (
    forward_auth,
    graphql,
    headers,
    health,
    introspection,
    pages,
    scim,
    secret_scanning,
    sign_in,
    single_sign_on,
    token_exchange,
)
from tokengate.http.middleware import ACCESS_LOG, METRICS, REQUEST_IDS, errors_as_json, observe
from tokengate.http.observability import AccessLog, LoopLag, Metrics, RequestIds, hide_malformed_request_text
from tokengate.http.protocol_errors import answer_protocol_errors_in_json
from tokengate.jobs.last_used import LastUsedRecorder
from tokengate.jobs.token_notices import NoticeJob
from tokengate.jobs.usage_recorder import UsageRecorder
from tokengate.jobs.webhook_delivery import DeliveryWorker, WebhookSender
from tokengate.runtime import RUNTIME, Runtime
from tokengate.services import Backend
from tokengate.services.service_tokens import audit_expired_use
from tokengate.store import database as db
from tokengate.store.migrations import migrate


def create_app(
    config: Config,
    *,
    dsn: str | None = None,
    migrate_on_start: bool = True,
    pool_setup: Callable[[Any], Awaitable[None]] | None = None,
    access_log: AccessLog | None = None,
) -> web.Application:
    """The application; it owns its pool, caches and background tasks through ``cleanup_ctx``."""
    hide_malformed_request_text()
    answer_protocol_errors_in_json()
    app = web.Application(client_max_size=graphql.MAX_BODY_BYTES, middlewares=[observe, errors_as_json])
    metrics = app[METRICS] = Metrics()
    app[REQUEST_IDS] = RequestIds()
    app[ACCESS_LOG] = access_log if access_log is not None else AccessLog()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        # Each resource's stop is pushed as soon as it has started: a start that fails half-way (the database
        # gone, a migration refused) stops what had started, in reverse order, before the error goes on.
        async with contextlib.AsyncExitStack() as started:
            target = dsn or await db.resolve_dsn(config)
            settings = config.database
            direct = settings.listen_url or target  # LISTEN and migrations: never through a transaction pooler
            pool = await db.open_pool(target, settings, setup=pool_setup)
            started.push_async_callback(pool.close)
            legacy = LegacyVerifier(max_pending=config.limits.legacy_verifications)
            started.callback(legacy.close)
            if migrate_on_start:
                await db.migrate_over(settings.listen_url, pool, migrate)
            usage = UsageRecorder(pool)
            usage.start()
            started.push_async_callback(usage.stop)
            last_used = LastUsedRecorder(pool)
            last_used.start()
            started.push_async_callback(last_used.stop)  # the uses of the last seconds, before the pool goes
            deliveries, notices = webhook_workers(config, pool)
            cache = PrincipalCache(max_size=config.principal_cache_size)
            ip_guard = IpGuard(database_loader(pool))
            invalidator = CacheInvalidator(cache, ip_guard)
            listener = InvalidationListener(direct, beat=heartbeat(pool), heartbeat_seconds=settings.heartbeat_seconds)
            listener.subscribe(invalidator.apply, invalidator.flush)
            started.push_async_callback(listener.stop)
            await listener.start()
            await must_hear(listener, settings.listen_url is not None)  # else ListenerDeaf: it must not serve
            throttle = Throttle(config.limits)
            backend = Backend(
                pool,
                config.secret_keys,
                apply=invalidator.apply,
                events_queued=deliveries.wake,
                max_tokens_per_account=config.limits.max_tokens_per_account,
                verify_legacy=legacy.first_match,
                refused=throttle.count,
            )
            started.push_async_callback(deliveries.stop)  # what it was sending goes back to the other instances
            await deliveries.start(backend)
            notices.start()
            started.push_async_callback(notices.stop)

            async def on_expired_use(credential: Any, client_addr: str | None) -> None:
                await audit_expired_use(backend, credential, client_addr, "graphql")

            authenticator = Authenticator(
                pool,
                config.secret_keys,
                last_used,
                cache=cache,
                cache_trusted=lambda: listener.healthy,
                on_expired_use=on_expired_use,
                verify_legacy=legacy.first_match,
                stale_seconds=config.stale_principal_seconds,
            )
            app[ACCESS_LOG].start()
            started.push_async_callback(app[ACCESS_LOG].stop)
            loop_lag = LoopLag()
            loop_lag.start()
            started.push_async_callback(loop_lag.stop)
            app[RUNTIME] = Runtime(
                config=config,
                pool=pool,
                backend=backend,
                authenticator=authenticator,
                ip_guard=ip_guard,
                invalidator=invalidator,
                gate=Gate(
                    config,
                    authenticator,
                    ip_guard,
                    metrics,
                    usage,
                    throttle,
                    SessionReader(pool, config.secret_keys, config.sign_in.session_idle_seconds),
                ),
                metrics=metrics,
                documents=DocumentCache(),
                listener=listener,
                deliveries=deliveries,
                notices=notices,
            )
            add_gauges(metrics, cache, pool)
            add_listener_metrics(metrics, listener)
            add_limit_metrics(metrics, throttle, legacy, loop_lag)
            yield

    app.cleanup_ctx.append(resources)
    graphql.add_routes(app)
    forward_auth.add_routes(app)
    introspection.add_routes(app)
    token_exchange.add_routes(app)
    scim.add_routes(app)
    health.add_routes(app)
    pages.add_routes(app)
    sign_in.add_routes(app)
    single_sign_on.add_routes(app)
    headers.add_hooks(app)
    secret_scanning.add_routes(app, config.github_scanning_keys)
    allow_cross_origin(app, config.cors_origins)
    return app


def webhook_workers(config: Config, pool: Any) -> tuple[DeliveryWorker, NoticeJob]:
    """The delivery worker and the scheduled notices every instance runs (they share the work through the
    database)."""
    timing = config.webhook_timing
    sender = WebhookSender(config.secret_keys, timing, config.webhook_allow_private)
    deliveries = DeliveryWorker(pool, sender, timing)
    return deliveries, NoticeJob(pool, config.secret_keys, timing.notice_interval_seconds, deliveries.wake)


def add_gauges(metrics: Metrics, cache: PrincipalCache, pool: Any) -> None:
    pid = str(os.getpid())
    metrics.add_gauges(
        "tokengate_process",
        "The process that answered this scrape (each of `serve --workers N` keeps its own metrics)",
        "pid",
        lambda: [(pid, 1)],
    )
    metrics.add_gauges(
        "tokengate_principal_cache",
        "Principal cache: hits, misses, evictions and invalidations since start, entries and size limit now",
        "stat",
        lambda: [
            ("hits", cache.stats.hits),
            ("misses", cache.stats.misses),
            ("evictions", cache.stats.evictions),
            ("invalidations", cache.stats.invalidations),
            ("flushes", cache.stats.flushes),
            ("entries", len(cache)),
            ("max_entries", cache.max_size),
        ],
    )
    metrics.add_gauges(
        "tokengate_db_pool_connections",
        "Database pool connections by state",
        "state",
        lambda: [("in_use", pool.get_size() - pool.get_idle_size()), ("idle", pool.get_idle_size())],
    )


def add_listener_metrics(metrics: Metrics, listener: InvalidationListener) -> None:
    metrics.add_gauges(
        "tokengate_invalidations_heard",
        "1 while this instance hears its own heartbeat through LISTEN (its caches are trusted), else 0: every "
        "request asks the database and /readyz answers 503",
        "listener",
        lambda: [("heartbeat", 1 if listener.healthy else 0)],
    )
    metrics.add_gauges(
        "tokengate_invalidation_heartbeats",
        "Heartbeats this instance sent itself and heard back since start, and listener reconnects",
        "stat",
        lambda: [
            ("sent", listener.heartbeats_sent),
            ("heard", listener.heartbeats_heard),
            ("reconnects", listener.reconnects),
        ],
    )


def add_limit_metrics(metrics: Metrics, throttle: Throttle, legacy: LegacyVerifier, loop_lag: LoopLag) -> None:
    """What the limits refused, the argon2id pool, and how late the event loop runs (limits.py, README "Limits")."""
    metrics.add_counters(
        "tokengate_refusals",
        "Requests refused to keep the service up, by limit: rate limits (address, principal, anonymous, failures, "
        "cost), the cost budget, quotas, a full argon2id pool, connections over the per-address cap",
        "limit",
        lambda: list(throttle.refused.items()),
    )
    metrics.add_gauges(
        "tokengate_legacy_verifications",
        "argon2id verifications of legacy tokens: running or waiting now, and done since start",
        "stat",
        lambda: [("pending", legacy.pending), ("done", legacy.verifications)],
    )
    metrics.add_histogram(
        "tokengate_event_loop_lag_seconds",
        f"How much later than asked the event loop woke a task sleeping {LoopLag.INTERVAL}s (time it was busy)",
        loop_lag.histogram,
    )


def allow_cross_origin(app: web.Application, origins: tuple[str, ...]) -> None:
    """CORS for browser front ends on the configured origins only (none by default)."""
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,  # tokens travel in Authorization, never in cookies
        allow_headers=("Authorization", "Content-Type"),
        expose_headers=("X-Request-Id", "WWW-Authenticate"),
        allow_methods=("GET", "POST"),
        max_age=600,
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    for route in list(app.router.routes()):
        if route.method in ("GET", "POST") and not route.resource.canonical.startswith("/static"):
            cors.add(route)
