"""The unit of work against PostgreSQL: notices are published in the transaction, applied to this instance's
caches only after the commit, and neither on a rollback."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import TEST_SECRET_KEY
from tokengate.config import parse_secret_keys
from tokengate.core import invalidations as notices
from tokengate.core import tokens
from tokengate.core.invalidations import AccountChanged, TokenChanged
from tokengate.services import OPERATOR, Backend
from tokengate.store import accounts as account_store
from tokengate.store.notify import CHANNEL


async def test_notices_are_applied_here_after_commit_and_heard_elsewhere(pool, database):
    account = await account_store.create_account(pool, tokens.new_id("acc"), "Acme", "ENTERPRISE")
    applied: list[notices.Notice] = []
    backend = Backend(pool, parse_secret_keys(TEST_SECRET_KEY), apply=applied.append)
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database)
    await listener.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[-1]))
    try:
        async with backend.change(OPERATOR) as work:
            await work.notify(TokenChanged("t1"))
            await work.notify(TokenChanged("t1"))  # stated twice, published once
            await work.notify(AccountChanged(account.id))
            await work.audit(account.id, "test.changed", "t1")
            assert applied == []  # not before the commit: another reader could still load the old state
        assert applied == [TokenChanged("t1"), AccountChanged(account.id)]
        received = [notices.decode(await asyncio.wait_for(heard.get(), 5)) for _ in range(2)]
        assert received == applied

        with pytest.raises(RuntimeError):
            async with backend.change(OPERATOR) as work:
                await work.notify(TokenChanged("rolled back"))
                await work.audit(account.id, "test.changed", "t2")
                raise RuntimeError("abort")
        await asyncio.sleep(0.2)
        assert applied == [TokenChanged("t1"), AccountChanged(account.id)] and heard.empty()
        actions = await pool.fetch("SELECT action, actor, source, target_id FROM audit_events ORDER BY id")
        assert [tuple(row) for row in actions] == [("test.changed", "cli", "cli", "t1")]
    finally:
        await listener.close()
