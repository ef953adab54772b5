"""Per-process cache of each account's compiled IP rules, so a request never loads rules itself.

Entries are dropped at once on this instance when the rules change (``invalidate``) and expire after a
short TTL as a backstop for changes made through another instance; a LISTEN on
the invalidation listener (invalidation.py) calls ``invalidate`` for those.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable

import asyncpg

from tokengate.core.ip_rules import IpPolicy, IpRule, as_ipv4_if_mapped, compile_rules
from tokengate.store import DATABASE_UNAVAILABLE
from tokengate.store import ip_rules as ip_rule_store
from tokengate.store.ip_rules import IpSettings

DEFAULT_TTL_SECONDS = 5.0
DEFAULT_MAX_ENTRIES = 10_000

# None: restrictions are off (or empty of effect) for the account; every address passes.
Loader = Callable[[str], Awaitable[IpPolicy | None]]


def compile_settings(settings: IpSettings) -> IpPolicy | None:
    """The stored settings compiled: None while restrictions are off."""
    return compile_rules(
        settings.enabled,
        (
            IpRule(rule.name, rule.type, tuple(as_ipv4_if_mapped(ipaddress.ip_network(cidr)) for cidr in rule.cidrs))
            for rule in settings.rules
        ),
    )


def database_loader(pool: asyncpg.Pool) -> Loader:
    async def load(account_id: str) -> IpPolicy | None:
        return compile_settings(await ip_rule_store.settings(pool, account_id))

    return load


class IpGuard:
    """Answers "may this account's token be used from this address?" from memory, loading on a miss."""

    def __init__(
        self,
        load: Loader,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._load = load
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, IpPolicy | None]] = {}  # account id -> (expires at, policy)
        self._loading: dict[str, asyncio.Future[IpPolicy | None]] = {}  # account id -> load in flight

    def cached_allows(self, account_id: str, address: str | None) -> bool | None:
        """The answer from memory without a coroutine (the hot path), or None when rules must be loaded."""
        entry = self._entries.get(account_id)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1] is None or entry[1].allows(address)

    async def allows(self, account_id: str, address: str | None) -> bool:
        policy = await self.policy_for(account_id)
        return policy is None or policy.allows(address)

    async def policy_for(self, account_id: str) -> IpPolicy | None:
        entry = self._entries.get(account_id)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        loading = self._loading.get(account_id)
        if loading is None:
            # One load per account however many requests miss at once; its own task, so a
            # disconnecting client cannot cancel it for the others.
            loading = asyncio.ensure_future(self._load_and_keep(account_id))
            loading.add_done_callback(_retrieve_exception)
            self._loading[account_id] = loading
        try:
            return await asyncio.shield(loading)
        except DATABASE_UNAVAILABLE:
            if entry is None:
                raise
            # The last rules known (they cannot change while the database is down) rather than refusing
            # every request of the account for the length of the outage.
            return entry[1]

    async def _load_and_keep(self, account_id: str) -> IpPolicy | None:
        this = asyncio.current_task()
        try:
            policy = await self._load(account_id)
        finally:
            current = self._loading.get(account_id)
            if current is not None and current is this:
                del self._loading[account_id]
        # Invalidated while loading: the result may predate the change, so answer with it but don't keep it.
        if current is this:
            self._store(account_id, policy)
        return policy

    def _store(self, account_id: str, policy: IpPolicy | None) -> None:
        if len(self._entries) >= self._max_entries and account_id not in self._entries:
            self._entries.pop(next(iter(self._entries)))  # the oldest insertion goes first
        self._entries[account_id] = (self._clock() + self._ttl, policy)

    def account_ids(self) -> frozenset[str]:
        """The accounts whose rules are held now."""
        return frozenset(self._entries)

    def invalidate(self, account_id: str) -> None:
        """Forget the account's rules; the next request loads them again."""
        self._entries.pop(account_id, None)
        self._loading.pop(account_id, None)

    def clear(self) -> None:
        """Forget every account's rules (e.g. after a lost LISTEN connection)."""
        self._entries.clear()
        self._loading.clear()


def _retrieve_exception(future: asyncio.Future[IpPolicy | None]) -> None:
    # Waiters see the error; this only keeps asyncio from logging it again when none are left.
    if not future.cancelled():
        future.exception()
