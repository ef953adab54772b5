"""Tools and clients the project did not write, in Node, against a live tokengate: the graphql-http audit
suite (the GraphQL over HTTP specification's checks), Apollo Client 4 through a front end's whole flow, and
graphql-codegen's typed documents from the committed schema.graphql checked by tsc.

`make e2e` installs Debian's nodejs and npm when missing and the packages of tests/e2e/node/package-lock.json
with `npm ci` (once; later runs use what is installed, offline). A missing tool is an error, not a skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from typing import Any

from tests.conftest import Server
from tests.e2e.processes import NODE_DIR

TIMEOUT = 300


def run(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=NODE_DIR, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


async def node_json(script: str, server: Server, token: str) -> dict[str, Any]:
    """Runs a script of tests/e2e/node with the server's URL and a token; its last stdout line as JSON. Run as a
    subprocess of the test's own loop, so the in-process server keeps answering meanwhile."""
    env = {**os.environ, "TOKENGATE_URL": server.url, "TOKENGATE_TOKEN": token}
    process = await asyncio.create_subprocess_exec(
        "node",
        "--conditions=development",
        script,
        cwd=NODE_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode == 0, stderr.decode()[-4000:]
    return json.loads(stdout.decode().strip().splitlines()[-1])


async def test_graphql_http_audits_pass_without_errors_or_warnings(server, node_packages):
    seeded = await server.bootstrap("Audited", "ENTERPRISE")
    report = await node_json("audit.mjs", server, seeded.token)
    print("graphql-http audits:", json.dumps(report["counts"]), json.dumps(report["failed"], indent=1))
    assert report["total"] >= 60
    assert report["counts"].get("error", 0) == 0 and report["counts"].get("warn", 0) == 0, report["failed"]
    assert report["counts"].get("notice", 0) == 0, report["failed"]  # the MAYs hold too


async def test_apollo_client_runs_the_front_end_flow_with_no_cache_warning(server, node_packages):
    seeded = await server.bootstrap("Apollo", "ENTERPRISE")
    report = await node_json("apollo.mjs", server, seeded.token)
    failed = [step for step in report["steps"] if not step["ok"]]
    assert report["dev"] is True, "Apollo Client did not run its development build (which prints the warnings)"
    assert len(report["steps"]) >= 11 and not failed, json.dumps(failed, indent=1)
    assert report["warnings"] == []
    for step in report["steps"]:
        print("apollo:", step["name"])


def test_graphql_codegen_output_from_the_committed_schema_type_checks(node_packages):
    shutil.rmtree(NODE_DIR / "generated", ignore_errors=True)
    run("node_modules/.bin/graphql-codegen", "--config", "codegen.yml")
    assert (NODE_DIR / "generated" / "graphql.ts").exists()
    run("node_modules/.bin/tsc", "-p", "tsconfig.json")
