"""Webhook events: which names a webhook subscribes to, the CloudEvents body, its signature, the sealed signing
secret and the retry schedule. Pure, no I/O.

Every audit action is an event type (``service_token.created``, ``user.created``, ...): the outbox matches the
action a change audits against the subscriptions (``webhook_event_patterns`` in sql/007_events.sql), so an
action added anywhere later is an event without being listed here. The server's scheduled notices add the
types in ``NOTICE_EVENTS``.

A webhook shows only what its owner (the principal that created it, or last changed its URL or events) may
read: each family of events needs the READ that the GraphQL read of the same data needs (``READ_OF_FAMILY``;
``AUDIT_LOG`` for a family not listed, since the audit log reads every audited change), on the event's
project for project events, and the actor's client address needs ``AUDIT_LOG:READ``. Checked when a webhook
subscribes (an explicit type or family the owner may not read is refused; ``*`` means every event the owner
may read) and again, against the owner's grants of the moment, before every delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import nacl.exceptions
import nacl.secret

from tokengate.core import tokens
from tokengate.core.catalog import READ
from tokengate.core.errors import InvalidInput
from tokengate.core.policy import Principal
from tokengate.core.validation import shown

SERVICE_TOKEN_EXPIRING: Final = "service_token.expiring"
SERVICE_TOKEN_EXPIRED: Final = "service_token.expired"
SERVICE_TOKEN_UNUSED: Final = "service_token.unused"
USER_TOKEN_EXPIRING: Final = "user_token.expiring"
NOTICE_EVENTS: Final = (SERVICE_TOKEN_EXPIRING, SERVICE_TOKEN_EXPIRED, USER_TOKEN_EXPIRING, SERVICE_TOKEN_UNUSED)
EXPIRY_NOTICE_DAYS: Final = (30, 7, 1)  # each notice once, the nearest threshold not yet passed
UNUSED_NOTICE_DAYS: Final = 90

TEST_EVENT: Final = "webhook.test"  # sendTestWebhookEvent: to one webhook, whatever it subscribes to

EVERY_EVENT: Final = "*"
MAX_SUBSCRIPTIONS: Final = 100
MAX_EVENT_NAME_LENGTH: Final = 100
_EVENT_TYPE: Final = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
_FAMILY: Final = re.compile(r"[a-z][a-z0-9_]*\.\*")

SIGNATURE_HEADER: Final = "Tokengate-Signature"
SIGNATURE_TOLERANCE_SECONDS: Final = 300  # a receiver refuses a signature older (or newer) than this
SIGNING_SECRET_PREFIX: Final = "whsec_"
SIGNING_SECRET_LENGTH: Final = 32
CONTENT_TYPE: Final = "application/cloudevents+json; charset=utf-8"
SPEC_VERSION: Final = "1.0"


def checked_event_names(names: Iterable[str]) -> tuple[str, ...]:
    """The subscriptions of a webhook: event types (``service_token.created``), families (``service_token.*``)
    or ``*`` for every event; duplicates dropped, order kept. ``InvalidInput`` for anything else."""
    checked = tuple(dict.fromkeys(name.strip() for name in names))
    if not checked:
        raise InvalidInput("events must name at least one event type, a family such as service_token.*, or *")
    if len(checked) > MAX_SUBSCRIPTIONS:
        raise InvalidInput(f"at most {MAX_SUBSCRIPTIONS} events")
    for name in checked:
        well_formed = _EVENT_TYPE.fullmatch(name) or _FAMILY.fullmatch(name)
        if name != EVERY_EVENT and (not well_formed or len(name) > MAX_EVENT_NAME_LENGTH):
            raise InvalidInput(
                f"events: {shown(name)!r} is not an event type such as service_token.created, a family such as "
                "service_token.*, or *"
            )
    return checked


def patterns_for(event_type: str) -> tuple[str, str, str]:
    """The subscriptions that receive an event of this type (the same rule as ``webhook_event_patterns``)."""
    return (event_type, event_type.split(".", 1)[0] + ".*", EVERY_EVENT)


def subscribed(events: Iterable[str], event_type: str) -> bool:
    return not set(patterns_for(event_type)).isdisjoint(events)


# What reading each family of events needs: the READ of the GraphQL field that shows the same data.
READ_OF_FAMILY: Final[dict[str, str]] = {
    "service_token": "SERVICE_TOKENS",  # Account.serviceTokens
    "legacy_token": "SERVICE_TOKENS",  # an imported service token
    "user": "MEMBERS",  # Account.members (grants, license, state)
    "user_token": "MEMBERS",  # User.tokens
    "ip_restrictions": "IP_RESTRICTIONS",  # Account.ipRestrictions
    "token_policy": "ACCOUNT_SETTINGS",  # Account.tokenPolicy
    "trust_policy": "SERVICE_TOKENS",  # Account.trustPolicies (keyless CI)
    "sso": "AUTH_PROVIDER",  # Account.singleSignOn (sso.configured, sso.removed, sso.linked)
    "webhook": "WEBHOOKS",  # Account.webhooks and their delivery logs
    "project": "PROJECTS",  # Account.projects: PROJECTS:READ on the event's project
}
PROJECT_FAMILIES: Final = frozenset({"project"})  # events about one project (their subject): read there
EVERY_CHANGE_READ: Final = "AUDIT_LOG"  # the audit log reads every audited change: a family not listed above
CLIENT_ADDRESS_READ: Final = "AUDIT_LOG"  # the actor's client address is the audit log's


def family_of(name: str) -> str:
    """``service_token`` for ``service_token.created`` and for ``service_token.*``."""
    return name.split(".", 1)[0]


def read_needed(name: str) -> str:
    """The resource whose READ an event type (or family) needs."""
    return READ_OF_FAMILY.get(family_of(name), EVERY_CHANGE_READ)


def _reads_somewhere(owner: Principal, resource: str) -> bool:
    if owner.decide(resource, READ).allowed:
        return True
    return any(owner.decide(resource, READ, project_id).allowed for project_id in owner.project_ids)


def subscription_refusal(owner: Principal | None, name: str) -> str | None:
    """Why the owner may not subscribe to this event type or family, or None. ``*`` is always allowed: it
    subscribes to what the owner may read. A project family is allowed when the owner reads some project
    (each event is checked on its own project at delivery). None (the operator) reads everything."""
    if owner is None or name == EVERY_EVENT:
        return None
    resource = read_needed(name)
    if family_of(name) in PROJECT_FAMILIES:
        allowed = _reads_somewhere(owner, resource)
    else:
        allowed = owner.decide(resource, READ).allowed
    if allowed:
        return None
    return f"events: {shown(name)} requires {resource}:{READ}, which you do not hold"


def delivery_refusal(owner: Principal | None, event_type: str, subject: str | None) -> str | None:
    """Why an event may not be sent to a webhook of this owner now, or None: the owner's READ of the event's
    data, on the event's project for project events."""
    if owner is None:
        return None
    resource = read_needed(event_type)
    project_id = subject if family_of(event_type) in PROJECT_FAMILIES else None
    if family_of(event_type) in PROJECT_FAMILIES and not project_id:
        return f"not sent: {event_type} names no project"
    if owner.decide(resource, READ, project_id).allowed:
        return None
    where = f" on project {project_id}" if project_id else ""
    return f"not sent: the webhook's owner may no longer read {event_type} ({resource}:{READ}{where})"


