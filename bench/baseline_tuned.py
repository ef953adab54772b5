"""Scenarios (b') and (e'): Strawberry as a user tunes it with one line each, the fair anchors.

GraphQLView on aiohttp, ParserCache and ValidationCache on, uvloop, no access log, static data:
  --scenario c   the query of (c): { viewer { kind account { name plan } } check(...) { allowed reason } }
  --scenario e   the query of (e): 50 service tokens with grants and projects, shaped like the seeded ones

Run: python bench/baseline_tuned.py --scenario c --port 8103   (then POST http://127.0.0.1:8103/graphql)
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from enum import Enum

import strawberry
import uvloop
from aiohttp import web
from baseline_strawberry import Access, Decision, Plan, PrincipalKind, Resource, create_app  # shared by both anchors
from strawberry.extensions import ParserCache, ValidationCache

LISTED_TOKENS = 50
PROJECTS = 10


@strawberry.enum
class PermissionSetKey(Enum):
    JOB_ADMIN = "JOB_ADMIN"
    ANALYST = "ANALYST"
    JOB_VIEWER = "JOB_VIEWER"
    DEVELOPER = "DEVELOPER"
    ACCOUNT_VIEWER = "ACCOUNT_VIEWER"


@strawberry.type
class Project:
    id: strawberry.ID
    name: str


@strawberry.type
class Grant:
    permission_set: PermissionSetKey
    all_projects: bool
    projects: list[Project]


@strawberry.type
class ServiceToken:
    id: strawberry.ID
    name: str
    display_prefix: str
    created_at: datetime
    grants: list[Grant]


PROJECT_LIST = [Project(id=strawberry.ID(f"prj_{i:016d}"), name=f"bench-project-{i:02d}") for i in range(PROJECTS)]


def grants_of(index: int) -> list[Grant]:
    """The shapes bench/run.py seeds tokengate with (listed_token_grants)."""
    pick = [PROJECT_LIST[(index + step) % PROJECTS] for step in range(1 + index % 3)]
    shapes = [
        [Grant(permission_set=PermissionSetKey.JOB_ADMIN, all_projects=False, projects=pick)],
        [
            Grant(permission_set=PermissionSetKey.ANALYST, all_projects=True, projects=[]),
            Grant(permission_set=PermissionSetKey.JOB_VIEWER, all_projects=False, projects=pick),
        ],
        [
            Grant(permission_set=PermissionSetKey.DEVELOPER, all_projects=False, projects=pick),
            Grant(permission_set=PermissionSetKey.ACCOUNT_VIEWER, all_projects=True, projects=[]),
        ],
    ]
    return shapes[index % len(shapes)]


TOKENS = [
    ServiceToken(
        id=strawberry.ID(f"{i:016d}"),
        name=f"bench-listed-{i:02d}",
        display_prefix="tgs_AbCd…",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        grants=grants_of(i),
    )
    for i in range(LISTED_TOKENS)
]


@strawberry.type
class Account:
    name: str
    plan: Plan

    @strawberry.field
    def service_tokens(self) -> list[ServiceToken]:
        return TOKENS


@strawberry.type
class Viewer:
    kind: PrincipalKind
    account: Account


ACCOUNT = Account(name="Bench", plan=Plan.ENTERPRISE)


@strawberry.type
class Query:
    @strawberry.field
    def viewer(self) -> Viewer:
        return Viewer(kind=PrincipalKind.SERVICE_TOKEN, account=ACCOUNT)

    @strawberry.field
    def account(self) -> Account:
        return ACCOUNT

    @strawberry.field
    def check(self, resource: Resource, access: Access, project_id: strawberry.ID | None = None) -> Decision:
        return Decision(allowed=True, reason=f"allowed by JOB_ADMIN on {project_id}")


# The one line each a user adds: caches for parsing and validation (as factories, per Strawberry's docs).
schema = strawberry.Schema(
    query=Query, extensions=[lambda: ParserCache(maxsize=1024), lambda: ValidationCache(maxsize=1024)]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8103)
    parser.add_argument("--scenario", choices=("c", "e"), default="c", help="informational: one schema serves both")
    args = parser.parse_args()
    web.run_app(
        create_app(schema), host=args.host, port=args.port, print=None, access_log=None, loop=uvloop.new_event_loop()
    )


if __name__ == "__main__":
    main()
