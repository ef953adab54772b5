"""Database errors name the cause, the driver's hint, the host and the database, never the password."""

from __future__ import annotations

import asyncpg

from tokengate.store.database import explain, where

DSN = "postgresql://tokengate:s3cret-pw@db.internal:6432/tokens"


def test_where_names_host_port_and_database_only():
    assert where(DSN) == "db.internal:6432/tokens"
    assert where("postgresql://u@localhost/") == "localhost/(default database)"


def test_the_pgbouncer_hint_of_the_driver_is_kept():
    problem = asyncpg.exceptions.DuplicatePreparedStatementError(
        'prepared statement "__asyncpg_stmt_1__" already exists'
    )
    problem.hint = "pgbouncer does not support prepared statements; set statement_cache_size=0"
    text = explain(problem, DSN)
    assert text.startswith("DuplicatePreparedStatementError: prepared statement")
    assert "(hint: pgbouncer" in text and "[database db.internal:6432/tokens]" in text
    assert "s3cret-pw" not in text


def test_a_password_in_the_driver_message_is_masked():
    problem = asyncpg.exceptions.InvalidPasswordError('password authentication failed for user "tokengate"')
    text = explain(problem, DSN)
    assert "InvalidPasswordError: password authentication failed" in text and "db.internal:6432/tokens" in text
    assert "s3cret-pw" not in explain(OSError(f"cannot reach {DSN}"), DSN)
