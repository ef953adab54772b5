"""Scenarios (a) and (a'): the ceilings, on uvloop without an access log, as `tokengate serve` runs.

(a)  a raw aiohttp app with one JSON handler answering static data (router, request and response objects);
(a') aiohttp's low-level ``web.Server`` answering a fixed 200 with no body (no application at all).

Run: python bench/baseline_raw.py --port 8101 [--low-level]   (then GET http://127.0.0.1:8101/json)
"""

from __future__ import annotations

import argparse
import asyncio
import json

import uvloop
from aiohttp import web

# About the size and shape of what tokengate answers for scenario (c).
PAYLOAD = {
    "data": {
        "viewer": {"kind": "SERVICE_TOKEN", "account": {"name": "Bench", "plan": "ENTERPRISE"}},
        "check": {"allowed": True, "reason": "allowed by JOB_ADMIN on prj_0000000000000000"},
    }
}
BODY = json.dumps(PAYLOAD, separators=(",", ":"))


async def handle(request: web.Request) -> web.Response:
    return web.Response(text=BODY, content_type="application/json")


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/json", handle)
    return app


async def fixed_ok(request: web.BaseRequest) -> web.Response:
    return web.Response(status=200)


async def serve_low_level(host: str, port: int) -> None:
    runner = web.ServerRunner(web.Server(fixed_ok, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--low-level", action="store_true", help="(a'): web.Server with a fixed 200")
    args = parser.parse_args()
    if args.low_level:
        uvloop.run(serve_low_level(args.host, args.port))
        return
    # No access log, as `tokengate serve` runs.
    web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None, loop=uvloop.new_event_loop())


if __name__ == "__main__":
    main()
