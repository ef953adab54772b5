"""The client's address of an HTTP request: the socket peer, or ``X-Forwarded-For`` behind a trusted proxy.

Behind a trusted proxy the header is read from the right (every line joined as one list, in order): each hop a
trusted proxy added is skipped, and the first item not from a trusted proxy is the client. Only that item
matters: a proxy such as nginx (``$proxy_add_x_forwarded_for``) appends to what the client sent, so everything
to its left is the client's own text. When that deciding item is not an address (empty, a name, an address
with a port such as ``1.2.3.4:5`` or ``[::1]:80``, an IPv6 zone, anything else) the request is refused
(``NotAnAddress``): falling back to the proxy's own address would let a client pick the address its IP
rules, audit lines and rate limits see. A bare IPv6 address, bracketed or not (``[2001:db8::1]``), is an
address; an IPv4-mapped IPv6 address is its IPv4 address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from tokengate.core.ip_rules import IPAddress, IPNetwork, parse_address

MAX_CACHED_FORWARDED_FOR = 256  # longer headers are rare and would only churn the cache


class NotAnAddress(ValueError):
    """The ``X-Forwarded-For`` item that decides the client address is not an IP address (the request is a 400)."""

    MESSAGE = (
        "X-Forwarded-For: the client's entry (the right-most one not added by a trusted proxy) is not an IP "
        "address; send addresses only, without ports"
    )

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


@dataclass(frozen=True, slots=True)
class _Malformed:
    """What the cached walk answers for a deciding item that is not an address (an exception is not cached)."""


_MALFORMED = _Malformed()


@lru_cache(maxsize=4096)
def _is_trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> str | None:
    """The client's address: the socket peer, or from ``X-Forwarded-For`` when the peer is a trusted proxy.

    The header is read right to left, skipping trusted proxies; the first untrusted item is the client, and
    ``NotAnAddress`` when that item is not an address. All items trusted: the left-most one.
    """
    if peer is None:
        return None
    networks = tuple(trusted)
    if forwarded_for is None or len(forwarded_for) <= MAX_CACHED_FORWARDED_FOR:
        found = _cached_client_address(peer, forwarded_for, networks)
    else:
        found = _client_address(peer, forwarded_for, networks)
    if isinstance(found, _Malformed):
        raise NotAnAddress()
    return found


def forwarded_item(text: str) -> IPAddress | None:
    """One ``X-Forwarded-For`` item as an address: a bare IPv4 or IPv6 address, an IPv6 one possibly in
    brackets; None for anything else (an empty item, a port, a zone, a name, an ``unknown`` or obfuscated
    node)."""
    item = text.strip()
    if item.startswith("[") and item.endswith("]"):
        item = item[1:-1]
    if not item or "%" in item:  # a zone (fe80::1%eth0) names an interface of the proxy's, not a client
        return None
    return parse_address(item)


def _client_address(peer: str, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]) -> str | _Malformed:
    peer_address = parse_address(peer)
    if peer_address is None:
        return peer
    if forwarded_for is None or not _is_trusted(peer_address, trusted):
        return str(peer_address)
    items = forwarded_for.split(",")
    for text in reversed(items):
        hop = forwarded_item(text)
        if hop is None:
            return _MALFORMED  # the deciding item: never the proxy's own address instead
        if not _is_trusted(hop, trusted):
            return str(hop)
    return str(forwarded_item(items[0]))  # every hop a trusted proxy: the farthest one


_cached_client_address = lru_cache(maxsize=4096)(_client_address)
