"""Opaque cursors over a numbered sequence, newest first, in the audit log's style: base64 of ``<kind>:<id>``."""

from __future__ import annotations

import base64
import binascii
from typing import Final

from tokengate.core.errors import InvalidInput

NEWEST: Final = 2**63 - 1  # larger than any bigint identity: the first page starts below it


def encode_cursor(kind: str, number: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{number}".encode("ascii")).decode("ascii")


def decode_cursor(kind: str, cursor: str, refusal: str) -> int:
    """The number inside a cursor of this kind; anything else is BAD_USER_INPUT with ``refusal``."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    prefix = f"{kind}:"
    number = text.removeprefix(prefix)
    if not text.startswith(prefix) or not number.isdigit() or not 0 < int(number) < NEWEST:
        raise InvalidInput(refusal)
    return int(number)
