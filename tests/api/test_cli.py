"""The tokengate command, run as a user runs it: JSON on stdout, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.api import service_token_calls as calls
from tests.conftest import CAPTURED_OUTPUT, ISSUED_SECRETS, TEST_SECRET_KEY, free_port

ROOT = Path(__file__).resolve().parents[2]


def tokengate(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "tokengate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    CAPTURED_OUTPUT.append(result.stderr)  # checked for secrets at the end of the run
    if result.returncode == 0 and result.stdout.startswith("{") and '"token"' in result.stdout:
        ISSUED_SECRETS.append(json.loads(result.stdout)["token"])
    return result


def external(database: str) -> dict[str, str]:
    return {"TOKENGATE_DATABASE_URL": database, "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY}


def test_export_schema_matches_committed_schema_graphql():
    result = tokengate("export-schema")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "schema.graphql").read_text(encoding="utf-8"), (
        "schema.graphql is stale: run `tokengate export-schema > schema.graphql`"
    )


def test_contract_names_are_in_the_schema():
    sdl = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    for name in [
        "directive @requires(resource: Resource!, access: Access! = READ) on FIELD_DEFINITION",
        "viewer: Viewer!",
        "account: Account!",
        "permissionSets: [PermissionSet!]!",
        "check(resource: Resource!, access: Access!, projectId: ID",
        "checks(requests: [CheckInput!]!)",
        "members: [User!] @requires(resource: MEMBERS, access: READ)",
    ]:
        assert name in sdl


async def test_bootstrap_and_issue_user_token(database, server):
    result = tokengate(
        "bootstrap",
        "--account-name",
        "Acme",
        "--plan",
        "Enterprise",
        "--admin-email",
        "a@acme.io",
        env=external(database),
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"account_id", "user_id", "token", "sign_in_link"} and out["token"].startswith("tgu_")
    assert out["sign_in_link"].startswith("/invitation#")  # the first admin's passkey invitation (docs/sign-in.md)
    reply = await server.gql("{ viewer { kind account { plan } } }", token=out["token"])
    assert reply.data == {"viewer": {"kind": "USER", "account": {"plan": "ENTERPRISE"}}}

    issued = tokengate("issue-user-token", "--user-id", out["user_id"], "--name", "laptop", env=external(database))
    assert issued.returncode == 0, issued.stderr
    second = json.loads(issued.stdout)
    assert second["token"].startswith("tgu_") and second["id"] == "utk_" + second["token"][4:20]  # as GraphQL prints it
    assert (await server.gql("{ viewer { kind } }", token=second["token"])).status == 200
    events = await server.pool.fetch("SELECT action, source FROM audit_events ORDER BY id")
    assert [(e["action"], e["source"]) for e in events] == [
        ("user.created", "cli"),
        ("user_token.created", "cli"),
        ("invitation.created", "cli"),
        ("user_token.created", "cli"),
    ]


async def test_the_command_line_prints_ids_as_graphql_does_and_takes_them_printed_or_bare(database, server):
    admin = await server.bootstrap()
    tokens = [await calls.created(server, admin.token, name=f"ci {n}") for n in range(2)]
    printed, bare = tokens[0].id, tokens[1].key  # stk_… as GraphQL prints it; bare, as it was printed before
    assert printed.startswith("stk_") and not bare.startswith("stk_")
    for given, token in ((printed, tokens[0]), (bare, tokens[1])):
        result = tokengate(
            "delete-service-token", "--account-id", admin.account_id, "--id", given, env=external(database)
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"id": token.id, "state": "DELETED"}  # printed with its prefix
    listed = await server.gql(calls.LIST, {"all": True}, token=admin.token)
    assert {t["id"]: t["state"] for t in listed.data["account"]["serviceTokens"]} == {
        tokens[0].id: "DELETED",
        tokens[1].id: "DELETED",
    }
    # What the command line did reads back with the same ids, by either form of the filter.
    audit = (
        "query($t: ID) { account { auditLog(filter: {targetId: $t}) { edges { node { action actor targetId } } } } }"
    )
    for target in (tokens[0].id, tokens[0].key):
        reply = await server.gql(audit, {"t": target}, token=admin.token)
        nodes = [edge["node"] for edge in reply.data["account"]["auditLog"]["edges"]]
        assert nodes[0] == {"action": "service_token.deleted", "actor": "cli", "targetId": tokens[0].id}
    imported = ["import-legacy-token", "--name", "old", "--created-at", "2022-03-01T12:00:00Z", "--grant", "job_viewer"]
    legacy = tokengate(*imported, "--account-id", admin.account_id, env=external(database))
    assert legacy.returncode == 0, legacy.stderr
    assert json.loads(legacy.stdout)["id"].startswith("stk_")


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["bootstrap", "--account-name", "A", "--plan", "gold", "--admin-email", "a@b.c"], 2, "unknown plan"),
        (["bootstrap", "--account-name", "A"], 2, "required"),
        (["frobnicate"], 2, "invalid choice"),
        (["issue-user-token", "--user-id", "usr_missing"], 1, "no user with id usr_missing"),
        (["bootstrap", "--account-name", "", "--plan", "team", "--admin-email", "a@b.c"], 1, "1 to 255"),
    ],
)
def test_expected_errors_are_one_line_without_traceback(database, args, code, message):
    result = tokengate(*args, env=external(database))
    assert result.returncode == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_external_database_without_server_key_is_refused(database):
    env = {**external(database), "TOKENGATE_SECRET_KEY": ""}
    result = tokengate("migrate", env=env)
    assert result.returncode == 1
    assert "TOKENGATE_SECRET_KEY is required" in result.stderr and "Traceback" not in result.stderr


def test_unreachable_database_is_one_line(tmp_path):
    env = {"TOKENGATE_DATABASE_URL": f"postgresql://x@/nope?host={tmp_path}", "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY}
    result = tokengate("migrate", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def serving(python_args: list[str], serve_args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """``tokengate serve`` on a free loopback port in a child Python (``python_args``: ``-m tokengate`` or a
    ``-c`` script); the process, its stderr piped, and its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, *python_args, "serve", "--port", str(port), *serve_args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


