"""Numbered plain-SQL migrations from ``sql/``, applied in order under an advisory lock.

The lock is transaction-scoped and the whole run one transaction: a transaction-mode pooler (PgBouncer) keeps a
transaction on one server connection, while it would hand a session lock to whichever client came next."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg

from tokengate.core.catalog import CATALOG, Catalog

log = logging.getLogger("tokengate.migrations")

MIGRATION_LOCK_KEY = 0x746F6B67  # "tokg": one migrator at a time across processes

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
LOCK = "SELECT pg_advisory_xact_lock($1)"
APPLIED = "SELECT name, checksum FROM schema_migrations"
RECORD = "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)"
RENAME = "UPDATE schema_migrations SET name = $2 WHERE name = $1"

# Files renamed after databases recorded them under the old name (old name -> new name). The ledger row is
# renamed before the checksums are compared, so the migration is neither re-run nor refused; its text must
# be byte-identical (same checksum), or the rename is refused like any edit. Entries stay for good: a
# database may be upgraded from any earlier release.
RENAMED: Final[dict[str, str]] = {
    "005_key_ids.sql": "004_key_ids.sql",  # closed the gap in the numbering (there was no 004)
}

UPSERT_SET = """
INSERT INTO permission_sets (key, name, level) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name, level = EXCLUDED.level
"""
CLEAR_MATRIX = "DELETE FROM permission_matrix"
INSERT_MATRIX = """
INSERT INTO permission_matrix (permission_set, set_level, resource, access, environment_write_possible)
VALUES ($1, $2, $3, $4, $5)
"""
CLEAR_PLANS = "DELETE FROM plan_permission_sets"
INSERT_PLAN = "INSERT INTO plan_permission_sets (plan, permission_set) VALUES ($1, $2)"


class MigrationError(Exception):
    """The database and the ``sql/`` files disagree; the service must not start."""


@dataclass(frozen=True)
class MigrationFile:
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def sql_dir() -> Path:
    """``sql/`` beside the source tree, or the copy packed into the wheel."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "sql", package.parents[1] / "sql"):
        if candidate.is_dir():
            return candidate
    raise MigrationError("cannot find the sql/ migrations directory")


def migration_files(directory: Path | None = None) -> list[MigrationFile]:
    directory = directory or sql_dir()
    return [
        MigrationFile(path.name, path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("[0-9][0-9][0-9]_*.sql"))
    ]


async def migrate(conn: asyncpg.Connection, directory: Path | None = None, catalog: Catalog = CATALOG) -> list[str]:
    """Apply pending migrations (each in its own transaction) and sync the catalog; return what ran."""
    files = migration_files(directory)
    async with conn.transaction():  # each migration below is a savepoint of this one
        await conn.execute(LOCK, MIGRATION_LOCK_KEY)
        await conn.execute(CREATE_LEDGER)
        applied = {row["name"]: row["checksum"] for row in await conn.fetch(APPLIED)}
        applied = await rename_recorded(conn, applied, files)
        for migration in files:
            recorded = applied.get(migration.name)
            if recorded is not None and recorded != migration.checksum:
                raise MigrationError(
                    f"sql/{migration.name} changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
        ran = []
        for migration in files:
            if migration.name in applied:
                continue
            async with conn.transaction():
                await conn.execute(migration.text)
                await conn.execute(RECORD, migration.name, migration.checksum)
            log.info("applied migration %s", migration.name)
            ran.append(migration.name)
        await sync_catalog(conn, catalog)
        return ran


async def rename_recorded(
    conn: asyncpg.Connection, applied: dict[str, str], files: list[MigrationFile]
) -> dict[str, str]:
    """Move ledger rows recorded under a name in ``RENAMED`` to the file's new name; return the new ledger.

    Runs under the migration lock, before the checksums are compared. Only a rename whose new file is
    present is applied. A recorded checksum that differs from the renamed file's is an edited migration,
    refused as such; a ledger, or a directory, holding both names is refused too.
    """
    present = {migration.name: migration for migration in files}
    for old, new in RENAMED.items():
        if old in present and new in present:
            raise MigrationError(f"sql/ holds both {old} and {new}, its new name: remove {old}")
        migration = present.get(new)
        if old not in applied or migration is None:
            continue
        if new in applied:
            raise MigrationError(f"schema_migrations records both {old} and {new}, its new name")
        if applied[old] != migration.checksum:
            raise MigrationError(
                f"sql/{new} (applied as {old}) changed after it was applied; "
                "add a new migration instead of editing an applied one"
            )
        await conn.execute(RENAME, old, new)
        log.info("migration %s is now recorded as %s", old, new)
        applied = {(new if name == old else name): checksum for name, checksum in applied.items()}
    return applied


async def sync_catalog(conn: asyncpg.Connection, catalog: Catalog) -> None:
    """Make the catalog tables hold exactly the bundled reference facts."""
    async with conn.transaction():
        await conn.executemany(UPSERT_SET, [(s.key, s.name, s.level) for s in catalog.permission_sets.values()])
        await conn.execute(CLEAR_MATRIX)
        await conn.executemany(
            INSERT_MATRIX,
            [
                (r.permission_set, r.set_level, r.resource, r.access, r.environment_write_possible)
                for r in catalog.matrix
            ],
        )
        await conn.execute(CLEAR_PLANS)
        await conn.executemany(INSERT_PLAN, list(catalog.plan_rows))