def visible_data(owner: Principal | None, data: Mapping[str, Any]) -> Mapping[str, Any]:
    """An event's ``data`` as its owner may read it: the client address only with the audit log's READ."""
    if owner is None or data.get("client_address") is None or owner.decide(CLIENT_ADDRESS_READ, READ).allowed:
        return data
    return {**data, "client_address": None}


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cloud_event(
    *,
    event_id: str,
    event_type: str,
    account_id: str,
    subject: str | None,
    time: datetime,
    data: Mapping[str, Any],
) -> bytes:
    """The body of one delivery: a CloudEvents 1.0 event in structured JSON mode. ``data`` is what the audit
    log holds (actor, source, address, target, details), never a secret."""
    event: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": f"/accounts/{account_id}",
        "type": event_type,
        "time": rfc3339(time),
        "datacontenttype": "application/json",
    }
    if subject is not None:
        event["subject"] = subject
    event["data"] = data
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256, keyed with the whole signing secret, of ``"<timestamp>.<body>"``."""
    return hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes, previous: str | None = None) -> str:
    """``t=<unix time>,v1=<signature>``: the value of ``Tokengate-Signature``. While a rotated-out secret still
    signs, its signature follows the new one's: ``t=…,v1=<new>,v1=<previous>`` (a receiver accepts any)."""
    header = f"t={timestamp},v1={signature(secret, timestamp, body)}"
    if previous is not None:
        header += f",v1={signature(previous, timestamp, body)}"
    return header


def verify_signature(
    header: str | None, secret: str, body: bytes, now: float, tolerance: int = SIGNATURE_TOLERANCE_SECONDS
) -> bool:
    """What a receiver checks: one ``v1`` signature of this body under the secret (several may be sent: any
    one matching is enough), made within ``tolerance`` seconds of ``now`` (an old signature replayed is
    refused). Anything malformed is False, never an exception: no ``t``, two ``t``, a ``t`` that is not a
    plain number, no ``v1``, a ``v1`` that is not 64 hex digits. The same rules as docs/webhooks.md's."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            if timestamp is not None or not _is_number(value):
                return False
            timestamp = int(value)
        elif name == "v1" and _is_hex_digest(value):
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


def _is_number(text: str) -> bool:
    return 0 < len(text) <= 12 and text.isascii() and text.isdigit()


def _is_hex_digest(text: str) -> bool:
    return len(text) == 64 and all(character in "0123456789abcdef" for character in text)


def new_signing_secret() -> str:
    return SIGNING_SECRET_PREFIX + tokens.random_base62(SIGNING_SECRET_LENGTH)


def _sealing_box(server_key: bytes) -> nacl.secret.SecretBox:
    """A box under a key derived from the server key, for this purpose only."""
    key = hashlib.blake2b(b"webhook signing secrets", key=server_key, digest_size=32, person=b"tokengate-whsec")
    return nacl.secret.SecretBox(key.digest())


def seal_secret(secret: str, server_key: bytes) -> tuple[bytes, str]:
    """The signing secret encrypted (with a random nonce) under the server key, and that key's id."""
    return bytes(_sealing_box(server_key).encrypt(secret.encode("utf-8"))), tokens.key_id(server_key)


def unseal_secret(sealed: bytes, key_id: str, server_keys: tuple[bytes, ...]) -> str | None:
    """The signing secret, when one of the configured server keys is the one it was sealed under."""
    for server_key in server_keys:
        if tokens.key_id(server_key) == key_id:
            try:
                return _sealing_box(server_key).decrypt(sealed).decode("utf-8")
            except (nacl.exceptions.CryptoError, UnicodeDecodeError):
                return None
    return None


def retry_delay(attempts: int, first_seconds: float, max_seconds: float, jitter: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling from ``first_seconds`` up to
    ``max_seconds``, spread by ``jitter`` (0 to 1: up to 20% less) so that receivers coming back are not
    hit by every sender at once."""
    delay: float = min(first_seconds * 2.0 ** min(max(attempts - 1, 0), 32), max_seconds)
    return delay * (1 - 0.2 * min(max(jitter, 0.0), 1.0))
