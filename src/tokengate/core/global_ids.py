"""Object ids unique across types (Relay's Global Object Identification), and the row keys behind them. Pure.

Every id the API prints starts with its type's prefix: ``acc_``, ``usr_``, ``prj_`` and ``ipr_`` ids were
made that way from the start (the row key is the id), while token and audit event rows are keyed by a bare
value, printed with a prefix: ``stk_`` + the 16-character id of a service token, ``utk_`` + that of a
personal token, ``aud_`` + the number of an audit event. Migration path: ids handed out before had no
prefix, so a bare 16-character token id is still accepted wherever a token id is read (mutations,
``node``); ids are printed in the prefixed form only.

One id form (contract, 2026-12-06): the API, the events, audit details, actor strings and the command line
print these ids; every input that took a bare token id still takes it. The audit table holds row keys, as it
always has (its indexes serve the filters, it refuses UPDATE, and old and new rows stay alike): a token's
bare key in ``actor``, ``target_id`` and ``details``, a delivery's number in ``details``. They are printed
where they leave the server (GraphQL, webhook bodies) by ``printed_actor``, ``audit_target_id`` and
``printed_details``, and a filter is turned into the stored form by ``stored_actor`` and
``audit_target_key``. A new detail naming an object is added to ``_DETAIL_IDS``. ``X-Tokengate-Principal``
keeps its documented form (``service_token:<row key>``), which gateways parse.
"""

from __future__ import annotations

from collections.abc import Callable
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

ActorKind = Literal["user", "service_token", "scim_token"]
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
VIEWER_PREFIX: Final = "vwr"
WEBHOOK_DELIVERY_PREFIX: Final = "whd_"
USER_ACTOR: Final = "user"
SERVICE_TOKEN_ACTOR: Final = "service_token"
SCIM_TOKEN_ACTOR: Final = "scim_token"  # the identity provider, through a SCIM token (docs/scim.md)
SCIM_TOKEN_PREFIX: Final = "scm"


def scim_token_id(key: str) -> str:
    """The printed id of the SCIM token whose row key is ``key``."""
    return f"{SCIM_TOKEN_PREFIX}_{key}"


def scim_token_key(text: str) -> str | None:
    """The row key of a SCIM token id, printed (``scm_…``) or bare; None otherwise."""
    prefix, separator, rest = text.partition("_")
    key = rest if separator and prefix == SCIM_TOKEN_PREFIX else text
    return key if _is_key(key) else None


TOKEN_KEY_LENGTH: Final = 16
MAX_KEY_LENGTH: Final = 64
MAX_AUDIT_EVENT: Final = 2**63 - 1  # the bigint identity's range
_BASE62: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# Audit actions whose target is a token row (its bare key is what the audit table holds).
_TOKEN_TARGETS: Final = (
    ("service_token.", "stk"),
    ("legacy_token.", "stk"),
    ("user_token.", "utk"),
    ("scim_token.", SCIM_TOKEN_PREFIX),
)


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


def webhook_delivery_id(number: int | str) -> str:
    """The printed id of a webhook delivery (its row number)."""
    return f"{WEBHOOK_DELIVERY_PREFIX}{number}"


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


def actor_name(kind: ActorKind, principal_id: str, display_prefix: str | None = None, *, printed: bool) -> str:
    """The one spelling of a principal as the audit log, the rate limits and ``X-Tokengate-Principal`` name it:
    ``user:<usr_ id>``, or ``service_token:<id>`` followed by `` (<display prefix>)`` when one is given. A
    service token's id is its row key where the name is stored or sent as a header (``printed=False``), its
    ``stk_`` id where the API prints it (``printed=True``)."""
    if kind == SERVICE_TOKEN_ACTOR and printed and _is_key(principal_id):
        principal_id = service_token_id(principal_id)
    elif kind == SCIM_TOKEN_ACTOR and _is_key(principal_id):
        principal_id = scim_token_id(principal_id)  # no stored form to keep: printed alike everywhere
    name = f"{kind}:{principal_id}"
    return f"{name} ({display_prefix})" if display_prefix is not None else name


def _service_token_actor(text: str) -> tuple[str, str | None] | None:
    """The row key and the display prefix of ``service_token:<id>[ (<display prefix>)]``, the id printed or
    bare; None for any other actor."""
    principal, opening, rest = text.partition(" (")
    kind, colon, given_id = principal.partition(":")
    if kind != SERVICE_TOKEN_ACTOR or not colon:
        return None
    key = token_key(given_id, SERVICE_TOKEN)
    if key is None:
        return None
    display_prefix = rest[:-1] if opening and rest.endswith(")") else None
    return key, display_prefix


def printed_actor(stored: str) -> str:
    """An actor as the API prints it (GraphQL, events): a service token by its ``stk_`` id, whichever form was
    stored; anything else as it is."""
    parsed = _service_token_actor(stored)
    if parsed is None:
        return stored
    key, display_prefix = parsed
    return actor_name(SERVICE_TOKEN_ACTOR, key, display_prefix, printed=True)


def stored_actor(given: str) -> str:
    """The principal the audit filter compares, in the stored form: ``service_token:stk_<key>``,
    ``service_token:<key>``, either with its `` (<display prefix>)`` -> ``service_token:<key>``; any other
    actor as given (the store compares the text before `` (``)."""
    parsed = _service_token_actor(given)
    return given if parsed is None else actor_name(SERVICE_TOKEN_ACTOR, parsed[0], printed=False)


def _printed_token(value: str) -> str:
    return service_token_id(value) if _is_key(value) else value


def _printed_delivery(value: str) -> str:
    return webhook_delivery_id(value) if value.isascii() and value.isdigit() else value


# Audit details that name an object by its row key, and how each is printed.
_DETAIL_IDS: Final[dict[str, Callable[[str], str]]] = {
    "new_token_id": _printed_token,
    "delivery_id": _printed_delivery,
    "new_delivery_id": _printed_delivery,
}


def printed_details(details: dict[str, object]) -> dict[str, object]:
    """An audit event's details with every id printed as the API prints it (idempotent)."""
    if not any(isinstance(details.get(name), str) for name in _DETAIL_IDS):
        return details
    return {
        name: _DETAIL_IDS[name](value) if name in _DETAIL_IDS and isinstance(value, str) else value
        for name, value in details.items()
    }
