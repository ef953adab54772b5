"""Scenario (b): bare Strawberry on aiohttp with its defaults, no caches, no authentication, static data.

It answers a query shaped like scenario (c):
    { viewer { kind account { name plan } } check(resource: JOBS, access: WRITE, projectId: "…") { allowed reason } }

Run: python bench/baseline_strawberry.py --port 8102   (then POST http://127.0.0.1:8102/graphql)
"""

from __future__ import annotations

import argparse
from enum import Enum

import strawberry
from aiohttp import web
from strawberry.aiohttp.views import GraphQLView


@strawberry.enum
class PrincipalKind(Enum):
    SERVICE_TOKEN = "SERVICE_TOKEN"
    USER = "USER"


@strawberry.enum
class Plan(Enum):
    DEVELOPER = "DEVELOPER"
    STARTER = "STARTER"
    TEAM = "TEAM"
    ENTERPRISE = "ENTERPRISE"
    ENTERPRISE_PLUS = "ENTERPRISE_PLUS"


@strawberry.enum
class Resource(Enum):
    JOBS = "JOBS"
    PROJECTS = "PROJECTS"
    RUNS = "RUNS"


@strawberry.enum
class Access(Enum):
    READ = "READ"
    WRITE = "WRITE"


@strawberry.type
class Account:
    name: str
    plan: Plan


@strawberry.type
class Viewer:
    kind: PrincipalKind
    account: Account


@strawberry.type
class Decision:
    allowed: bool
    reason: str


@strawberry.type
class Query:
    @strawberry.field
    def viewer(self) -> Viewer:
        return Viewer(kind=PrincipalKind.SERVICE_TOKEN, account=Account(name="Bench", plan=Plan.ENTERPRISE))

    @strawberry.field
    def check(self, resource: Resource, access: Access, project_id: strawberry.ID | None = None) -> Decision:
        return Decision(allowed=True, reason=f"allowed by JOB_ADMIN on {project_id}")


schema = strawberry.Schema(query=Query)


def create_app(served: strawberry.Schema = schema) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/graphql", GraphQLView(schema=served))
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102)
    args = parser.parse_args()
    web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
