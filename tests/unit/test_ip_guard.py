"""The per-process cache of compiled IP rules: loads once, expires, forgets on invalidate."""

from __future__ import annotations

import asyncio
import ipaddress

from tokengate.auth.ip_guard import IpGuard
from tokengate.core.ip_rules import IpPolicy, IpRule

ALLOW_OFFICE = IpPolicy([IpRule("office", "ALLOW", (ipaddress.ip_network("203.0.113.0/24"),))])


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Rules:
    """What the database holds, counting loads."""

    def __init__(self, policy: IpPolicy | None) -> None:
        self.policy = policy
        self.loads = 0
        self.gate: asyncio.Event | None = None

    async def load(self, account_id: str) -> IpPolicy | None:
        self.loads += 1
        policy = self.policy
        if self.gate is not None:
            await self.gate.wait()
        return policy


async def test_rules_are_loaded_once_then_served_from_memory_until_the_ttl():
    rules, clock = Rules(ALLOW_OFFICE), Clock()
    guard = IpGuard(rules.load, ttl=5.0, clock=clock)
    for _ in range(100):
        assert await guard.allows("acc_1", "203.0.113.9")
        assert not await guard.allows("acc_1", "198.51.100.1")
    assert rules.loads == 1
    rules.policy = None  # changed through another instance
    clock.now += 4.9
    assert not await guard.allows("acc_1", "198.51.100.1")
    clock.now += 0.2  # past the TTL: reloaded
    assert await guard.allows("acc_1", "198.51.100.1")
    assert rules.loads == 2


async def test_invalidate_and_clear_reload_at_once():
    rules = Rules(None)
    guard = IpGuard(rules.load, clock=Clock())
    assert await guard.allows("acc_1", "198.51.100.1")
    rules.policy = ALLOW_OFFICE
    guard.invalidate("acc_1")
    assert not await guard.allows("acc_1", "198.51.100.1")
    rules.policy = None
    guard.clear()
    assert await guard.allows("acc_1", "198.51.100.1")
    assert rules.loads == 3


async def test_concurrent_misses_share_one_load_and_a_stale_load_is_not_kept():
    rules = Rules(ALLOW_OFFICE)
    rules.gate = asyncio.Event()
    guard = IpGuard(rules.load, clock=Clock())
    waiting = [asyncio.ensure_future(guard.allows("acc_1", "198.51.100.1")) for _ in range(20)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    guard.invalidate("acc_1")  # the rules changed while that load was in flight
    rules.policy = None
    rules.gate.set()
    assert await asyncio.gather(*waiting) == [False] * 20
    assert rules.loads == 1
    assert await guard.allows("acc_1", "198.51.100.1")  # the in-flight result was not cached
    assert rules.loads == 2


async def test_entries_are_bounded():
    rules = Rules(None)
    guard = IpGuard(rules.load, max_entries=3, clock=Clock())
    for account in ("a", "b", "c", "d"):
        await guard.policy_for(account)
    await guard.policy_for("a")  # the oldest was dropped to make room
    assert rules.loads == 5
