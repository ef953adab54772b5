"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp import web

from tokengate.http.observability import CONTENT_TYPE
from tokengate.http.responses import json_response
from tokengate.runtime import RUNTIME
from tokengate.store.database import PoolExhausted

READINESS_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """503 while the database does not answer, and while this instance cannot hear its own invalidations (its
    heartbeat through LISTEN): a gateway should then send the traffic to an instance that can."""
    runtime = request.app[RUNTIME]
    try:
        async with asyncio.timeout(READINESS_TIMEOUT):
            await runtime.pool.fetchval("SELECT 1")
    except PoolExhausted:
        return json_response({"status": "unavailable", "database": "pool exhausted"}, status=503)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    problem = runtime.listener.problem
    if problem is not None:
        return json_response({"status": "unavailable", "invalidations": "not heard", "cause": problem}, status=503)
    return json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[RUNTIME].metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
