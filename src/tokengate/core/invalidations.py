"""What a change makes stale in the caches of every instance, as typed notices. Pure.

A change states its notices once (services/unit_of_work.py): they are published with NOTIFY inside its
transaction, so other instances hear them only if it commits, and the same notices are applied to this
instance's caches right after the commit, by the same handler the listener uses for the others'.
The payload is small JSON (``{"kind": "token", "token_id": ...}``); a kind this version does not know
decodes to None, and the listener then forgets everything (the safe answer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class TokenChanged:
    """A token was deleted, revoked, renamed, re-granted or given an earlier expiry."""

    token_id: str


@dataclass(frozen=True, slots=True)
class UserChanged:
    """A user's grants, license or state changed: every principal of that user is stale."""

    user_id: str


@dataclass(frozen=True, slots=True)
class AccountChanged:
    """Something every principal of the account carries changed (its projects)."""

    account_id: str


@dataclass(frozen=True, slots=True)
class IpRulesChanged:
    """The account's IP restrictions changed."""

    account_id: str


Notice = TokenChanged | UserChanged | AccountChanged | IpRulesChanged

_KINDS: Final[dict[str, tuple[type[Notice], str]]] = {
    "token": (TokenChanged, "token_id"),
    "user": (UserChanged, "user_id"),
    "account": (AccountChanged, "account_id"),
    "ip_rules": (IpRulesChanged, "account_id"),
}
_KIND_OF: Final[dict[type[Notice], str]] = {cls: kind for kind, (cls, _) in _KINDS.items()}


def encode(notice: Notice) -> str:
    kind = _KIND_OF[type(notice)]
    field = _KINDS[kind][1]
    return json.dumps({"kind": kind, field: getattr(notice, field)}, separators=(",", ":"))


def decode(payload: str) -> Notice | None:
    """The notice in a NOTIFY payload; None for one this version cannot read."""
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    known = _KINDS.get(message.get("kind"))  # type: ignore[arg-type]
    if known is None:
        return None
    cls, field = known
    value = message.get(field)
    return cls(value) if isinstance(value, str) else None
