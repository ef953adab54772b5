"""Sensitive changes ask a browser session for a recent sign-in (docs/sign-in.md "Recent sign-in").

A session found in a stolen cookie, or a laptop left open, must not hand out what outlives it: SCIM tokens,
ACCOUNT_ADMIN for a member or a token, a credential that carries ACCOUNT_ADMIN, the single sign-on settings.
Those changes call ``require_recent_sign_in`` (the services through ``Actor.require_recent_sign_in``, which the
GraphQL context binds to this function); a session that signed in more than ``TOKENGATE_RECENT_SIGN_IN_SECONDS``
ago is refused with ``RECENT_SIGN_IN_REQUIRED`` before anything is written. Tokens are never asked: a token is
what a script holds, and it has no sign-in to repeat.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from tokengate.config import Config
from tokengate.core.errors import RecentSignInRequired
from tokengate.core.policy import Principal

MESSAGE: Final = "this change needs a recent sign-in: sign in again, then try it again"


def require_recent_sign_in(principal: Principal | None, config: Config, now: datetime | None = None) -> None:
    """Refuse (``RecentSignInRequired``) a browser session whose sign-in is older than the setting; anyone else
    (a token, the operator) passes. The sign-in time is the database's (the session's start), compared with
    this instance's clock: instances and their database are expected to keep time."""
    if principal is None or principal.signed_in_at is None:
        return
    age = ((now or datetime.now(UTC)) - principal.signed_in_at).total_seconds()
    if age > config.sign_in.recent_sign_in_seconds:
        raise RecentSignInRequired(MESSAGE)
