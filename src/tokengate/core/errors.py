"""What a change or a question can be refused with, each carrying the contract's code. Pure: no I/O.

Services raise these; every door renders them its own way (GraphQL ``extensions.code``, an HTTP status,
one line on the command line's stderr). Messages are safe to show: they never contain a secret, and a
client's value appears in them only through ``validation.shown`` (cut short).
"""

from __future__ import annotations

from typing import ClassVar, Final


class DomainError(Exception):
    """A refusal the caller can act on: its message is shown, its code is the contract's."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    @property
    def extensions(self) -> dict[str, str]:
        """What GraphQL errors carry (graphql-core copies it from the cause of a field error)."""
        return {"code": self.code}


class InvalidInput(DomainError):
    code = "BAD_USER_INPUT"


class NotFound(DomainError):
    """The one answer for an id that does not exist and an id of another account."""

    code = "NOT_FOUND"

    def __init__(self, what: str):
        super().__init__(f"{what} not found")
        self.what = what


class Forbidden(DomainError):
    code = "FORBIDDEN"


class PlanRestricted(DomainError):
    code = "PLAN_RESTRICTED"


class Unauthenticated(DomainError):
    """No valid credentials; ``outcome`` (missing | malformed | invalid) is for metrics."""

    code = "UNAUTHENTICATED"

    def __init__(self, message: str, outcome: str = "invalid"):
        super().__init__(message)
        self.outcome = outcome


class RecentSignInRequired(DomainError):
    """A sensitive change asked of a browser session that signed in too long ago (auth/recent_sign_in.py): the
    person signs in again and retries. Tokens are never asked."""

    code = "RECENT_SIGN_IN_REQUIRED"


class QuotaExceeded(DomainError):
    """A change that would take an account past a quota (usable service tokens)."""

    code = "QUOTA_EXCEEDED"


class Overloaded(DomainError):
    """Work refused because the instance is at a capacity limit; the same request may succeed shortly."""

    code = "SERVICE_UNAVAILABLE"


# Every code a client may see besides INTERNAL_SERVER_ERROR (masked) and the HTTP-level ones.
CONTRACT_CODES: Final = frozenset(
    cls.code
    for cls in (
        InvalidInput,
        NotFound,
        Forbidden,
        PlanRestricted,
        Unauthenticated,
        RecentSignInRequired,
        QuotaExceeded,
        Overloaded,
    )
)
