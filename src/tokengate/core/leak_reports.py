"""GitHub's secret-scanning partner reports: their keys, their signature, their body, our answer. Pure, no I/O.

GitHub POSTs a JSON list of matches (``token``, ``type``, ``url``, ``source``) signed with ECDSA P-256 over
SHA-256 of the raw body: ``Github-Public-Key-Signature`` (base64 DER), made with the key named by
``Github-Public-Key-Identifier``. The keys are published in a ``public_keys`` JSON document, which the
operator saves to the file ``TOKENGATE_GITHUB_SCANNING_KEYS`` names. The answer is GitHub's feedback list:
``token_hash`` (hex SHA-256 of the token), ``token_type`` and ``label`` (``true_positive``/``false_positive``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

KEY_ID_HEADER: Final = "Github-Public-Key-Identifier"
SIGNATURE_HEADER: Final = "Github-Public-Key-Signature"
MAX_REPORT_BYTES: Final = 512 * 1024
MAX_MATCHES: Final = 1000  # tokens in one report
MAX_FIELD_LENGTH: Final = 2048  # characters of a type or url we keep
TRUE_POSITIVE: Final = "true_positive"
FALSE_POSITIVE: Final = "false_positive"

PublicKeys = Mapping[str, ec.EllipticCurvePublicKey]


class KeysProblem(ValueError):
    """The keys document cannot be used; the message says why (it holds public keys only)."""


class ReportProblem(ValueError):
    """A signed report whose body is not GitHub's list of matches."""


def load_public_keys(document: str) -> dict[str, ec.EllipticCurvePublicKey]:
    """The P-256 keys of a ``{"public_keys": [{"key_identifier", "key", "is_current"}]}`` document by id."""
    try:
        parsed = json.loads(document)
    except ValueError:
        raise KeysProblem("not JSON") from None
    entries = parsed.get("public_keys") if isinstance(parsed, dict) else None
    if not isinstance(entries, list) or not entries:
        raise KeysProblem('expected {"public_keys": [{"key_identifier": ..., "key": ...}]}')
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for entry in entries:
        identifier = entry.get("key_identifier") if isinstance(entry, dict) else None
        pem = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or not identifier or not isinstance(pem, str):
            raise KeysProblem("every public key needs a key_identifier and a PEM key")
        try:
            key = load_pem_public_key(pem.encode("ascii"))
        except (ValueError, UnicodeError, UnsupportedAlgorithm):
            raise KeysProblem(f"key {identifier[:16]}: not a PEM public key") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise KeysProblem(f"key {identifier[:16]}: not an ECDSA P-256 key")
        keys[identifier] = key
    return keys


def signature_valid(keys: PublicKeys, key_id: str | None, signature_b64: str | None, body: bytes) -> bool:
    """Whether the named key signed exactly these bytes (the raw body, never re-serialised)."""
    if not key_id or not signature_b64:
        return False
    key = keys.get(key_id.strip())
    if key is None:
        return False
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Match:
    """One token GitHub found: its text, the type GitHub gave it, and where it was seen."""

    token: str
    type: str
    url: str | None

    def __repr__(self) -> str:  # never print the token
        return f"Match(type={self.type!r}, url={self.url!r})"


def _text(value: Any) -> str | None:
    return value[:MAX_FIELD_LENGTH] if isinstance(value, str) else None


def parse_report(body: bytes) -> list[Match]:
    """The matches of a report body, or ``ReportProblem``; at most ``MAX_MATCHES`` of them."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        raise ReportProblem("the body must be a JSON list of matches") from None
    if not isinstance(parsed, list):
        raise ReportProblem("the body must be a JSON list of matches")
    if len(parsed) > MAX_MATCHES:
        raise ReportProblem(f"at most {MAX_MATCHES} matches in one report")
    matches = []
    for entry in parsed:
        token = entry.get("token") if isinstance(entry, dict) else None
        if not isinstance(token, str) or not token or len(token) > MAX_FIELD_LENGTH:
            raise ReportProblem("every match needs a token")
        matches.append(Match(token, _text(entry.get("type")) or "", _text(entry.get("url"))))
    return matches


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def feedback(match: Match, true_positive: bool) -> dict[str, str]:
    """GitHub's feedback entry for one match (the token itself is never echoed, only its hash)."""
    return {
        "token_hash": token_hash(match.token),
        "token_type": match.type,
        "label": TRUE_POSITIVE if true_positive else FALSE_POSITIVE,
    }
