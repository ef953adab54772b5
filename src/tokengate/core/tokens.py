"""Token format, parsing and hashing. Pure: no database, no network.

v2 token: ``tgs_`` (service), ``tgu_`` (user) or ``tgx_`` (exchanged for a workload's OIDC token under a trust
policy, docs/keyless-ci.md) + 16-character base62 id + 32-character base62 secret
+ 6-character base62 CRC32 of everything before it (58 characters in all).
Legacy token (created on or before 2023-07-18): 40 lowercase hex characters.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final, Literal

import nacl.exceptions
import nacl.pwhash
import nacl.utils

BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SERVICE_PREFIX: Final = "tgs_"
USER_PREFIX: Final = "tgu_"
EXCHANGED_PREFIX: Final = "tgx_"
PREFIXES: Final = {"service": SERVICE_PREFIX, "user": USER_PREFIX, "exchanged": EXCHANGED_PREFIX}
KIND_OF_LETTER: Final = {"s": "service", "u": "user", "x": "exchanged"}
# A SCIM token (docs/scim.md): the same shape and checksum, its own prefix. ``parse_token`` refuses it (unknown
# prefix), so no door but /scim/v2 (``parse_scim_token``) ever looks one up.
SCIM_PREFIX: Final = "tgp_"
ID_LENGTH: Final = 16
SECRET_LENGTH: Final = 32
CHECKSUM_LENGTH: Final = 6
TOKEN_LENGTH: Final = len(SERVICE_PREFIX) + ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH
LEGACY_LENGTH: Final = 40
LEGACY_HINT_LENGTH: Final = 8
HASH_SIZE: Final = 32
# Tokens created on or before this day use the legacy format and validate slowly.
LEGACY_CUTOFF: Final = datetime(2023, 7, 19, tzinfo=UTC)

TokenKind = Literal["service", "user", "exchanged"]

_V2_SHAPE: Final = re.compile(r"tg[sux]_[0-9A-Za-z]{54}")
_SCIM_SHAPE: Final = re.compile(r"tgp_[0-9A-Za-z]{54}")
_LEGACY_SHAPE: Final = re.compile(r"[0-9a-f]{40}")
_HEX: Final = "0123456789abcdef"


class MalformedToken(ValueError):
    """The text cannot be a token; raised before any I/O. The message never contains the text."""


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token that passed the offline checks. ``lookup`` finds its row: the id (v2) or the hint (legacy)."""

    text: str
    format: Literal["v2", "legacy"]
    kind: TokenKind | None  # None for legacy tokens: the stored row says which
    lookup: str

    def __repr__(self) -> str:  # never print the secret
        return f"ParsedToken(format={self.format!r}, kind={self.kind!r}, lookup={self.lookup!r})"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: str
    text: str

    def __repr__(self) -> str:
        return f"IssuedToken(id={self.id!r})"


def random_base62(length: int) -> str:
    """Uniform base62 text from the system CSPRNG (rejection sampling, no modulo bias)."""
    out: list[str] = []
    while len(out) < length:
        for byte in nacl.utils.random(length * 2):
            if byte < 248:  # 248 = 4 * 62
                out.append(BASE62[byte % 62])
                if len(out) == length:
                    break
    return "".join(out)


def base62_fixed(number: int, width: int) -> str:
    """``number`` in base62, most significant digit first, left-padded with ``0`` to ``width``."""
    digits: list[str] = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(BASE62[rest])
    return "".join(reversed(digits)).rjust(width, "0")


# Two base62 digits at a time: the checksum is on every request's path.
_PAIRS: Final = tuple(a + b for a in BASE62 for b in BASE62)


def checksum(body: str) -> str:
    """CRC32 of ``body`` in six base62 digits (the same digits as ``base62_fixed(crc, 6)``)."""
    high, low = divmod(zlib.crc32(body.encode("ascii")), 3844 * 3844)
    middle, low = divmod(low, 3844)
    return _PAIRS[high] + _PAIRS[middle] + _PAIRS[low]


def new_id(prefix: str) -> str:
    """An opaque identifier such as ``prj_3fQ…`` for accounts, users and projects."""
    return f"{prefix}_{random_base62(ID_LENGTH)}"


def issue_token(kind: TokenKind) -> IssuedToken:
    """A fresh v2 token: its id (the row key) and the full text (shown once)."""
    token_id = random_base62(ID_LENGTH)
    body = PREFIXES[kind] + token_id + random_base62(SECRET_LENGTH)
    return IssuedToken(id=token_id, text=body + checksum(body))


def issue_scim_token() -> IssuedToken:
    """A fresh SCIM token: ``tgp_`` + id + secret + checksum, as ``issue_token`` makes the others."""
    token_id = random_base62(ID_LENGTH)
    body = SCIM_PREFIX + token_id + random_base62(SECRET_LENGTH)
    return IssuedToken(id=token_id, text=body + checksum(body))


def parse_scim_token(text: str) -> str:
    """The id of a well-formed SCIM token (prefix, length, alphabet, checksum), without I/O; ``MalformedToken``
    otherwise (a service or personal token included: it is not a SCIM token)."""
    if len(text) != TOKEN_LENGTH or not _SCIM_SHAPE.fullmatch(text):
        raise MalformedToken("not a SCIM token")
    if not hmac.compare_digest(checksum(text[:-CHECKSUM_LENGTH]), text[-CHECKSUM_LENGTH:]):
        raise MalformedToken("token checksum does not match")
    return text[4 : 4 + ID_LENGTH]


