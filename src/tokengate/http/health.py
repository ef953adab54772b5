"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp import web

from tokengate.http.observability import CONTENT_TYPE
from tokengate.http.responses import json_response
from tokengate.runtime import RUNTIME

READINESS_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    pool = request.app[RUNTIME].pool
    try:
        async with asyncio.timeout(READINESS_TIMEOUT):
            await pool.fetchval("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[RUNTIME].metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
