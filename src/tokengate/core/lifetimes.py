"""How long a new token may live: the account's token policy and the creating token's own expiry. Pure.

One rule for service tokens (create, rotate) and personal tokens: an expiry asked for must be in the future,
within the policy's maximum lifetime, and no later than the token making the call expires; without one the
token gets the earliest of those bounds, or none at all.

And one rule for every change a token makes to a token (create, rotate, edit, set grants): it may not leave a
token with more power than before that also expires later than the calling token (``require_lifetime_bound``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from tokengate.core.errors import Forbidden, InvalidInput
from tokengate.core.policy import Grant, Principal, added_power

DEFAULT_USER_TOKEN_MAX_LIFETIME_DAYS: Final = 90
MAX_LIFETIME_DAYS: Final = 36500  # a hundred years: beyond it "lifetime" means nothing


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """An account's rules for token lifetimes (no stored row: these defaults)."""

    require_service_token_expiry: bool = False
    service_token_max_lifetime_days: int | None = None
    user_token_max_lifetime_days: int = DEFAULT_USER_TOKEN_MAX_LIFETIME_DAYS


def check_token_policy(policy: TokenPolicy) -> TokenPolicy:
    """Refuse lifetimes outside 1 to ``MAX_LIFETIME_DAYS`` days (``InvalidInput``)."""
    for name, days in (
        ("serviceTokenMaxLifetimeDays", policy.service_token_max_lifetime_days),
        ("userTokenMaxLifetimeDays", policy.user_token_max_lifetime_days),
    ):
        if days is not None and not 1 <= days <= MAX_LIFETIME_DAYS:
            raise InvalidInput(f"{name} must be 1 to {MAX_LIFETIME_DAYS}")
    return policy


def as_utc(moment: datetime, what: str = "expiresAt") -> datetime:
    """The time in UTC (a time without offset is read as UTC); one whose offset carries it past year 1 or 9999
    is refused, not a crash."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{what} is out of range: give a time between years 1 and 9999 in UTC") from None


def creator_expiry(creator: Principal | None, kind: str) -> datetime | None:
    """The bound the calling token puts on a token of ``kind`` (SERVICE_TOKEN or USER) it makes: its own expiry
    when it is of that kind (a service token making service tokens, a personal token making personal tokens)."""
    if creator is None or creator.kind != kind:
        return None
    return creator.expires_at


def token_expiry(
    requested: datetime | None,
    now: datetime,
    *,
    max_lifetime_days: int | None = None,
    creator_expires_at: datetime | None = None,
    required: bool = False,
    inherited: datetime | None = None,
) -> datetime | None:
    """The expiry of a new token, or ``InvalidInput`` saying which bound ``requested`` breaks.

    Without ``requested`` it is the earliest of ``inherited`` (a rotated token's remaining lifetime, when still
    in the future), the policy's maximum and the creator's expiry, or None when there is no bound; when
    ``required``, only ``inherited`` may stand in for an expiry not given.
    """
    latest = now + timedelta(days=max_lifetime_days) if max_lifetime_days is not None else None
    if requested is not None:
        requested = as_utc(requested)
        if requested <= now:
            raise InvalidInput("expiresAt must be in the future")
        if latest is not None and requested > latest:
            raise InvalidInput(
                f"expiresAt may be at most {max_lifetime_days} days from now ({latest.isoformat()}): "
                "the account's token policy"
            )
        if creator_expires_at is not None and requested > creator_expires_at:
            raise InvalidInput(
                f"expiresAt may not be later than the calling token's own expiry ({creator_expires_at.isoformat()})"
            )
        return requested
    still_running = inherited if inherited is not None and inherited > now else None
    if required and still_running is None:  # a bound the caller did not choose is not the expiry required
        raise InvalidInput("the account's token policy requires an expiry: give expiresAt")
    bounds = [bound for bound in (still_running, latest, creator_expires_at) if bound is not None]
    return min(bounds) if bounds else None


def lifetime_bound_denial(
    bound: datetime | None, expires_at: datetime | None, before: Sequence[Grant], after: Sequence[Grant]
) -> str | None:
    """Why a change made by a token that expires at ``bound`` may not leave a token expiring at ``expires_at``
    (None: never) holding ``after`` where it held ``before`` (nothing, for a new token), or None when it may: a
    token may give power only to tokens that expire no later than itself, so that nothing it does outlives it.
    An unexpiring caller (``bound`` None) is not bounded; taking power away, or keeping it, always may."""
    if bound is None or (expires_at is not None and expires_at <= bound):
        return None
    added = added_power(before, after)
    if added is None:
        return None
    lives = "never expires" if expires_at is None else f"expires at {expires_at.isoformat()}"
    return (
        f"this would give {added} to a token that {lives}, later than the calling token "
        f"({bound.isoformat()}): a token may give power only to tokens that expire no later than itself"
    )


def require_lifetime_bound(
    actor: Principal | None,
    kind: str,
    expires_at: datetime | None,
    before: Sequence[Grant],
    after: Sequence[Grant],
) -> None:
    """``Forbidden`` when the calling principal's change to a token of ``kind`` breaks ``lifetime_bound_denial``;
    the caller's expiry bounds tokens of its own kind (``creator_expiry``)."""
    denial = lifetime_bound_denial(creator_expiry(actor, kind), expires_at, before, after)
    if denial is not None:
        raise Forbidden(denial)
