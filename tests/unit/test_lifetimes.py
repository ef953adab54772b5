"""The one expiry rule for new tokens (lifetimes.token_expiry) and the token policy's bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tokengate.core.errors import InvalidInput
from tokengate.core.lifetimes import TokenPolicy, as_utc, check_token_policy, token_expiry

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_without_bounds_a_token_may_live_forever_or_until_asked():
    assert token_expiry(None, NOW) is None
    assert token_expiry(NOW + DAY, NOW) == NOW + DAY
    with pytest.raises(InvalidInput, match="must be in the future"):
        token_expiry(NOW, NOW)


def test_the_creating_token_bounds_what_it_creates():
    creator = NOW + 10 * DAY
    assert token_expiry(None, NOW, creator_expires_at=creator) == creator  # no expiry asked: the creator's
    assert token_expiry(NOW + DAY, NOW, creator_expires_at=creator) == NOW + DAY
    with pytest.raises(InvalidInput, match="calling token's own expiry"):
        token_expiry(NOW + 11 * DAY, NOW, creator_expires_at=creator)


def test_the_policy_maximum_is_the_default_and_the_limit():
    assert token_expiry(None, NOW, max_lifetime_days=90) == NOW + 90 * DAY
    assert token_expiry(None, NOW, max_lifetime_days=90, creator_expires_at=NOW + DAY) == NOW + DAY
    with pytest.raises(InvalidInput, match="at most 90 days"):
        token_expiry(NOW + 91 * DAY, NOW, max_lifetime_days=90)


def test_a_required_expiry_takes_the_inherited_lifetime_or_is_refused():
    with pytest.raises(InvalidInput, match="requires an expiry"):
        token_expiry(None, NOW, required=True)
    assert token_expiry(None, NOW, required=True, inherited=NOW + 5 * DAY) == NOW + 5 * DAY
    # An inherited expiry already past is no lifetime to keep.
    with pytest.raises(InvalidInput, match="requires an expiry"):
        token_expiry(None, NOW, required=True, inherited=NOW - DAY)
    assert token_expiry(None, NOW, required=True, inherited=NOW + 50 * DAY, max_lifetime_days=30) == NOW + 30 * DAY
    with pytest.raises(InvalidInput, match="requires an expiry"):  # a maximum is no expiry chosen
        token_expiry(None, NOW, required=True, max_lifetime_days=30, creator_expires_at=NOW + DAY)


def test_times_out_of_range_are_refused_in_our_words():
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=23, minutes=59)))
    with pytest.raises(InvalidInput, match="out of range"):
        token_expiry(far, NOW)
    early = datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(InvalidInput, match="out of range"):
        as_utc(early)
    assert as_utc(datetime(2030, 1, 1)) == datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("days", [0, -1, 36501])
def test_policy_lifetimes_are_bounded(days):
    with pytest.raises(InvalidInput):
        check_token_policy(TokenPolicy(service_token_max_lifetime_days=days))
    with pytest.raises(InvalidInput):
        check_token_policy(TokenPolicy(user_token_max_lifetime_days=days))
    assert check_token_policy(TokenPolicy(False, None, 1)) == TokenPolicy(False, None, 1)
