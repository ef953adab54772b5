"""The command line for a locked-out admin: deactivate-user and list-user-tokens; legacy secrets from stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.api.test_cli import external, tokengate
from tests.conftest import CAPTURED_OUTPUT, ISSUED_SECRETS
from tokengate.core import tokens


async def test_deactivate_user_stops_its_tokens_on_the_running_server(database, server):
    admin = await server.bootstrap()
    user = await server.bootstrap("Other")  # its own account: the command needs only the user id
    second_token = await server.issue_user_token(user.user_id, "laptop")
    assert (await server.gql("{ viewer { kind } }", token=second_token)).status == 200
    listed = tokengate("list-user-tokens", "--user-id", user.user_id, env=external(database))
    assert listed.returncode == 0, listed.stderr
    out = json.loads(listed.stdout)
    assert out["user_id"] == user.user_id and out["state"] == "ACTIVE"
    assert [t["id"] for t in out["tokens"]] == ["utk_" + user.token[4:20], "utk_" + second_token[4:20]]
    assert {t["state"] for t in out["tokens"]} == {"ACTIVE"} and all(t["expires_at"] for t in out["tokens"])
    assert user.token not in listed.stdout and second_token not in listed.stdout  # ids and prefixes only

    result = tokengate("deactivate-user", "--user-id", user.user_id, env=external(database))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "DEACTIVATED"
    # The running server heard it through NOTIFY: refused at once, though its cache held the tokens.
    for secret in (user.token, second_token):
        assert (await server.gql("{ viewer { kind } }", token=secret)).status == 401
    assert (await server.gql("{ viewer { kind } }", token=admin.token)).status == 200
    out = json.loads(tokengate("list-user-tokens", "--user-id", user.user_id, env=external(database)).stdout)
    assert out["state"] == "DEACTIVATED" and {t["state"] for t in out["tokens"]} == {"DELETED"}
    action = await server.pool.fetchval("SELECT source FROM audit_events WHERE action = 'user.deactivated'")
    assert action == "cli"
    for command in ("deactivate-user", "list-user-tokens"):
        missing = tokengate(command, "--user-id", "usr_missing", env=external(database))
        assert missing.returncode == 1 and "no user with id usr_missing" in missing.stderr


async def test_import_legacy_token_reads_the_secret_from_stdin(database, server):
    admin = await server.bootstrap()
    secret = tokens.new_legacy_secret()
    ISSUED_SECRETS.append(secret)
    args = ["import-legacy-token", "--account-id", admin.account_id, "--name", "old", "--created-at"]
    result = subprocess.run(
        [sys.executable, "-m", "tokengate", *args, "2022-03-01T12:00:00Z", "--grant", "job_viewer", "--secret", "-"],
        input=secret + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **external(database)},
    )
    CAPTURED_OUTPUT.append(result.stderr)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["token"] == secret  # the one it was given, not on the command line
    assert (await server.gql("{ viewer { kind } }", token=secret)).status == 200
    bad = subprocess.run(
        [sys.executable, "-m", "tokengate", *args, "2022-03-01T12:00:00Z", "--grant", "job_viewer", "--secret", "-"],
        input="not-a-secret\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **external(database)},
    )
    assert bad.returncode == 2 and "40 lowercase hexadecimal" in bad.stderr and "not-a-secret" not in bad.stderr
