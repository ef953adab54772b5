"""Migrations and the catalog against a real PostgreSQL."""

from __future__ import annotations

import csv
from pathlib import Path

import asyncpg
import pytest

from tokengate.store.migrations import RENAMED, MigrationError, migrate, migration_files

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
BUNDLED = Path(__file__).resolve().parents[2] / "src" / "tokengate" / "reference"


def reference(name: str) -> list[dict[str, str]]:
    directory = REFERENCE if REFERENCE.is_dir() else BUNDLED
    return list(csv.DictReader((directory / name).open(encoding="utf-8")))


async def test_catalog_in_database_equals_reference(pool):
    matrix = {
        (r["permission_set"], r["set_level"], r["resource"], r["access"], r["environment_write_possible"] == "yes")
        for r in reference("permission-matrix.csv")
    }
    rows = await pool.fetch(
        "SELECT permission_set, set_level, resource, access, environment_write_possible FROM permission_matrix"
    )
    assert {tuple(r) for r in rows} == matrix
    plans = {(r["plan"], r["permission_set"]) for r in reference("plans.csv")}
    assert {tuple(r) for r in await pool.fetch("SELECT plan, permission_set FROM plan_permission_sets")} == plans
    levels = {(r["permission_set"], r["set_level"]) for r in reference("permission-matrix.csv")}
    assert {tuple(r) for r in await pool.fetch("SELECT key, level FROM permission_sets")} == levels


async def test_migrate_twice_applies_nothing_the_second_time(pool):
    async with pool.acquire() as conn:
        assert await migrate(conn) == []


async def test_changed_applied_migration_refuses_to_start(pool, tmp_path):
    async with pool.acquire() as conn:
        names = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")]
        source = Path(__file__).resolve().parents[2] / "sql"
        for name in names:
            (tmp_path / name).write_text((source / name).read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn, tmp_path)


async def test_new_migration_file_is_applied_once_in_order(pool, tmp_path):
    source = Path(__file__).resolve().parents[2] / "sql"
    for path in source.glob("*.sql"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "999_probe.sql").write_text("CREATE TABLE probe (id int);")
    async with pool.acquire() as conn:
        assert await migrate(conn, tmp_path) == ["999_probe.sql"]
        assert await migrate(conn, tmp_path) == []
        assert await conn.fetchval("SELECT count(*) FROM probe") == 0


async def test_failed_migration_leaves_nothing_behind(pool, tmp_path):
    source = Path(__file__).resolve().parents[2] / "sql"
    for path in source.glob("*.sql"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "998_broken.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.PostgresError):
            await migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE name = '998_broken.sql'") == 0


LEDGER = "SELECT name, checksum, applied_at FROM schema_migrations ORDER BY name"


def test_renamed_migrations_point_at_bundled_files():
    bundled = {migration.name for migration in migration_files()}
    assert RENAMED["005_key_ids.sql"] == "004_key_ids.sql"
    for old, new in RENAMED.items():
        assert new in bundled and old not in bundled
    numbers = sorted(int(name[:3]) for name in bundled)
    assert numbers == list(range(1, len(numbers) + 1)), "sql/ numbering has a gap"


async def test_ledger_under_the_old_name_of_a_renamed_migration_moves_to_the_new_name(pool):
    async with pool.acquire() as conn:
        before = [tuple(row) for row in await conn.fetch(LEDGER)]
        assert "004_key_ids.sql" in [row[0] for row in before]
        # A database migrated before the rename: its ledger says 005_key_ids.sql.
        await conn.execute("UPDATE schema_migrations SET name = '005_key_ids.sql' WHERE name = '004_key_ids.sql'")
        assert await migrate(conn) == []  # nothing re-run (re-running would fail: the column exists)
        assert [tuple(row) for row in await conn.fetch(LEDGER)] == before  # same rows, checksums, times
        assert await migrate(conn) == []


async def test_renamed_migration_with_another_checksum_is_refused(pool):
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE schema_migrations SET name = '005_key_ids.sql', checksum = 'edited' WHERE name = '004_key_ids.sql'"
        )
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await migrate(conn)
        assert await conn.fetchval("SELECT checksum FROM schema_migrations WHERE name = '005_key_ids.sql'") == "edited"
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE name = '004_key_ids.sql'") == 0


async def test_audit_log_is_append_only(server):
    seeded = await server.bootstrap()
    async with server.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_events WHERE account_id = $1", seeded.account_id) >= 2
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE audit_events SET actor = 'x'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM audit_events")
