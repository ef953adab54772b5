"""The client's address of an HTTP request: the socket peer, or ``X-Forwarded-For`` behind a trusted proxy."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from tokengate.ip_rules import IPAddress, IPNetwork, parse_address

MAX_CACHED_FORWARDED_FOR = 256  # longer headers are rare and would only churn the cache


@lru_cache(maxsize=4096)
def _is_trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> str | None:
    """The client's address: the socket peer, or from ``X-Forwarded-For`` when the peer is a trusted proxy.

    The header is read right to left, skipping trusted proxies; the first untrusted hop is the client.
    A header with any malformed entry is ignored (the peer is used), never an error.
    """
    if peer is None:
        return None
    networks = tuple(trusted)
    if forwarded_for is None or len(forwarded_for) <= MAX_CACHED_FORWARDED_FOR:
        return _cached_client_address(peer, forwarded_for, networks)
    return _client_address(peer, forwarded_for, networks)


def _client_address(peer: str, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]) -> str:
    peer_address = parse_address(peer)
    if peer_address is None:
        return peer
    if not forwarded_for or not _is_trusted(peer_address, trusted):
        return str(peer_address)
    hops = [parse_address(hop) for hop in forwarded_for.split(",")]
    if not hops or any(hop is None for hop in hops):
        return str(peer_address)
    for hop in reversed(hops):
        assert hop is not None
        if not _is_trusted(hop, trusted):
            return str(hop)
    return str(hops[0])


_cached_client_address = lru_cache(maxsize=4096)(_client_address)