def _wait_ready(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited: {process.stderr.read() if process.stderr else ''}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("serve did not become ready")


def test_serve_on_the_embedded_database_from_scratch(tmp_path):
    """What `make serve` does on a fresh machine: embedded PostgreSQL, migrations, GraphiQL, a working token."""
    env = {"TOKENGATE_DATABASE_URL": "", "DATABASE_URL": "", "TOKENGATE_SECRET_KEY": ""}
    data_dir = tmp_path / "data"
    process, url = serving(["-m", "tokengate"], ["--data-dir", str(data_dir), "--log-level", "debug"], env)
    try:
        _wait_ready(url, process)
        assert (data_dir / "secret.key").stat().st_mode & 0o777 == 0o600
        request = urllib.request.Request(url + "/graphql", headers={"Accept": "text/html"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert "graphiql" in response.read().decode().lower()
        result = tokengate(
            "bootstrap",
            "--account-name",
            "Fresh",
            "--plan",
            "starter",
            "--admin-email",
            "f@x.io",
            "--data-dir",
            str(data_dir),
            env=env,
        )
        assert result.returncode == 0, result.stderr
        token = json.loads(result.stdout)["token"]
        query = json.dumps({"query": "{ viewer { kind account { plan } } }"}).encode()
        request = urllib.request.Request(
            url + "/graphql",
            data=query,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.loads(response.read())
            assert body["data"] == {"viewer": {"kind": "USER", "account": {"plan": "STARTER"}}}
            assert body["extensions"]["cost"]["actual"] == 4  # the default limits: what it cost, and what is left
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        CAPTURED_OUTPUT.append(stderr)  # its DEBUG log, checked for the token at the end of the run


def test_a_database_error_names_the_cause_host_and_database_but_never_the_password(database: str):
    parts = urlsplit(database)
    password = "pw-that-must-not-show"
    wrong = urlunsplit(
        (
            parts.scheme,
            f"{parts.username}:{password}@{parts.netloc.rpartition('@')[2]}",
            "/no_such_database",
            parts.query,
            "",
        )
    )
    result = tokengate("migrate", env=external(wrong))
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("tokengate: error: cannot open the database pool: InvalidCatalogNameError"), line
    assert 'database "no_such_database" does not exist' in line and "/no_such_database]" in line, line
    assert password not in result.stderr
