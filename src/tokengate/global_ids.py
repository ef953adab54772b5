"""Object ids unique across types (Relay's Global Object Identification), and the row keys behind them. Pure.

Every id the API prints starts with its type's prefix: ``acc_``, ``usr_``, ``prj_`` and ``ipr_`` ids were
made that way from the start (the row key is the id), while token and audit event rows are keyed by a bare
value, printed with a prefix: ``stk_`` + the 16-character id of a service token, ``utk_`` + that of a
personal token, ``aud_`` + the number of an audit event. Migration path: ids handed out before had no
prefix, so a bare 16-character token id is still accepted wherever a token id is read (mutations,
``node``); ids are printed in the prefixed form only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

ACCOUNT: Final = "Account"
USER: Final = "User"
PROJECT: Final = "Project"
IP_RULE: Final = "IpRule"
SERVICE_TOKEN: Final = "ServiceToken"
USER_TOKEN: Final = "UserToken"
AUDIT_EVENT: Final = "AuditEvent"
VIEWER: Final = "Viewer"
WEBHOOK: Final = "Webhook"
# A bare token id, as printed before the prefixes: either kind of token (the row says which).
ANY_TOKEN: Final = "Token"

NodeType = Literal[
    "Account", "User", "Project", "IpRule", "Webhook", "ServiceToken", "UserToken", "AuditEvent", "Token"
]

# Types whose row key already is the printed id, prefix included.
PREFIXED_KEYS: Final[dict[str, NodeType]] = {
    "acc": "Account",
    "usr": "User",
    "prj": "Project",
    "ipr": "IpRule",
    "whk": "Webhook",
}
# Types whose row key is printed after a prefix.
KEY_PREFIXES: Final[dict[str, NodeType]] = {"stk": "ServiceToken", "utk": "UserToken", "aud": "AuditEvent"}
PREFIX_OF: Final = {type_name: prefix for prefix, type_name in KEY_PREFIXES.items()}
VIEWER_PREFIX: Final = "vwr"
TOKEN_KEY_LENGTH: Final = 16
MAX_KEY_LENGTH: Final = 64
MAX_AUDIT_EVENT: Final = 2**63 - 1  # the bigint identity's range
_BASE62: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# Audit actions whose target is a token row (its bare key is what the audit table holds).
_TOKEN_TARGETS: Final = (("service_token.", "stk"), ("legacy_token.", "stk"), ("user_token.", "utk"))


@dataclass(frozen=True, slots=True)
class GlobalId:
    """What an id names: its type and the key of its row."""

    type: NodeType
    key: str


def _is_key(text: str) -> bool:
    return len(text) == TOKEN_KEY_LENGTH and all(character in _BASE62 for character in text)


def service_token_id(key: str) -> str:
    """The printed id of the service token whose row key is ``key``."""
    return f"stk_{key}"


def user_token_id(key: str) -> str:
    """The printed id of the personal token whose row key is ``key``."""
    return f"utk_{key}"


def audit_event_id(number: int) -> str:
    return f"aud_{number}"


def viewer_id(principal_id: str) -> str:
    """The viewer of a principal (a user's id, or a service token's printed id): one per principal."""
    return f"{VIEWER_PREFIX}_{principal_id}"


def parse(text: str) -> GlobalId | None:
    """What ``text`` names, or None when it cannot be an id this API printed (or a bare token id)."""
    prefix, separator, rest = text.partition("_")
    if not separator:
        return GlobalId(ANY_TOKEN, text) if _is_key(text) else None
    if prefix in PREFIXED_KEYS:  # the row key is the whole text: looked up as it is
        valid = 0 < len(rest) <= MAX_KEY_LENGTH and all(character in _BASE62 for character in rest)
        return GlobalId(PREFIXED_KEYS[prefix], text) if valid else None
    type_name = KEY_PREFIXES.get(prefix)
    if type_name == AUDIT_EVENT:
        valid = rest.isascii() and rest.isdigit() and len(rest) <= 19 and 0 < int(rest) <= MAX_AUDIT_EVENT
        return GlobalId(AUDIT_EVENT, rest) if valid else None
    if type_name is not None and _is_key(rest):
        return GlobalId(type_name, rest)
    return None


def token_key(text: str, kind: Literal["ServiceToken", "UserToken"]) -> str | None:
    """The row key of a token id of ``kind``, prefixed or bare (the form printed before); None otherwise."""
    parsed = parse(text)
    if parsed is None or parsed.type not in (kind, ANY_TOKEN):
        return None
    return parsed.key


def audit_target_id(action: str, target_id: str) -> str:
    """An audit event's target as an id of this API: token rows get their prefix, other targets already have it."""
    for action_prefix, id_prefix in _TOKEN_TARGETS:
        if action.startswith(action_prefix) and _is_key(target_id):
            return f"{id_prefix}_{target_id}"
    return target_id


def audit_target_key(printed: str) -> str:
    """What the audit table holds for a target the API printed: a token's row key, any other id as it is
    (the inverse of ``audit_target_id``)."""
    parsed = parse(printed)
    if parsed is not None and parsed.type in (SERVICE_TOKEN, USER_TOKEN):
        return parsed.key
    return printed
