"""Edits keep the lifetime bound (contract, additions of 2026-12-06): a change made by a token never leaves a
token with more power than before that also expires later than the calling token. The comparison of power
(``policy.added_power``) is checked over every pair of single grants of the matrix against an oracle that reads
the reference matrix itself; the bound (``lifetimes.lifetime_bound_denial``) on the cases that decide it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.test_no_escalation import GIVERS, GIVES, giver_holds, principal
from tokengate.core.catalog import ACCOUNT_RESOURCES
from tokengate.core.errors import Forbidden
from tokengate.core.lifetimes import lifetime_bound_denial, require_lifetime_bound
from tokengate.core.policy import SERVICE_TOKEN, USER, Grant, added_power

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def adds_power(before: Grant, after: Grant) -> bool:
    """The oracle: does a token holding ``after`` hold some (resource, access, scope) one holding ``before`` lacks?"""
    projects = (None,) if after.all_projects else after.project_ids
    return not all(
        giver_holds(before, resource, access, None if resource in ACCOUNT_RESOURCES else project)
        for resource, access in GIVES[after.permission_set]
        for project in projects
    )


@pytest.mark.parametrize("before", GIVERS, ids=lambda g: f"{g.permission_set}:{','.join(g.project_ids) or 'all'}")
def test_power_added_by_replacing_one_grant_with_another_follows_the_matrix(before):
    for after in GIVERS:
        added = added_power([before], [after])
        assert (added is not None) == adds_power(before, after), (before, after, added)


def test_keeping_narrowing_or_removing_grants_adds_no_power():
    admin = Grant("ACCOUNT_ADMIN")
    assert added_power([admin], [admin]) is None
    assert added_power([admin], []) is None
    assert added_power([Grant("JOB_ADMIN")], [Grant("JOB_VIEWER"), Grant("JOB_ADMIN", False, ("prj_a",))]) is None
    assert added_power([], []) is None
    # All projects covers the projects made later: a list of every project today does not.
    assert added_power([Grant("JOB_ADMIN", False, ("prj_a", "prj_b"))], [Grant("JOB_ADMIN")]) is not None
    assert added_power([Grant("JOB_VIEWER")], [Grant("ACCOUNT_ADMIN")]) is not None


def test_a_token_gives_power_only_to_tokens_that_expire_no_later_than_itself():
    bound = NOW + HOUR
    before, more, less = [Grant("JOB_VIEWER")], [Grant("ACCOUNT_ADMIN")], []
    denial = lifetime_bound_denial(bound, None, before, more)
    assert denial is not None and "never expires" in denial and bound.isoformat() in denial
    denial = lifetime_bound_denial(bound, bound + HOUR, before, more)
    assert denial is not None and (bound + HOUR).isoformat() in denial
    assert lifetime_bound_denial(bound, bound, before, more) is None  # expires with the caller
    assert lifetime_bound_denial(bound, NOW, before, more) is None  # already expired
    assert lifetime_bound_denial(bound, None, before, less) is None  # taking power away
    assert lifetime_bound_denial(bound, None, before, before) is None  # changing nothing
    assert lifetime_bound_denial(None, None, before, more) is None  # an unexpiring caller is not bounded


def test_the_callers_expiry_bounds_tokens_of_its_own_kind():
    expiring_service_token = replace(principal([Grant("ACCOUNT_ADMIN")]), expires_at=NOW + HOUR)
    with pytest.raises(Forbidden, match="expire no later than itself"):
        require_lifetime_bound(expiring_service_token, SERVICE_TOKEN, None, [Grant("JOB_VIEWER")], [Grant("JOB_ADMIN")])
    # A person's (always expiring) personal token does not bound the account's service tokens; the operator neither.
    personal = replace(principal([Grant("ACCOUNT_ADMIN")], "DEVELOPER", kind=USER), expires_at=NOW + HOUR)
    require_lifetime_bound(personal, SERVICE_TOKEN, None, [], [Grant("ACCOUNT_ADMIN")])
    require_lifetime_bound(None, SERVICE_TOKEN, None, [], [Grant("ACCOUNT_ADMIN")])
