"""The principal cache: bounded, LRU, TTL backstop, targeted invalidation."""

from __future__ import annotations

import pytest

from tokengate.cache import MAX_TTL_SECONDS, PrincipalCache
from tokengate.policy import Grant, Principal


def principal(token_id: str, account_id: str = "acc_1", user_id: str | None = None) -> Principal:
    return Principal(
        kind="USER" if user_id else "SERVICE_TOKEN",
        token_id=token_id,
        display_prefix="tgs_abcd…",
        account_id=account_id,
        account_name="A",
        account_plan="ENTERPRISE",
        user_id=user_id,
        license="DEVELOPER" if user_id else None,
        grants=(Grant("ACCOUNT_ADMIN"),),
        project_ids=frozenset(),
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_never_holds_more_than_its_size_and_evicts_least_recently_used():
    cache = PrincipalCache(max_size=3)
    for name in "abc":
        cache.put(name, b"h", principal(name))
    assert cache.get("a") is not None  # a is now most recent
    cache.put("d", b"h", principal("d"))
    assert len(cache) == 3
    assert cache.get("b") is None
    assert {k for k in "acd" if cache.get(k)} == {"a", "c", "d"}
    assert cache.stats.evictions == 1


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = PrincipalCache(ttl=10, clock=clock)
    cache.put("a", b"h", principal("a"))
    clock.now = 9.9
    assert cache.get("a") is not None
    clock.now = 10.1
    assert cache.get("a") is None
    assert len(cache) == 0


def test_ttl_is_capped_at_sixty_seconds():
    assert PrincipalCache(ttl=3600).ttl == MAX_TTL_SECONDS


def test_targeted_invalidation():
    cache = PrincipalCache()
    cache.put("a", b"h", principal("a", "acc_1"))
    cache.put("b", b"h", principal("b", "acc_2"))
    cache.put("u", b"h", principal("u", "acc_2", user_id="usr_1"))
    cache.invalidate_token("a")
    assert cache.get("a") is None and cache.get("b") is not None
    cache.invalidate_user("usr_1")
    assert cache.get("u") is None and cache.get("b") is not None
    cache.invalidate_account("acc_2")
    assert len(cache) == 0


def test_hits_and_misses_are_counted():
    cache = PrincipalCache()
    cache.get("a")
    cache.put("a", b"h", principal("a"))
    cache.get("a")
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)


def test_size_must_be_positive():
    with pytest.raises(ValueError):
        PrincipalCache(max_size=0)
