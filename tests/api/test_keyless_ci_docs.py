"""docs/keyless-ci.md's GitHub Actions step and GitLab CI script, run as written (bash, curl, jq) against a
tokengate and the tests' loopback OIDC issuer, which stands in for GitHub's ID-token endpoint
(``ACTIONS_ID_TOKEN_REQUEST_URL`` / ``_TOKEN``) and for the token GitLab puts in the job's variable."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.oidc_issuer import Issuer, running_issuer
from tests.api.test_keyless_ci import AUDIENCE, config, github_policy
from tests.conftest import CAPTURED_OUTPUT, Server, start_server
from tokengate.core import trust_policies as rules
from tokengate.core.policy import Grant
from tokengate.services import OPERATOR
from tokengate.services import trust_policies as service

DOC = Path(__file__).resolve().parents[2] / "docs" / "keyless-ci.md"

pytestmark = pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")


def yaml_blocks() -> list[Any]:
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)]


def github_step() -> tuple[dict[str, str], str]:
    workflow = next(block for block in yaml_blocks() if "jobs" in block)
    job = workflow["jobs"]["deploy"]
    assert workflow["permissions"]["id-token"] == "write"
    (step,) = [step for step in job["steps"] if "oauth/token" in step.get("run", "")]
    return job["env"], step["run"]


def gitlab_job() -> dict[str, Any]:
    return next(block for block in yaml_blocks() if "deploy" in block and "id_tokens" in block["deploy"])["deploy"]


async def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], **env},
    )
    # Checked for secrets at the end of the run; the line that asks GitHub to mask the token holds it by design.
    shown = "\n".join(line for line in result.stdout.splitlines() if not line.startswith("::add-mask::"))
    CAPTURED_OUTPUT.append(shown + result.stderr)
    return result


@pytest.fixture
async def served(database: str, tmp_path: Path) -> AsyncIterator[tuple[Server, Issuer, str]]:
    async with running_issuer() as issuer:
        async for server in start_server(database, config(tmp_path)):
            seeded = await server.bootstrap()
            yield server, issuer, seeded.account_id


async def test_the_github_actions_step_exchanges_and_calls_auth_check(served: tuple[Server, Issuer, str]) -> None:
    server, issuer, account_id = served
    env, script = github_step()
    env = {
        **env,
        "TOKENGATE_URL": server.url,
        "TOKENGATE_AUDIENCE": AUDIENCE,
        # As the runner sets them: the URL already has a query string, the step appends &audience=.
        "ACTIONS_ID_TOKEN_REQUEST_URL": issuer.url + "/_apis/pipelines/idtoken?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": issuer.request_token,
    }
    refused = await run(script, env)  # no policy yet: the exchange is refused, the step fails
    assert refused.returncode != 0 and "auth check: 200" not in refused.stdout
    await github_policy(server, account_id, issuer)
    result = await run(script, env)
    assert result.returncode == 0, result.stderr
    assert "auth check: 200" in result.stdout
    assert re.search(r"::add-mask::tgx_[0-9A-Za-z]{54}", result.stdout)
    server.issued.append(result.stdout.split("::add-mask::")[1].split()[0])


async def test_the_gitlab_ci_script_exchanges_and_calls_auth_check(served: tuple[Server, Issuer, str]) -> None:
    server, issuer, account_id = served
    job = gitlab_job()
    audience = job["id_tokens"]["TOKENGATE_ID_TOKEN"]["aud"]
    binding = rules.gitlab_ci(
        audience=audience, project_path="group/app", namespace_id="77", project_id="88", ref="main", issuer=issuer.url
    )
    await service.create(
        server.runtime.backend, OPERATOR, account_id, "gl", binding, [Grant("JOB_RUNNER")], allow_private=True
    )
    env = {
        **job["variables"],
        "TOKENGATE_URL": server.url,
        "TOKENGATE_ID_TOKEN": issuer.sign(issuer.gitlab(audience)),
    }
    result = await run("\n".join(job["script"]), env)
    assert result.returncode == 0, result.stderr
    assert "auth check: 200" in result.stdout
    # A job of the same project path in another namespace gets nothing.
    env["TOKENGATE_ID_TOKEN"] = issuer.sign(issuer.gitlab(audience, namespace_id="78"))
    refused = await run("\n".join(job["script"]), env)
    assert refused.returncode != 0 and "auth check: 200" not in refused.stdout
    assert "returned error: 400" in refused.stderr  # the exchange itself refused it
