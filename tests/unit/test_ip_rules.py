"""IP rule evaluation and the client address, table-driven. Pure: no database, no HTTP."""

from __future__ import annotations

import ipaddress

import pytest

from tokengate.core.forwarded import client_address
from tokengate.core.ip_rules import IpPolicy, IpRule, IpRuleProblem, check_ip_rules, parse_cidr


def rule(name: str, type_: str, *cidrs: str) -> IpRule:
    return IpRule(name, type_, tuple(ipaddress.ip_network(cidr) for cidr in cidrs))


DENY_24_ALLOW_25 = [rule("office", "DENY", "10.1.2.0/24"), rule("office-vpn", "ALLOW", "10.1.2.0/25")]
ALLOW_24_DENY_25 = [rule("office", "ALLOW", "10.1.2.0/24"), rule("guests", "DENY", "10.1.2.128/25")]
ALLOW_ONLY = [rule("office", "ALLOW", "203.0.113.0/24", "198.51.100.7/32")]
DENY_ONLY = [rule("bad", "DENY", "192.0.2.0/24")]
IPV6 = [
    rule("v6-office", "ALLOW", "2001:db8::/32"),
    rule("v6-lab", "DENY", "2001:db8:dead::/48"),
    rule("v4-office", "ALLOW", "203.0.113.0/24"),
]
SAME_NETWORK_BOTH_WAYS = [rule("a", "ALLOW", "10.0.0.0/8"), rule("d", "DENY", "10.0.0.0/8")]
NESTED = [
    rule("all", "ALLOW", "0.0.0.0/0"),
    rule("corp", "DENY", "10.0.0.0/8"),
    rule("team", "ALLOW", "10.20.0.0/16"),
    rule("host", "DENY", "10.20.30.40/32"),
]

CASES = [
    # (rules, address, allowed, deciding rule or None)
    (DENY_24_ALLOW_25, "10.1.2.5", True, "office-vpn"),  # allow /25 inside deny /24
    (DENY_24_ALLOW_25, "10.1.2.200", False, "office"),
    (DENY_24_ALLOW_25, "10.1.3.1", False, None),  # unmatched, an ALLOW rule exists
    (ALLOW_24_DENY_25, "10.1.2.5", True, "office"),  # deny /25 inside allow /24
    (ALLOW_24_DENY_25, "10.1.2.129", False, "guests"),
    (ALLOW_24_DENY_25, "192.168.0.1", False, None),
    (ALLOW_ONLY, "203.0.113.77", True, "office"),
    (ALLOW_ONLY, "198.51.100.7", True, "office"),
    (ALLOW_ONLY, "198.51.100.8", False, None),  # unmatched with ALLOW rules: refused
    (DENY_ONLY, "192.0.2.10", False, "bad"),
    (DENY_ONLY, "8.8.8.8", True, None),  # unmatched without ALLOW rules: let through
    (DENY_ONLY, "2001:db8::1", True, None),
    (IPV6, "2001:db8:1::5", True, "v6-office"),
    (IPV6, "2001:db8:dead:beef::1", False, "v6-lab"),
    (IPV6, "2001:db9::1", False, None),
    (IPV6, "203.0.113.9", True, "v4-office"),  # families never mix
    (IPV6, "::ffff:203.0.113.9", True, "v4-office"),  # IPv4 seen through an IPv6 socket
    (SAME_NETWORK_BOTH_WAYS, "10.9.9.9", False, "d"),  # equally specific: DENY wins
    (NESTED, "8.8.8.8", True, "all"),
    (NESTED, "10.1.1.1", False, "corp"),
    (NESTED, "10.20.1.1", True, "team"),
    (NESTED, "10.20.30.40", False, "host"),
    (NESTED, "10.20.30.41", True, "team"),
    ([], "10.0.0.1", True, None),  # no rules at all
    (ALLOW_ONLY, None, False, None),  # unknown address matches nothing
    (DENY_ONLY, "not-an-address", True, None),
]


