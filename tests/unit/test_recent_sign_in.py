"""Which changes give ACCOUNT_ADMIN (core/policy.py ``gives_account_admin``), and the recent sign-in check
(auth/recent_sign_in.py) on a session's principal and a token's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tokengate.auth.recent_sign_in import require_recent_sign_in
from tokengate.config import Config, SignInSettings
from tokengate.core.errors import CONTRACT_CODES, RecentSignInRequired
from tokengate.core.policy import USER, Grant, Principal, gives_account_admin

ADMIN = Grant("ACCOUNT_ADMIN")
DEVELOPER = Grant("DEVELOPER")
NOW = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)
CONFIG = Config(Path("."), None, (b"k" * 32,), sign_in=SignInSettings(recent_sign_in_seconds=600.0))


@pytest.mark.parametrize(
    ("before", "after", "old_license", "new_license", "gives"),
    [
        ((), (ADMIN,), None, "DEVELOPER", True),  # a new admin
        ((), (ADMIN,), None, "READ_ONLY", True),  # the grant itself, even where the license keeps it idle
        ((), (ADMIN,), None, None, True),  # a token
        ((DEVELOPER,), (DEVELOPER, ADMIN), "DEVELOPER", "DEVELOPER", True),
        ((ADMIN,), (ADMIN, DEVELOPER), "DEVELOPER", "DEVELOPER", False),  # kept, not given
        ((ADMIN,), (ADMIN,), None, None, False),
        ((ADMIN,), (ADMIN,), "READ_ONLY", "DEVELOPER", True),  # a license that lets the held grant act
        ((ADMIN,), (ADMIN,), "READ_ONLY", "READ_ONLY", False),
        ((ADMIN,), (ADMIN,), "DEVELOPER", "READ_ONLY", False),  # taking away
        ((ADMIN,), (), "DEVELOPER", "DEVELOPER", False),
        ((), (DEVELOPER,), None, "DEVELOPER", False),
    ],
)
def test_what_gives_account_admin(before, after, old_license, new_license, gives):
    assert gives_account_admin(before, after, old_license, new_license) is gives


def principal(signed_in_at: datetime | None) -> Principal:
    return Principal(
        USER, "ses_1", "session", "acc_1", "Acme", "ENTERPRISE", "usr_1", "DEVELOPER", (ADMIN,), frozenset(),
        signed_in_at=signed_in_at,
    )  # fmt: skip


def test_a_session_within_the_window_passes_and_one_past_it_is_refused():
    require_recent_sign_in(principal(NOW - timedelta(seconds=600)), CONFIG, NOW)
    with pytest.raises(RecentSignInRequired, match="sign in again") as refused:
        require_recent_sign_in(principal(NOW - timedelta(seconds=601)), CONFIG, NOW)
    assert refused.value.extensions == {"code": "RECENT_SIGN_IN_REQUIRED"}
    assert "RECENT_SIGN_IN_REQUIRED" in CONTRACT_CODES


def test_tokens_and_the_operator_are_never_asked():
    require_recent_sign_in(principal(None), CONFIG, NOW)  # a token's principal carries no sign-in
    require_recent_sign_in(None, CONFIG, NOW)  # the operator at the command line
