"""sql/008: webhooks made before it are owned by the principal their created_by names (issue 20)."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg

from tests.conftest import with_database
from tokengate.store.migrations import migrate

SQL = Path(__file__).resolve().parents[2] / "sql"
WEBHOOK = """
INSERT INTO webhooks (id, account_id, url, events, sealed_secret, secret_key_id, created_by)
VALUES ($1, 'acc_1', 'https://hooks.example.com/', '{*}', '\\x00', 'k', $2)
"""


async def test_webhooks_made_before_are_owned_by_who_created_them(admin_dsn, tmp_path):
    for path in SQL.glob("00[1-7]_*.sql"):
        (tmp_path / path.name).write_text(path.read_text())
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        conn = await asyncpg.connect(with_database(admin_dsn, name))
        try:
            await migrate(conn, tmp_path)  # the schema before 008
            await conn.execute("INSERT INTO accounts (id, name, plan) VALUES ('acc_1', 'Acme', 'ENTERPRISE')")
            await conn.execute(
                "INSERT INTO users (id, account_id, email, license) VALUES ('usr_1', 'acc_1', 'a@b.c', 'IT')"
            )
            await conn.execute(
                "INSERT INTO tokens (id, account_id, kind, format, hash, name, created_by) "
                "VALUES ('AbCdEfGhIjKlMnOp', 'acc_1', 'service', 'v2', '\\x00', 'ci', 'cli')"
            )
            for webhook_id, created_by in (
                ("whk_user", "user:usr_1"),
                ("whk_token", "service_token:AbCdEfGhIjKlMnOp (tgs_AbCd…)"),
                ("whk_printed", "service_token:stk_AbCdEfGhIjKlMnOp (tgs_AbCd…)"),
                ("whk_cli", "cli"),
            ):
                await conn.execute(WEBHOOK, webhook_id, created_by)

            assert "008_webhook_owners_and_secret_rotation.sql" in await migrate(conn)
            rows = await conn.fetch("SELECT id, owner_user_id, owner_token_id FROM webhooks ORDER BY id")
            assert [tuple(row) for row in rows] == [
                ("whk_cli", None, None),  # the operator
                ("whk_printed", None, "AbCdEfGhIjKlMnOp"),
                ("whk_token", None, "AbCdEfGhIjKlMnOp"),
                ("whk_user", "usr_1", None),
            ]
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
