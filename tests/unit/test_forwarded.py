"""The client address behind trusted proxies (forwarded.py): ``X-Forwarded-For`` read from the right, the first
item not from a trusted proxy decides, and one that is not an address there refuses the request instead of
falling back to the proxy's own address. Pure: no HTTP (tests/api/test_forwarded_for.py has the doors)."""

from __future__ import annotations

import ipaddress

import pytest

from tokengate.core.forwarded import NotAnAddress, client_address, forwarded_item

PROXY = "10.0.0.2"
TRUSTED = [ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        # What the attack sent (a DENY on 203.0.113.0/24 passed): a malformed item LEFT of the deciding one
        # used to void the whole header, so the proxy's address decided. Only the deciding item counts now.
        ("x, 203.0.113.9", "203.0.113.9"),
        ("1.2.3.4:5, 203.0.113.9", "203.0.113.9"),
        (", 203.0.113.9", "203.0.113.9"),
        ("x,203.0.113.9", "203.0.113.9"),  # two header lines `x` and `203.0.113.9`, joined as the gate joins them
        ("<script>, 203.0.113.9, 10.0.0.7", "203.0.113.9"),  # trusted hops skipped, then the client decides
        ("[::1]:80, 2001:db8::5", "2001:db8::5"),
        ("[2001:db8::5]", "2001:db8::5"),  # a bracketed IPv6 address without a port is an address
        ("::ffff:203.0.113.9", "203.0.113.9"),  # IPv4-mapped: the IPv4 address the rules match
        ("\t203.0.113.9 ", "203.0.113.9"),
        ("10.0.0.9, 10.0.0.7", "10.0.0.9"),  # every hop trusted: the farthest
    ],
)
def test_the_first_untrusted_item_from_the_right_is_the_client(forwarded_for, expected):
    assert client_address(PROXY, forwarded_for, TRUSTED) == expected


@pytest.mark.parametrize(
    "forwarded_for",
    [
        "203.0.113.9, x",
        "203.0.113.9, ",  # an empty item where the client should be
        "203.0.113.9,",
        "",
        " ",
        ",,",
        "<script>",
        "1.2.3.4:5678",  # an address with a port is not an address
        "[::1]:8080",
        "2001:db8::1%eth0",  # a zone names an interface of the proxy, not a client
        "unknown",  # RFC 7239's unknown node
        "_hidden",
        "203.0.113.9, garbage, 10.0.0.7",  # the trusted hop is skipped: garbage decides
        "1" * 300 + ", x",  # longer than the cached walk takes: the same answer uncached
        "01.2.3.4",  # a leading zero is ambiguous (octal to some parsers): not an address
    ],
)
def test_an_item_that_is_not_an_address_where_the_client_should_be_is_refused(forwarded_for):
    with pytest.raises(NotAnAddress, match="X-Forwarded-For"):
        client_address(PROXY, forwarded_for, TRUSTED)
    with pytest.raises(NotAnAddress):  # again: the cached walk answers the same
        client_address(PROXY, forwarded_for, TRUSTED)


@pytest.mark.parametrize("forwarded_for", ["x", "203.0.113.9, x", "", "1.2.3.4:5"])
def test_from_a_peer_that_is_not_a_trusted_proxy_the_header_is_not_read_at_all(forwarded_for):
    assert client_address("198.51.100.1", forwarded_for, TRUSTED) == "198.51.100.1"
    assert client_address(PROXY, forwarded_for, []) == PROXY


def test_items_are_addresses_only():
    assert forwarded_item(" 203.0.113.9 ") == ipaddress.ip_address("203.0.113.9")
    assert forwarded_item("[2001:db8::1]") == ipaddress.ip_address("2001:db8::1")
    for text in ["", "[]", "[1.2.3.4]:5", "1.2.3.4:5", "fe80::1%1", "example.com", "1.2.3"]:
        assert forwarded_item(text) is None, text
