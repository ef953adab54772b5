"""A typed Python client generated from the committed schema.graphql drives a live server.

ariadne-codegen pins an older graphql-core than Strawberry needs, so it gets its own virtualenv
(.venv-codegen/, kept between runs); the generated client runs there too, as in a client project.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CODEGEN_VENV = ROOT / ".venv-codegen"
CODEGEN_REQUIREMENT = "ariadne-codegen==0.19.*"
PACKAGE = "tokengate_client"


@dataclass(frozen=True)
class GeneratedClient:
    python: Path  # the codegen virtualenv's interpreter, which has the client's dependencies
    package_dir: Path  # holds the generated package


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


def codegen_python() -> Path:
    """The codegen virtualenv's python, created and installed on first use (and when the pin changes)."""
    python = CODEGEN_VENV / "bin" / "python"
    stamp = CODEGEN_VENV / ".installed"
    if python.exists() and stamp.exists() and stamp.read_text() == CODEGEN_REQUIREMENT:
        return python
    if not python.exists():
        run(sys.executable, "-m", "venv", "--clear", CODEGEN_VENV)
    run(python, "-m", "pip", "install", "-q", CODEGEN_REQUIREMENT)
    stamp.write_text(CODEGEN_REQUIREMENT)
    return python


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory: pytest.TempPathFactory) -> GeneratedClient:
    python = codegen_python()
    work = tmp_path_factory.mktemp("codegen")
    (work / "out").mkdir()
    # The same configuration a client project keeps in its pyproject.toml (see the README).
    (work / "pyproject.toml").write_text(
        "[tool.ariadne-codegen]\n"
        f'schema_path = "{ROOT / "schema.graphql"}"\n'
        f'queries_path = "{HERE / "operations.graphql"}"\n'
        f'target_package_name = "{PACKAGE}"\n'
        f'target_package_path = "{work / "out"}"\n'
        "async_client = true\n",
        encoding="utf-8",
    )
    run(python.parent / "ariadne-codegen", cwd=work)
    return GeneratedClient(python, work / "out")


async def drive(client: GeneratedClient, url: str, token: str) -> dict:
    """Runs codegen_driver.py with the generated client; without blocking the loop the server runs on."""
    process = await asyncio.create_subprocess_exec(
        str(client.python),
        str(HERE / "codegen_driver.py"),
        str(client.package_dir),
        url,
        token,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout)


async def test_generated_client_drives_a_live_server(server, generated_client):
    seeded = await server.bootstrap(plan="TEAM")
    result = await drive(generated_client, server.url + "/graphql", seeded.token)
    server.issued.extend(result["secrets"])  # so the suite can prove they never reach a log line

    assert result["viewer"] == {
        "kind": "USER",
        "kind_type": "PrincipalKind",
        "account_id": seeded.account_id,
        "plan": "TEAM",
        "user_id": seeded.user_id,
    }
    project = result["project"]
    assert project["name"] == "codegen project" and project["id"]
    listed = await server.gql("{ account { projects { id name } } }", token=seeded.token)
    assert listed.data["account"]["projects"] == [project]

    created, rotated, deleted = result["created"], result["rotated"], result["deleted"]
    old_secret, new_secret = result["secrets"]
    scoped = [{"permission_set": "JOB_ADMIN", "all_projects": False, "project_ids": [project["id"]]}]
    assert (
        created
        == {
            "id": "stk_" + old_secret[4:20],  # ids name their type (the key inside the secret follows the prefix)
            "name": "scheduler",
            "display_prefix": old_secret[:8] + "…",
            "format": "V2",
            "state": "ACTIVE",
            "grants": scoped,
        }
    )
    assert result["created_whoami"] == {"kind": "SERVICE_TOKEN", "token_id": created["id"]}
    assert result["forbidden"] == ["FORBIDDEN"]

    # Rotation: a new token with the same name and grants; the old one works until it is deleted.
    assert rotated["id"] == "stk_" + new_secret[4:20] != created["id"]
    assert (rotated["name"], rotated["grants"], rotated["state"]) == ("scheduler", scoped, "ACTIVE")
    assert result["after_rotation"] == {
        "old": {"kind": "SERVICE_TOKEN", "token_id": created["id"]},
        "new": {"kind": "SERVICE_TOKEN", "token_id": rotated["id"]},
    }
    assert deleted["id"] == created["id"] and deleted["state"] == "DELETED"
    assert result["after_delete"] == {"old": 401, "new": {"kind": "SERVICE_TOKEN", "token_id": rotated["id"]}}
    assert result["unauthenticated"] == 401
