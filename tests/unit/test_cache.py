"""The principal cache: bounded, LRU, TTL backstop, targeted invalidation."""

from __future__ import annotations

import pytest

from tokengate.auth.principal_cache import (
    INVALID_IDS_SIZE,
    MAX_TTL_SECONDS,
    RECENT_CHANGES_SIZE,
    PrincipalCache,
)
from tokengate.core.policy import Grant, Principal


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


def test_one_account_filling_the_cache_evicts_its_own_entries_not_the_others():
    cache = PrincipalCache(max_size=100, account_share=0.25)
    for i in range(75):  # three quiet accounts, 25 tokens each
        cache.put(f"q{i}", b"h", principal(f"q{i}", account_id=f"acc_quiet{i % 3}"))
    # One account mints and uses tokens as fast as it can (the cache churn attack): the others stay.
    for i in range(10_000):
        cache.put(f"m{i}", b"h", principal(f"m{i}", account_id="acc_minting"))
    assert len(cache) == 100
    assert all(cache.get(f"q{i}") is not None for i in range(75))
    assert cache.entries_of("acc_minting") == 25
    assert cache.get("m9999") is not None and cache.get("m0") is None


def test_an_account_alone_may_use_the_whole_cache():
    cache = PrincipalCache(max_size=100, account_share=0.25)
    for i in range(150):
        cache.put(f"t{i}", b"h", principal(f"t{i}"))
    assert len(cache) == 100 and cache.entries_of("acc_1") == 100


def test_under_its_share_an_account_still_evicts_the_least_recently_used():
    cache = PrincipalCache(max_size=4, account_share=0.5)
    for name, account in [("a", "acc_a"), ("b", "acc_b"), ("c", "acc_b"), ("d", "acc_c")]:
        cache.put(name, b"h", principal(name, account_id=account))
    cache.put("e", b"h", principal("e", account_id="acc_a"))  # acc_a holds 1 of its 2: plain LRU
    assert cache.get("a") is None and len(cache) == 4


def test_a_legacy_entry_is_found_by_its_alias_and_forgotten_with_it():
    cache = PrincipalCache()
    cache.put("legacy1", b"keyed-hash", principal("legacy1"), alias=b"keyed-hash")
    assert cache.aliased(b"keyed-hash") == "legacy1"
    cache.invalidate_token("legacy1")
    assert cache.aliased(b"keyed-hash") is None
    cache.put("legacy1", b"keyed-hash", principal("legacy1"), alias=b"keyed-hash")
    cache.clear()
    assert cache.aliased(b"keyed-hash") is None


def test_texts_that_cannot_authenticate_are_remembered_for_a_while():
    clock = Clock()
    cache = PrincipalCache(clock=clock)
    cache.note_invalid(b"hash of an unknown text")
    assert cache.known_invalid(b"hash of an unknown text") and not cache.known_invalid(b"hash of another")
    clock.now += 61
    assert not cache.known_invalid(b"hash of an unknown text")  # the TTL bounds how long the answer is kept
    # What is remembered can never authenticate later (an id not issued, a secret that is not the token's, a
    # deleted or expired token): a flush forgets it anyway, a change to a token need not.
    cache.note_invalid(b"hash of a deleted token's text")
    cache.clear()
    assert not cache.known_invalid(b"hash of a deleted token's text")


def test_the_texts_remembered_are_bounded():
    cache = PrincipalCache()
    for i in range(INVALID_IDS_SIZE + 10):
        cache.note_invalid(f"id{i}".encode())
    assert cache.invalid_ids() == INVALID_IDS_SIZE
    assert not cache.known_invalid(b"id0") and cache.known_invalid(f"id{INVALID_IDS_SIZE + 9}".encode())


def test_a_notice_after_a_read_began_marks_what_it_concerns_as_changed():
    cache = PrincipalCache()
    read_began = cache.generation()
    assert not cache.changed_since(read_began, "tok1", "usr1", "acc1")
    cache.invalidate_token("tok2")  # another token: nothing read about tok1 is stale
    assert not cache.changed_since(read_began, "tok1", "usr1", "acc1")
    cache.invalidate_token("tok1")
    assert cache.changed_since(read_began, "tok1", "usr1", "acc1")
    after = cache.generation()  # a read that began after the notice saw the change
    assert not cache.changed_since(after, "tok1", "usr1", "acc1")
    # A user's and an account's notices concern every token of theirs, cached or not.
    cache.invalidate_user("usr1")
    assert cache.changed_since(after, "tok1", "usr1", "acc1") and not cache.changed_since(after, "tok3", None, "acc1")
    later = cache.generation()
    cache.invalidate_account("acc1")
    assert cache.changed_since(later, "tok3", None, "acc1") and not cache.changed_since(later, "tok4", None, "acc2")
    # A flush (the listener reconnected, or an unreadable notice) concerns everything.
    flushed = cache.generation()
    cache.clear()
    assert cache.changed_since(flushed, "tok9", None, "acc9")


def test_the_changes_remembered_are_bounded_and_what_falls_out_counts_as_changed():
    cache = PrincipalCache()
    read_began = cache.generation()
    cache.invalidate_token("early")
    for i in range(RECENT_CHANGES_SIZE):
        cache.invalidate_token(f"tok{i}")
    assert len(cache._changed) == RECENT_CHANGES_SIZE
    # "early" is forgotten: a read older than it cannot know, so every token it read counts as changed ...
    assert cache.changed_since(read_began, "early", None, "acc") and cache.changed_since(read_began, "x", None, "acc")
    # ... while a read that began after it is judged on what is remembered.
    assert not cache.changed_since(read_began + 1, "x", None, "acc")
