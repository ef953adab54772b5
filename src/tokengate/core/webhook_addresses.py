"""Where webhooks may be sent: the URL rule and the address rule against SSRF. Pure, no I/O.

A webhook URL is https (plain http only where the operator allows private networks), without credentials in
it, to a host that is not an address of this machine or its networks. The address rule is checked twice: on
the URL when a webhook is saved (an IP literal in any of the forms resolvers accept, or a ``localhost`` name),
and on every address the sender connects to, after DNS (webhook_delivery.py), so a name that resolves, or is
later re-pointed, to a private address is refused as well.

IPv4 literals are read as ``inet_aton`` and the WHATWG URL parser read them: one to four parts, each decimal,
octal (``0177``) or hexadecimal (``0x7f``), the last filling the bytes left (``127.1``, ``2130706433``), with
or without a trailing dot. A host whose last label is a number but which is no address in any form is
refused too: no DNS name ends in a numeric label, and resolvers disagree on what such a host means.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Final
from urllib.parse import urlsplit

from tokengate.core.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH: Final = 2048

# Special-purpose ranges (IANA registries) that are never a public receiver, listed so the rule does not
# depend on which ranges a Python version's ``is_global`` knows; anything not global is refused as well.
_REFUSED_NETWORKS: Final = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
        "::/128",
        "::1/128",
        "::ffff:0:0/96",  # IPv4-mapped: checked as the IPv4 address too
        "64:ff9b::/96",  # NAT64: reaches the embedded IPv4 address
        "64:ff9b:1::/48",
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments (Teredo included)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: reaches the embedded IPv4 address
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)


_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress | str) -> str | None:
    """Why a webhook may not be sent to this address (loopback, private, link-local, ...), or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and address_refusal(embedded) is not None:
            return f"{ip} carries the IPv4 address {embedded}, which is not public"
    if any(ip.version == network.version and ip in network for network in _REFUSED_NETWORKS) or not ip.is_global:
        return f"{ip} is a loopback, private, link-local, multicast or reserved address"
    return None


def _is_local_name(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


_NUMBER: Final = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
# Full stops other than "." that IDNA (and so the HTTP client) maps to one.
_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def _number(part: str) -> int | None:
    """One part of an IPv4 literal as inet_aton reads it: 0x hexadecimal, 0 octal, else decimal."""
    if not _NUMBER.fullmatch(part):
        return None
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        return int(part, 8) if all(digit in "01234567" for digit in part) else None
    return int(part)


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host written in any numeric form means (``0x7f.1``, ``0177.0.0.1``, ``127.1``,
    ``2130706433``, ``127.0.0.1.``), as resolvers and URL parsers read it; None when it is not one."""
    name = host[:-1] if host.endswith(".") else host
    parts = name.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_number(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    *leading, last = [number for number in numbers if number is not None]
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _host_literal(host: str) -> IPAddress | None:
    """The address a URL's host names without DNS (an IPv6 literal, or IPv4 in any numeric form), or None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return numeric_ipv4(host)


def _ends_in_number(host: str) -> bool:
    labels = [label for label in host.split(".") if label]
    return bool(labels) and _NUMBER.fullmatch(labels[-1]) is not None


def checked_webhook_url(url: str, allow_private: bool = False) -> str:
    """The URL a webhook is sent to, or ``InvalidInput`` saying what is wrong with it.

    https only, unless ``allow_private`` (the operator's ``TOKENGATE_WEBHOOK_ALLOW_PRIVATE``), which also lets
    plain http and private or loopback hosts through (receivers on the operator's own network, and tests).
    """
    text = url.strip()
    if not text or len(text) > MAX_URL_LENGTH:
        raise InvalidInput(f"url must be 1 to {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidInput("url is not a valid URL") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme.lower() not in schemes:
        raise InvalidInput("url must be an https URL" + ("" if allow_private else " (http is not allowed)"))
    host = parts.hostname
    if not host:
        raise InvalidInput("url must name a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("url must not carry credentials: the signature authenticates tokengate")
    if port == 0:
        raise InvalidInput("url has no usable port")
    if parts.fragment:
        raise InvalidInput("url must not have a #fragment")
    if any(ord(character) < 33 or ord(character) == 127 for character in text):
        raise InvalidInput("url must not contain spaces or control characters")
    if not allow_private:
        # As the HTTP client will see it: full-width digits and other compatibility forms folded (IDNA does).
        host = unicodedata.normalize("NFKC", host).translate(_DOTS).lower()
        if _is_local_name(host):
            raise InvalidInput("url must not point to this machine (localhost)")
        literal = _host_literal(host)
        if literal is None and _ends_in_number(host):
            raise InvalidInput("url host ends in a number but is not an IP address in any form")
        refusal = address_refusal(literal) if literal is not None else None
        if refusal is not None:
            raise InvalidInput(f"url must point to a public address: {refusal}")
    return text


def origin(url: str) -> str:
    """scheme://host[:port] of a webhook URL: what logs and the audit log show (a path may hold a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port is not None else "")
