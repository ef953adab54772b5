"""Shape rules for values clients give (names, e-mail addresses) and how much of a refused value is echoed.

Pure: the API and the command line call the same functions, so a value refused by one is refused by the other
with the same message.
"""

from __future__ import annotations

from typing import Final

from tokengate.core.errors import InvalidInput

MAX_NAME_LENGTH: Final = 255
MAX_EMAIL_LENGTH: Final = 320
MAX_ECHO: Final = 64  # characters of a refused value repeated in a message


def shown(text: str) -> str:
    """A client's value for an error message, cut short so a huge input is not echoed whole."""
    return text if len(text) <= MAX_ECHO else text[:MAX_ECHO] + "..."


def checked_name(value: str, what: str = "name") -> str:
    """The name with surrounding spaces trimmed; names are 1 to 255 characters."""
    value = value.strip()
    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidInput(f"{what} must be 1 to {MAX_NAME_LENGTH} characters")
    return value


def checked_email(value: str, what: str = "email") -> str:
    """An address such as someone@example.com: an @, a dot in the domain, no spaces, at most 320 characters."""
    email = value.strip()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > MAX_EMAIL_LENGTH or any(c.isspace() for c in email):
        raise InvalidInput(f"{what} must be an address such as someone@example.com")
    return email
