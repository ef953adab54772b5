"""One account admin's script against tokengate with its default limits: must meet no 429.

tokengate runs with the defaults a deployment keeps. The account holds 20 service tokens (with grants on
projects) and 10 members (with grants); then one client, acting as the account admin with its personal token,
sends 1,000 requests in 30 s (open loop: each at its time, whatever the answers before it) in a fixed cycle
of 20: what an admin script reads (once a cycle the Service tokens page's list with 30 days of usage; a plain
token list, the members with their grants, the viewer, a check, the projects, an audit log page) and writes (a new
service token, a member's grants changed back and forth). It reports the answers by status, how many were 429, and
what the cost extensions said (requested and actual points, the least left in the bucket).

    .venv/bin/python bench/admin_script.py [--requests 1000] [--duration 30]

Exit status 1 when any request was answered 429 (or anything but 200). Results:
bench/results/admin-script-<stamp>.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    SERVER_CPU,
    BenchError,
    Processes,
    bootstrap,
    create_project,
    create_service_token,
    exit_on_sigterm,
    gql,
    log,
    start_tokengate,
    temporary_dir,
    tokengate_env,
    write_results,
)

TOKENS = 20
MEMBERS = 10
PAGE = """query SettingsServiceTokens($first: Int!) { account { serviceTokenConnection(first: $first) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { id name displayPrefix format state createdAt lastUsedAt expiresAt rotationRecommended
    grants { permissionSet allProjects projects { id name } } usage(days: 30) { day count } } } } } }"""
TOKEN_LIST = "{ account { serviceTokens { id name state expiresAt lastUsedAt grants { permissionSet allProjects } } } }"
MEMBER_LIST = """{ account { members { id email license state
  grants { permissionSet allProjects projects { id name } } } } }"""
VIEWER = "{ viewer { kind user { email } account { id name plan } } }"
CHECK = "{ check(resource: MEMBERS, access: WRITE) { allowed reason } }"
PROJECTS = "{ account { projects { id name } } }"
AUDIT = "{ account { auditLog(first: 20) { edges { node { action actor } } } } }"
CREATE_TOKEN = """mutation($input: CreateServiceTokenInput!) {
  createServiceToken(input: $input) { serviceToken { id name } secret } }"""
CREATE_USER = """mutation($email: String!, $grants: [GrantInput!]!) {
  createUser(email: $email, license: DEVELOPER, grants: $grants) { id } }"""
UPDATE_USER = """mutation($id: ID!, $grants: [GrantInput!]) { updateUser(id: $id, grants: $grants) { id } }"""


def cycle(projects: list[str], members: list[str], number: int) -> list[tuple[str, str, dict[str, Any]]]:
    """The 20 requests of one cycle: (what, document, variables)."""
    member = members[number % len(members)]
    project = projects[number % len(projects)]
    grants = [
        {"permissionSet": "JOB_VIEWER" if number % 2 else "JOB_ADMIN", "allProjects": False, "projectIds": [project]}
    ]
    token = {
        "name": f"script {number}",
        "grants": [{"permissionSet": "JOB_VIEWER", "allProjects": False, "projectIds": [project]}],
    }
    return [
        ("viewer", VIEWER, {}),
        ("service tokens page", PAGE, {"first": 50}),
        ("token list", TOKEN_LIST, {}),
        ("members", MEMBER_LIST, {}),
        ("check", CHECK, {}),
        ("projects", PROJECTS, {}),
        ("token list", TOKEN_LIST, {}),
        ("members", MEMBER_LIST, {}),
        ("audit log", AUDIT, {}),
        ("create token", CREATE_TOKEN, {"input": token}),
        ("viewer", VIEWER, {}),
        ("token list", TOKEN_LIST, {}),
        ("token list", TOKEN_LIST, {}),
        ("members", MEMBER_LIST, {}),
        ("update member", UPDATE_USER, {"id": member, "grants": grants}),
        ("check", CHECK, {}),
        ("projects", PROJECTS, {}),
        ("members", MEMBER_LIST, {}),
        ("token list", TOKEN_LIST, {}),
        ("audit log", AUDIT, {}),
    ]


async def run_script(url: str, token: str, projects: list[str], members: list[str], requests: int, duration: float):
    plan: list[tuple[str, str, dict[str, Any]]] = []
    number = 0
    while len(plan) < requests:
        plan.extend(cycle(projects, members, number))
        number += 1
    plan = plan[:requests]
    statuses: Counter[str] = Counter()
    by_what: dict[str, Counter[int]] = {}
    requested: Counter[str] = Counter()
    actual: Counter[str] = Counter()
    least_left: list[float] = []
    answered: Counter[str] = Counter()
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(what: str, query: str, variables: dict[str, Any]) -> None:
            async with session.post(url, json={"query": query, "variables": variables}) as response:
                body = await response.json(content_type=None)
            statuses[str(response.status)] += 1
            by_what.setdefault(what, Counter())[response.status] += 1
            if body.get("errors") and len(errors) < 5:
                errors.append(f"{what}: {response.status} {body['errors'][0].get('message')}")
            cost = (body.get("extensions") or {}).get("cost")
            if cost and response.status == 200:
                answered[what] += 1
                requested[what] += cost["requested"]
                actual[what] += cost["actual"]
                least_left.append(cost["remaining"])

        started = time.monotonic()
        tasks = []
        for index, (what, query, variables) in enumerate(plan):
            due = started + index * duration / len(plan)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(one(what, query, variables)))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
    return {
        "requests": len(plan),
        "seconds": round(elapsed, 1),
        "statuses": dict(statuses),
        "refused_429": statuses.get("429", 0),
        "by_request": {what: dict(counter) for what, counter in by_what.items()},
        "mean_requested_points": {what: round(requested[what] / answered[what]) for what in requested},
        "mean_actual_points": {what: round(actual[what] / answered[what]) for what in actual},
        "points_per_second_actual": round(sum(actual.values()) / elapsed),
        "points_per_second_requested": round(sum(requested.values()) / elapsed),
        "least_left_in_bucket": min(least_left) if least_left else None,
        "first_errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()
    exit_on_sigterm()
    with temporary_dir("tokengate-admin-") as data_dir, Processes(Path(__file__).parent / "results" / "logs") as procs:
        env = tokengate_env(capacity=False)  # the defaults a deployment keeps
        server = start_tokengate(procs, "tokengate", data_dir, env, cpu=SERVER_CPU)
        seeded = bootstrap(data_dir, env, "Admin script")
        admin = seeded["token"]
        projects = [create_project(server.graphql, admin, name) for name in ("web", "jobs", "data")]
        for number in range(TOKENS):
            scope = [projects[number % 3]]
            create_service_token(
                server.graphql,
                admin,
                f"ci {number}",
                [{"permissionSet": "JOB_ADMIN", "allProjects": False, "projectIds": scope}],
            )
        members = []
        for number in range(MEMBERS - 1):  # and the admin: 10
            grants = [{"permissionSet": "JOB_VIEWER", "allProjects": False, "projectIds": [projects[number % 3]]}]
            data = gql(server.graphql, CREATE_USER, admin, {"email": f"dev{number}@bench.example", "grants": grants})
            members.append(data["createUser"]["id"])
        log(f"account seeded: {TOKENS} service tokens, {MEMBERS} members")
        result = asyncio.run(run_script(server.graphql, admin, projects, members, args.requests, args.duration))
    for key, value in result.items():
        log(f"  {key}: {value}")
    markdown = "\n".join(f"- {key}: {value}" for key, value in result.items()) + "\n"
    write_results("admin-script", result, markdown)
    ok = result["refused_429"] == 0 and set(result["statuses"]) == {"200"}
    log("held: no 429" if ok else "FAILED: the admin script met refusals")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as problem:
        log(f"error: {problem}")
        sys.exit(2)
