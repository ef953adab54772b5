"""The IP rules store against PostgreSQL: whole-set replacement, and its notice published by the unit of work
only when the change commits."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from tests.conftest import TEST_SECRET_KEY
from tokengate.config import parse_secret_keys
from tokengate.core import tokens
from tokengate.core.invalidations import IpRulesChanged
from tokengate.core.ip_rules import check_ip_rules
from tokengate.services import OPERATOR, Backend
from tokengate.services import ip_restrictions as ip_restriction_service
from tokengate.store import accounts as account_store
from tokengate.store import ip_rules as ip_rule_store
from tokengate.store.notify import CHANNEL


async def test_replace_swaps_the_whole_set_and_notifies_listeners_on_commit(pool, database):
    account = await account_store.create_account(pool, tokens.new_id("acc"), "Acme", "ENTERPRISE")
    assert await ip_rule_store.settings(pool, account.id) == ip_rule_store.IpSettings(False, ())
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database)
    await listener.add_listener(CHANNEL, lambda *args: received.put_nowait(args[-1]))
    try:
        first = check_ip_rules(
            [("office", "ALLOW", ["203.0.113.0/24", "2001:db8::/32"]), ("lab", "DENY", ["10.0.0.0/8"])]
        )
        backend = Backend(pool, parse_secret_keys(TEST_SECRET_KEY))
        async with backend.change(OPERATOR) as work:
            await ip_rule_store.replace(work.conn, account.id, True, [("ipr_1", first[0]), ("ipr_2", first[1])])
            await work.notify(IpRulesChanged(account.id))
        payload = json.loads(await asyncio.wait_for(received.get(), 5))
        assert payload == {"kind": "ip_rules", "account_id": account.id}
        stored = await ip_rule_store.settings(pool, account.id)
        assert stored.enabled is True
        assert [(r.id, r.name, r.type, r.cidrs) for r in stored.rules] == [
            ("ipr_1", "office", "ALLOW", ("203.0.113.0/24", "2001:db8::/32")),
            ("ipr_2", "lab", "DENY", ("10.0.0.0/8",)),
        ]

        # A change that rolls back leaves the old set and tells nobody.
        second = check_ip_rules([("vpn", "ALLOW", ["198.51.100.0/24"])])
        try:
            async with backend.change(OPERATOR) as work:
                await ip_rule_store.replace(work.conn, account.id, False, [("ipr_3", second[0])])
                await work.notify(IpRulesChanged(account.id))
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        await asyncio.sleep(0.2)
        assert received.empty()
        assert await ip_rule_store.settings(pool, account.id) == stored

        await ip_restriction_service.replace(backend, OPERATOR, account.id, False, [])
        assert await ip_rule_store.settings(pool, account.id) == ip_rule_store.IpSettings(False, ())
        assert json.loads(await asyncio.wait_for(received.get(), 5))["account_id"] == account.id
    finally:
        await listener.close()