@pytest.mark.parametrize(("rules", "address", "allowed", "decided_by"), CASES)
def test_most_specific_matching_network_decides(rules, address, allowed, decided_by):
    policy = IpPolicy(rules)
    assert policy.allows(address) is allowed
    found = policy.match(address)
    assert (found.rule if found else None) == decided_by


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [
        ("203.0.113.9", None, [], "203.0.113.9"),  # no header: the peer
        ("203.0.113.9", "198.51.100.1", [], "203.0.113.9"),  # untrusted peer: header ignored
        ("203.0.113.9", "198.51.100.1", ["10.0.0.0/8"], "203.0.113.9"),  # peer not in the trusted list
        ("10.0.0.2", "198.51.100.1", ["10.0.0.0/8"], "198.51.100.1"),  # trusted peer: header believed
        ("10.0.0.2", "198.51.100.1, 10.0.0.7", ["10.0.0.0/8"], "198.51.100.1"),  # skip trusted hops
        ("10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.7", ["10.0.0.0/8"], "198.51.100.1"),  # right-most untrusted
        ("10.0.0.2", "10.0.0.9, 10.0.0.7", ["10.0.0.0/8"], "10.0.0.9"),  # all trusted: the left-most
        ("10.0.0.2", " 2001:db8::1 ,10.0.0.7", ["10.0.0.0/8"], "2001:db8::1"),  # IPv6 and spaces
        ("10.0.0.2", "garbage, 198.51.100.1", ["10.0.0.0/8"], "198.51.100.1"),  # left of the client: no matter
        ("::ffff:10.0.0.2", "198.51.100.1", ["10.0.0.0/8"], "198.51.100.1"),  # mapped peer is IPv4
        ("::1", "198.51.100.1", ["::1/128"], "198.51.100.1"),
        (None, "198.51.100.1", ["0.0.0.0/0"], None),  # no socket peer
    ],
)
def test_client_address(peer, forwarded_for, trusted, expected):
    networks = [ipaddress.ip_network(cidr) for cidr in trusted]
    assert client_address(peer, forwarded_for, networks) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.0/8", "10.0.0.0/8"),
        (" 10.0.0.0/8 ", "10.0.0.0/8"),
        ("198.51.100.7", "198.51.100.7/32"),  # a bare address is that one address
        ("2001:DB8:0::/32", "2001:db8::/32"),  # canonical IPv6 text
        ("10.0.0.0/255.255.255.0", "10.0.0.0/24"),
    ],
)
def test_cidrs_are_parsed_to_canonical_form(text, expected):
    assert str(parse_cidr(text)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.5/24", "host bits set: write 10.0.0.0/24 for the network or 10.0.0.5/32"),
        ("10.0.0.0/33", "not a CIDR"),
        ("300.1.1.1", "not a CIDR"),
        ("", "not a CIDR"),
        ("fe80::%eth0/64", "not a CIDR"),
        ("office", "not a CIDR"),
    ],
)
def test_invalid_cidrs_are_refused(text, message):
    with pytest.raises(IpRuleProblem, match=message):
        parse_cidr(text)


def test_rule_set_checks():
    rules = check_ip_rules([("office", "ALLOW", ["10.0.0.0/8", "10.0.0.0/8", "2001:db8::/32"])])
    assert [str(n) for n in rules[0].cidrs] == ["10.0.0.0/8", "2001:db8::/32"]  # duplicates inside a rule merge
    check_ip_rules([("a", "ALLOW", ["10.0.0.0/8"]), ("b", "ALLOW", ["10.0.0.0/8"])])  # same type: harmless
    for rules, message in [
        ([("a", "ALLOW", ["10.0.0.0/8"]), ("b", "DENY", ["10.0.0.0/8"])], "in the ALLOW rule 'a' and in the DENY"),
        ([("a", "ALLOW", ["10.0.0.0/8"]), ("b", "DENY", ["10.0.0.0/255.0.0.0"])], "10.0.0.0/8 is in the ALLOW"),
        ([("", "ALLOW", ["10.0.0.0/8"])], "rule 1: name must be 1 to 255"),
        ([("x" * 256, "ALLOW", ["10.0.0.0/8"])], "name must be 1 to 255"),
        ([("a", "ALLOW", [])], "at least one CIDR"),
        ([("a", "MAYBE", ["10.0.0.0/8"])], "ALLOW or DENY"),
        ([("a", "DENY", ["10.0.0.1/8"])], "rule 'a': 10.0.0.1/8 has host bits set"),
        ([(f"r{i}", "DENY", [f"10.0.{i}.0/24"]) for i in range(101)], "at most 100 rules"),
    ]:
        with pytest.raises(IpRuleProblem, match=message):
            check_ip_rules(rules)
    assert check_ip_rules([("x" * 255, "ALLOW", ["10.0.0.0/8"])])[0].name == "x" * 255
