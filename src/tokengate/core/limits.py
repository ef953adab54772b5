"""Every limit that keeps one client from taking the service from the others, and the token buckets that
enforce the rates. Pure: no I/O; the clock is injected.

A bucket holds up to ``burst`` units and refills at ``per_second``; who pays is a key (a client address, a
principal). Two ways to spend:

- ``take``: a request needs one unit now, or it is refused with the time until one is back;
- ``require`` then ``charge``: work whose size is known only once it is done (the tokens of a new document,
  the cost of an operation) runs while the balance is positive and is charged afterwards, possibly into debt;
  the payer's next request waits until the debt is repaid. ``settle`` turns a charge made on an estimate
  into one of what the work really cost (GraphQL operations reserve their estimate, pay their actual cost).

IPv6 clients are keyed by their /64: one host commonly holds a whole /64, so per-address limits on single
IPv6 addresses would not limit anyone.

``Limits`` lists every setting with its default; ``limits_from_env`` reads the ``TOKENGATE_*`` variables that
override them (docs/limits.md is the same table).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Final

Clock = Callable[[], float]

# Buckets kept per policy. The least recently used beyond it starts full again, which loses nothing once it has
# been idle for a refill window (2 to 10 s with the defaults): 20,000 payers active within one is more than an
# instance serves.
MAX_KEYS: Final = 20_000
IPV6_PREFIX: Final = 64


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_second`` units refill a bucket of ``burst``; a rate of 0 means no limit."""

    per_second: float
    burst: float

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    @property
    def window_seconds(self) -> int:
        """How long an empty bucket takes to refill: the window advertised in ``RateLimit-Policy``."""
        return max(1, math.ceil(self.burst / self.per_second)) if self.enabled else 0


@dataclass(frozen=True)
class Limits:
    """Every limit of one instance, with the defaults a deployment keeps (docs/limits.md)."""

    address: Rate = Rate(1000, 2000)  # requests per client address (/graphql, /auth/check)
    principal: Rate = Rate(500, 1000)  # requests per principal (a service token, or a user)
    anonymous: Rate = Rate(2, 20)  # requests without credentials per client address (introspection, leak reports)
    failures: Rate = Rate(5, 50)  # refused well-formed tokens (from memory or the database alike), per address
    # GraphQL cost points per principal (anonymous: per address), charged what the answers held: a person
    # reloading a page of 50 tokens with their usage ten times, or an admin's script, stays well inside it.
    cost: Rate = Rate(10_000, 100_000)
    secret_scanning: Rate = Rate(10, 100)  # reports to /secret-scanning/github per client address
    cost_budget: int = 10_000  # the most one GraphQL request may cost
    max_tokens_per_account: int = 1000  # usable service tokens per account
    legacy_verifications: int = 4  # argon2id verifications running or queued at once; past it 503
    connections_per_address: int = 100  # open connections per client socket address; past it 429 and close
    header_timeout: float = 10.0  # seconds from connection (or first byte of a request) to its complete head
    body_timeout: float = 10.0  # seconds to read a request body once its head is in
    idle_timeout: float = 75.0  # seconds a kept-alive connection may stay silent between requests


def _number(text: str, variable: str, minimum: float) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= minimum or math.isinf(value):
        raise ValueError(f"{variable} must be a number of at least {minimum:g}, not {text!r}")
    return value


# Setting -> (variable, what it is); a Rate has a second variable, <variable>_BURST.
SETTINGS: Final[dict[str, str]] = {
    "address": "TOKENGATE_RATE_ADDRESS",
    "principal": "TOKENGATE_RATE_PRINCIPAL",
    "anonymous": "TOKENGATE_RATE_ANONYMOUS",
    "failures": "TOKENGATE_RATE_FAILURES",
    "cost": "TOKENGATE_RATE_COST",
    "secret_scanning": "TOKENGATE_RATE_SECRET_SCANNING",
    "cost_budget": "TOKENGATE_COST_BUDGET",
    "max_tokens_per_account": "TOKENGATE_MAX_TOKENS_PER_ACCOUNT",
    "legacy_verifications": "TOKENGATE_LEGACY_VERIFICATIONS",
    "connections_per_address": "TOKENGATE_MAX_CONNECTIONS_PER_ADDRESS",
    "header_timeout": "TOKENGATE_HEADER_TIMEOUT",
    "body_timeout": "TOKENGATE_BODY_TIMEOUT",
    "idle_timeout": "TOKENGATE_IDLE_TIMEOUT",
}


