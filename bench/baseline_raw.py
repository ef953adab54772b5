"""Scenario (a): the ceiling. A raw aiohttp app with one JSON handler answering static data.

Run: python bench/baseline_raw.py --port 8101   (then GET http://127.0.0.1:8101/json)
"""

from __future__ import annotations

import argparse
import json

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    args = parser.parse_args()
    # No access log, as `tokengate serve` runs.
    web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