def parse_token(text: str) -> ParsedToken:
    """Check prefix, length, alphabet and checksum without I/O; raise ``MalformedToken`` otherwise."""
    if len(text) == TOKEN_LENGTH and _V2_SHAPE.fullmatch(text):
        body = text[:-CHECKSUM_LENGTH]
        if not hmac.compare_digest(checksum(body), text[-CHECKSUM_LENGTH:]):
            raise MalformedToken("token checksum does not match")
        kind: TokenKind = KIND_OF_LETTER[text[2]]  # type: ignore[assignment]
        return ParsedToken(text=text, format="v2", kind=kind, lookup=text[4 : 4 + ID_LENGTH])
    if len(text) == LEGACY_LENGTH and _LEGACY_SHAPE.fullmatch(text):
        return ParsedToken(text=text, format="legacy", kind=None, lookup=text[:LEGACY_HINT_LENGTH])
    if not text:
        raise MalformedToken("token is empty")
    if text.startswith((SERVICE_PREFIX, USER_PREFIX, EXCHANGED_PREFIX)):
        raise MalformedToken("token has the wrong length or characters")
    raise MalformedToken("token has an unknown prefix")


def display_prefix(text: str) -> str:
    """The non-secret start of a token, as shown in lists: ``tgs_AbC1…``."""
    if text.startswith((SERVICE_PREFIX, USER_PREFIX, EXCHANGED_PREFIX, SCIM_PREFIX)):
        return text[:8] + "…"
    return text[:4] + "…"


def display_prefix_for(kind: TokenKind, format_: str, lookup: str) -> str:
    """The display prefix rebuilt from stored, non-secret columns."""
    if format_ == "legacy":
        return lookup[:4] + "…"
    return PREFIXES[kind] + lookup[:4] + "…"


@lru_cache(maxsize=16)
def _keyed(key: bytes) -> hashlib.blake2b:
    # The keyed state after absorbing the key block; copying it is half the cost of keying anew.
    return hashlib.blake2b(key=key, digest_size=HASH_SIZE)


def hash_token(text: str, key: bytes) -> bytes:
    """Keyed BLAKE2b of a v2 token: what the database stores instead of the token."""
    state = _keyed(key).copy()
    state.update(text.encode("ascii"))
    return state.digest()


def hash_matches(text: str, stored: bytes, keys: tuple[bytes, ...]) -> bool:
    """Constant-time check of ``text`` against a stored hash under any of the server keys."""
    return any(hmac.compare_digest(hash_token(text, key), stored) for key in keys)


def key_id(key: bytes) -> str:
    """A short public fingerprint of a derived server key (8 hex characters), stored with each v2 hash so
    an operator can see which key hashed which tokens. One-way and 32 bits: it reveals nothing of the key."""
    return hashlib.blake2b(key, digest_size=4, person=b"tokengate-kid").hexdigest()


def derive_key(material: str) -> bytes:
    """A 32-byte BLAKE2b key from configured key text (any length of at least 32 characters)."""
    return hashlib.blake2b(material.encode("utf-8"), digest_size=32, person=b"tokengate-key").digest()


def new_legacy_secret() -> str:
    """40 lowercase hex characters, the pre-2023-07-18 format."""
    return "".join(_HEX[b & 15] for b in nacl.utils.random(LEGACY_LENGTH))


def hash_legacy(text: str) -> bytes:
    """argon2id at interactive limits: deliberately slow, as legacy validation was."""
    return nacl.pwhash.argon2id.str(
        text.encode("ascii"),
        opslimit=nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
        memlimit=nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
    )


def legacy_matches(text: str, stored: bytes) -> bool:
    try:
        return bool(nacl.pwhash.argon2id.verify(stored, text.encode("ascii")))
    except nacl.exceptions.InvalidkeyError:
        return False


def rotation_recommended(created_at: datetime) -> bool:
    """Tokens created on or before 2023-07-18 should be rotated into the faster format."""
    return created_at < LEGACY_CUTOFF


TokenState = Literal["ACTIVE", "EXPIRED", "DELETED"]


def token_state(stored_state: str, expires_at: datetime | None, now: datetime) -> TokenState:
    """The one rule of "usable": a token is ACTIVE unless deleted or past its expiry (store/tokens.py's
    USABLE is the same rule in SQL).

    One clock: ``now`` is the application's (``datetime.now(UTC)``), and so is every expiry the application sets
    (a new token's, and the end of a rotated token's window, ``store.tokens.expire_by``): the database's clock
    never decides whether a token authenticates."""
    if stored_state == "deleted":
        return "DELETED"
    if expires_at is not None and expires_at <= now:
        return "EXPIRED"
    return "ACTIVE"


# While the database cannot be reached, how long after its validation a cached principal keeps serving
# (TOKENGATE_STALE_PRINCIPAL_SECONDS).
STALE_PRINCIPAL_SECONDS: Final = 300.0


def may_serve_cached(expires_at: datetime | None, now: datetime, age_seconds: float, max_age_seconds: float) -> bool:
    """The one rule for answering with a principal held in memory, on every path that does (the remembered
    text, the cache by id, the rate limits' look before a body is read, the fallback while the database is
    down): its token has not expired at ``now`` (the application's clock; ``expires_at`` is the token's expiry,
    or the end of its rotation window, which rotation writes there), and it was validated against the database
    at most ``max_age_seconds`` ago (``age_seconds``): the cache's lifetime while invalidations are heard, the
    stale bound (``STALE_PRINCIPAL_SECONDS``) while the database is unreachable."""
    return age_seconds <= max_age_seconds and token_state("active", expires_at, now) == "ACTIVE"