def setting_variables() -> list[str]:
    """Every environment variable a limit is read from (docs/limits.md lists each)."""
    names = []
    for field in fields(Limits):
        names.append(SETTINGS[field.name])
        if isinstance(getattr(Limits, field.name), Rate):
            names.append(SETTINGS[field.name] + "_BURST")
    return names


def limits_from_env(env: Mapping[str, str]) -> Limits:
    """The defaults, overridden by the ``TOKENGATE_*`` variables that are set (``ValueError`` names a bad one).

    A rate variable is requests (or points) per second, 0 to switch that limit off; ``<variable>_BURST`` is the
    bucket's size (default: twice the rate, or the rate's own default burst when the rate is unchanged)."""
    limits = Limits()
    changes: dict[str, object] = {}
    for field in fields(Limits):
        variable = SETTINGS[field.name]
        default = getattr(limits, field.name)
        text = env.get(variable, "").strip()
        if isinstance(default, Rate):
            burst_text = env.get(variable + "_BURST", "").strip()
            if not text and not burst_text:
                continue
            per_second = _number(text, variable, 0) if text else default.per_second
            burst_default = default.burst if not text else max(1.0, 2 * per_second)
            burst = _number(burst_text, variable + "_BURST", 1) if burst_text else burst_default
            changes[field.name] = Rate(per_second, burst)
        elif text:
            if isinstance(default, int):
                if not text.isdigit() or int(text) < 1:
                    raise ValueError(f"{variable} must be a positive integer, not {text!r}")
                changes[field.name] = int(text)
            else:
                changes[field.name] = _number(text, variable, 0.1)
    return replace(limits, **changes)  # type: ignore[arg-type]


# What ``divided`` shares among the workers of one ``tokengate serve --workers N``: the rates (a bucket per worker,
# each refilling at 1/N), the argon2id pool and the per-address connection cap. The rest is per request
# (cost budget, timeouts) or kept in the database (quotas), the same whatever N.
SHARED_BY_WORKERS: Final = ("legacy_verifications", "connections_per_address")


def divided(limits: Limits, workers: int) -> Limits:
    """One worker's share of ``limits`` when ``workers`` processes serve one port: together they allow what one
    instance allows (never more; a client whose connections all reach one worker gets 1/N of it). A rate's
    burst and a count are kept at 1 at least, or the limit would refuse everything."""
    if workers <= 1:
        return limits
    changes: dict[str, object] = {}
    for field in fields(Limits):
        value = getattr(limits, field.name)
        if isinstance(value, Rate):
            changes[field.name] = Rate(value.per_second / workers, max(1.0, value.burst / workers))
        elif field.name in SHARED_BY_WORKERS:
            changes[field.name] = max(1, value // workers)
    return replace(limits, **changes)  # type: ignore[arg-type]


def address_key(address: str | None) -> str:
    """Who pays for a client address: the address itself, or its /64 for IPv6."""
    if address is None:
        return "-"
    if ":" not in address:
        return address
    try:
        network = ipaddress.IPv6Network(f"{address}/{IPV6_PREFIX}", strict=False)
    except ValueError:
        return address
    return str(network)


class OverLimit(Exception):
    """A payer is past a limit: which policy, its rate, and the seconds until it may try again."""

    def __init__(self, policy: str, rate: Rate, retry_after: float):
        super().__init__(f"rate limit {policy} exceeded")
        self.policy = policy
        self.rate = rate
        self.retry_after = retry_after

    @property
    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after))

    def headers(self) -> dict[str, str]:
        """``Retry-After`` and the RateLimit fields of draft-ietf-httpapi-ratelimit-headers (structured fields)."""
        wait = self.retry_after_seconds
        return {
            "Retry-After": str(wait),
            "RateLimit-Policy": f'"{self.policy}";q={self.rate.burst:.0f};w={self.rate.window_seconds}',
            "RateLimit": f'"{self.policy}";r=0;t={wait}',
        }


