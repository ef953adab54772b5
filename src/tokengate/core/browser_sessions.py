"""Browser sessions' rules that need no I/O: the cookie, the CSRF defence, the passkeys' relying party. Pure.

A session travels in a ``__Host-`` cookie (``Secure``, ``HttpOnly``, ``Path=/``, no ``Domain``; browsers keep
``Secure`` cookies on ``http://localhost`` too), ``SameSite=Strict``: no sign-in here comes back through another
site's redirect. GraphQL takes a session only from the pages' own origin: the request must carry the pages'
custom header (``X-Tokengate-CSRF: 1``: another origin cannot add it without a CORS preflight, which tokengate
never grants with credentials) and, when the browser says where it comes from (``Sec-Fetch-Site``, ``Origin``),
come from this origin.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from tokengate.core import tokens

COOKIE: Final = "__Host-tokengate_session"
SESSION_PREFIX: Final = "session"  # a session principal's display prefix (its token_id is the session's id)
CSRF_HEADER: Final = "X-Tokengate-CSRF"
CSRF_VALUE: Final = "1"
SESSION_SECRET_BYTES: Final = 32  # a cookie's or an invitation link's value: 256 random bits, base64url
SECRET_TEXT: Final = re.compile(r"[A-Za-z0-9_-]{20,100}")


def new_secret() -> str:
    """A session cookie's or an invitation link's value (shown once; stored as its keyed hash)."""
    return secrets.token_urlsafe(SESSION_SECRET_BYTES)


def secret_hashes(keys: tuple[bytes, ...], secret: str) -> list[bytes] | None:
    """The keyed hashes of such a secret under every server key (newest first: rotating the key signs nobody
    out); None when the text cannot be one of ours."""
    if not SECRET_TEXT.fullmatch(secret):
        return None
    return [tokens.hash_token(secret, key) for key in keys]


def cookie_attributes(max_age_seconds: float) -> dict[str, object]:
    """What ``set_cookie`` is given for the session cookie (the ``__Host-`` prefix's rules)."""
    return {
        "secure": True,
        "httponly": True,
        "path": "/",
        "samesite": "Strict",
        "max_age": int(max_age_seconds),
    }


def csrf_refusal(
    csrf_header: str | None, sec_fetch_site: str | None, origin: str | None, host: str | None
) -> str | None:
    """Why a request carried by a session cookie is refused (None: it comes from the pages themselves)."""
    if csrf_header != CSRF_VALUE:
        return (
            f"a request signed in by the session cookie must send the {CSRF_HEADER}: {CSRF_VALUE} header "
            "(the settings pages do); scripts and tools use a bearer token instead"
        )
    if sec_fetch_site is not None and sec_fetch_site.strip().lower() != "same-origin":
        return "a request signed in by the session cookie must come from the tokengate pages' own origin"
    if origin is not None and not same_host(origin, host):
        return "a request signed in by the session cookie must come from the tokengate pages' own origin"
    return None


def same_host(origin: str, host: str | None) -> bool:
    """Whether an ``Origin`` names the host (and port) this request was sent to."""
    if host is None or origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()


class NotAHostName(ValueError):
    MESSAGE = (
        "passkeys need the pages to be opened at a host name, not an IP address "
        "(for development: http://localhost:PORT)"
    )


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who passkeys are registered with: the pages' host name (``id``) and the origins they may come from."""

    id: str
    origins: tuple[str, ...]


def relying_party(public_url: str | None, host: str | None) -> RelyingParty:
    """The relying party of the configured public URL, else of the request's ``Host`` (its http and https
    origins: browsers run WebAuthn only in a secure context, that is https or localhost). ``NotAHostName``
    for an IP address or no host."""
    if public_url is not None:
        parts = urlsplit(public_url)
        name = parts.hostname or ""
        origins: tuple[str, ...] = (public_url,)
    else:
        if not host:
            raise NotAHostName(NotAHostName.MESSAGE)
        parts = urlsplit("//" + host)
        name = parts.hostname or ""
        origins = (f"https://{host}", f"http://{host}")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        if name:
            return RelyingParty(name, origins)
    raise NotAHostName(NotAHostName.MESSAGE)
