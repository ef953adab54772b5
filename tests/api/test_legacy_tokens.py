"""Legacy tokens: imported with the CLI (as a user runs it), used, listed, rotated into v2."""

from __future__ import annotations

import json

from tests.api.service_token_calls import DELETE, listed, rotated, row_key, works
from tests.api.test_cli import external, tokengate
from tests.api.test_graphql import create_project
from tokengate.core import tokens

SECRET = "3f9a0c1d" + "5e7b2a4c6d8e0f1a3b5c7d9e1f2a4b6c"


def import_legacy(database: str, *args: str) -> dict[str, str]:
    result = tokengate("import-legacy-token", *args, env=external(database))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_import_use_list_and_rotate_a_legacy_token(database, server):
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    out = import_legacy(
        database,
        *("--account-id", admin.account_id, "--name", "old airflow", "--created-at", "2022-03-01T12:00:00Z"),
        *("--grant", f"job_admin:{project}", "--grant", "Account_Viewer", "--secret", SECRET),
    )
    server.issued.append(SECRET)
    assert out == {"id": out["id"], "token": SECRET}

    # It works, proved by argon2id (the slow part, measured in bench/), where v2 needs one keyed hash.
    verifier = server.runtime.authenticator.verify_legacy.__self__  # the app's LegacyVerifier
    before = verifier.verifications
    assert await works(server, SECRET)
    assert verifier.verifications == before + 1
    for _ in range(3):
        assert await works(server, admin.token)
    assert verifier.verifications == before + 1
    ask = "query($p: ID) { viewer { kind serviceToken { id } } check(resource: JOBS, access: WRITE, projectId: $p) { allowed } }"
    reply = await server.gql(ask, {"p": project}, token=SECRET)
    assert reply.data == {
        "viewer": {"kind": "SERVICE_TOKEN", "serviceToken": {"id": out["id"]}},
        "check": {"allowed": True},
    }

    legacy = (await listed(server, admin.token))[out["id"]]
    assert legacy["format"] == "LEGACY" and legacy["rotationRecommended"] is True and legacy["state"] == "ACTIVE"
    assert legacy["createdAt"] == "2022-03-01T12:00:00+00:00" and legacy["name"] == "old airflow"
    assert legacy["displayPrefix"] == SECRET[:4] + "…"
    expected_grants = [
        {"permissionSet": "JOB_ADMIN", "allProjects": False, "projects": [{"id": project}]},
        {"permissionSet": "ACCOUNT_VIEWER", "allProjects": True, "projects": []},
    ]
    assert legacy["grants"] == expected_grants

    new = await rotated(server, admin.token, out["id"])
    assert tokens.parse_token(new.secret).format == "v2" and new.secret.startswith("tgs_")
    assert new.token["format"] == "V2" and new.token["rotationRecommended"] is False
    assert new.token["name"] == "old airflow" and new.token["grants"] == expected_grants
    assert await works(server, SECRET) and await works(server, new.secret)
    await server.gql(DELETE, {"id": out["id"]}, token=admin.token)
    assert not await works(server, SECRET)
    assert (await server.gql(ask, {"p": project}, token=new.secret)).data["check"] == {"allowed": True}

    events = await server.pool.fetch(
        "SELECT action, actor, source FROM audit_events WHERE target_id = $1 ORDER BY id", row_key(out["id"])
    )
    assert [tuple(e) for e in events] == [
        ("legacy_token.imported", "cli", "cli"),
        ("service_token.rotated", f"user:{admin.user_id}", "graphql"),
        ("service_token.deleted", f"user:{admin.user_id}", "graphql"),
    ]


async def test_import_generates_a_secret_and_tokens_sharing_a_hint_stay_apart(database, server):
    admin = await server.bootstrap(plan="TEAM")
    generated = import_legacy(
        database, "--account-id", admin.account_id, "--name", "gen", "--created-at", "2023-07-18", "--grant", "member"
    )
    server.issued.append(generated["token"])
    assert tokens.parse_token(generated["token"]).format == "legacy"
    # Same eight-character hint, different secrets: each proves only its own row.
    twin = SECRET[:8] + "0" * 32
    for secret in (SECRET, twin):
        import_legacy(
            database, "--account-id", admin.account_id, "--name", secret[-4:], "--created-at", "2021-01-01",
            "--grant", "read_only", "--secret", secret,
        )  # fmt: skip
        server.issued.append(secret)
    names = {}
    for secret in (generated["token"], SECRET, twin):
        reply = await server.gql("{ viewer { serviceToken { name } } }", token=secret)
        names[secret] = reply.data["viewer"]["serviceToken"]["name"]
    assert names == {generated["token"]: "gen", SECRET: SECRET[-4:], twin: "0000"}
    assert not await works(server, SECRET[:8] + "1" * 32)
    listing = await listed(server, admin.token)
    assert {t["createdAt"][:10] for t in listing.values()} == {"2023-07-18", "2021-01-01"}
    assert all(t["rotationRecommended"] for t in listing.values())


async def test_import_errors_are_one_line_with_the_right_exit_code(database, server):
    admin = await server.bootstrap()
    starter = await server.bootstrap("Small", plan="STARTER")
    other = await server.bootstrap("Other")
    foreign_project = await create_project(server, other.token)
    import_legacy(
        database, "--account-id", admin.account_id, "--name", "first", "--created-at", "2022-01-01",
        "--grant", "account_admin", "--secret", SECRET,
    )  # fmt: skip
    server.issued.append(SECRET)
    base = ["--name", "n", "--created-at", "2022-01-01"]
    cases = [
        (["--account-id", admin.account_id, *base, "--grant", "nope"], 2, "unknown permission set 'nope'"),
        (["--account-id", admin.account_id, *base], 2, "--grant"),
        (["--account-id", admin.account_id, *base, "--grant", "job_admin:"], 2, "at least one project"),
        (["--account-id", admin.account_id, *base, "--grant", "job_admin", "--secret", "ABC"], 2, "40 lowercase hex"),
        (
            ["--account-id", admin.account_id, "--name", "n", "--created-at", "yesterday", "--grant", "job_admin"],
            2,
            "ISO 8601",
        ),
        (
            ["--account-id", admin.account_id, "--name", "n", "--created-at", "2999-01-01", "--grant", "job_admin"],
            2,
            "in the future",
        ),
        (["--account-id", "acc_missing", *base, "--grant", "job_admin"], 1, "no account with id acc_missing"),
        (["--account-id", starter.account_id, *base, "--grant", "job_admin"], 1, "the STARTER plan does not allow"),
        (
            ["--account-id", admin.account_id, *base, "--grant", f"job_admin:{foreign_project}"],
            1,
            f"unknown project {foreign_project}",
        ),
        (["--account-id", admin.account_id, *base, "--grant", "account_admin:p1"], 1, "account-level"),
        (
            ["--account-id", admin.account_id, "--name", "", "--created-at", "2022-01-01", "--grant", "member"],
            1,
            "1 to 255",
        ),
        (["--account-id", admin.account_id, *base, "--grant", "job_admin", "--secret", SECRET], 1, "already stored"),
    ]
    for args, code, message in cases:
        result = tokengate("import-legacy-token", *args, env=external(database))
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert result.stdout == ""
    mistyped = "Z" + SECRET[1:]
    result = tokengate(
        "import-legacy-token", "--account-id", admin.account_id, *base, "--grant", "member", "--secret", mistyped,
        env=external(database),
    )  # fmt: skip
    assert result.returncode == 2 and mistyped not in result.stderr
    assert await server.pool.fetchval("SELECT count(*) FROM tokens WHERE format = 'legacy'") == 1