class Buckets:
    """Token buckets of one policy, keyed by payer; a bounded LRU (not thread-safe: one event loop owns it)."""

    def __init__(self, policy: str, rate: Rate, clock: Clock = time.monotonic, max_keys: int = MAX_KEYS):
        self.policy = policy
        self.rate = rate
        self.clock = clock
        self.max_keys = max_keys
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (units, when)

    def __len__(self) -> int:
        return len(self._levels)

    def level(self, key: str) -> float:
        """The units ``key`` holds now (negative: in debt)."""
        units, when = self._levels.get(key, (self.rate.burst, 0.0))
        return min(self.rate.burst, units + (self.clock() - when) * self.rate.per_second)

    def _store(self, key: str, units: float) -> None:
        self._levels[key] = (units, self.clock())
        self._levels.move_to_end(key)
        if len(self._levels) > self.max_keys:
            self._levels.popitem(last=False)

    def _wait(self, units: float, needed: float) -> float:
        return (needed - units) / self.rate.per_second

    def take(self, key: str, amount: float = 1.0) -> None:
        """Spend ``amount`` now, or raise ``OverLimit`` (nothing spent). On every request's path: ``level`` and
        ``_store`` inlined, one clock reading."""
        rate = self.rate
        if rate.per_second <= 0:
            return
        now = self.clock()
        levels = self._levels
        held = levels.get(key)
        units = rate.burst if held is None else min(rate.burst, held[0] + (now - held[1]) * rate.per_second)
        if units < amount:
            raise OverLimit(self.policy, rate, self._wait(units, amount))
        levels[key] = (units - amount, now)
        levels.move_to_end(key)
        if len(levels) > self.max_keys:
            levels.popitem(last=False)

    def require(self, key: str) -> None:
        """Raise ``OverLimit`` while ``key`` is out of units (or in debt); spends nothing."""
        if not self.rate.enabled:
            return
        units = self.level(key)
        if units < 1:
            raise OverLimit(self.policy, self.rate, self._wait(units, 1))

    def charge(self, key: str, amount: float) -> float:
        """Spend ``amount`` for work already admitted, into debt if need be (never below minus one burst);
        returns what was really taken (less than ``amount`` where the debt is capped)."""
        if not self.rate.enabled or amount <= 0:
            return 0.0
        units = self.level(key)
        left = max(-self.rate.burst, units - amount)
        self._store(key, left)
        return units - left

    def settle(self, key: str, charged: float, actual: float) -> None:
        """Turn a charge that took ``charged`` (on an estimate, before the work ran) into one of ``actual``: the
        difference is given back (never above a full bucket), or charged when the work cost more."""
        if not self.rate.enabled or actual == charged:
            return
        if actual > charged:
            self.charge(key, actual - charged)
        else:
            self._store(key, min(self.rate.burst, self.level(key) + charged - actual))


class Throttle:
    """The buckets of one instance, and how many requests each policy refused (for the metrics)."""

    def __init__(self, limits: Limits, clock: Clock = time.monotonic):
        self.limits = limits
        self.address = Buckets("address", limits.address, clock)
        self.principal = Buckets("principal", limits.principal, clock)
        self.anonymous = Buckets("anonymous", limits.anonymous, clock)
        self.failures = Buckets("failures", limits.failures, clock)
        # The same rate per calling principal: tokens a resource server asks about (POST /oauth/introspect) that
        # are not active cost the caller, not its address, which every client behind that server shares.
        self.principal_failures = Buckets("principal_failures", limits.failures, clock)
        self.cost = Buckets("cost", limits.cost, clock)
        self.secret_scanning = Buckets("secret_scanning", limits.secret_scanning, clock)
        self.refused: dict[str, int] = {}

    def count(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def _guarded(self, spend: Callable[[], None]) -> None:
        try:
            spend()
        except OverLimit as over:
            self.count(over.policy)
            raise

    def take(self, buckets: Buckets, key: str) -> None:
        try:  # _guarded's work without a closure: this runs twice on every request
            buckets.take(key)
        except OverLimit as over:
            self.count(over.policy)
            raise

    def require(self, buckets: Buckets, key: str) -> None:
        self._guarded(lambda: buckets.require(key))
