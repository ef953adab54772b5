"""IP restrictions as the account's settings page has them: rules, their validation, and decisions. Pure.

Rules are named ALLOW or DENY lists of IPv4/IPv6 networks. The most specific matching network decides;
with no match an address is refused when any ALLOW rule exists. Equally specific ALLOW and DENY: DENY wins.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from tokengate.core.errors import InvalidInput
from tokengate.core.validation import checked_name, shown

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW: Final = "ALLOW"
DENY: Final = "DENY"
IP_RULE_TYPES: Final = (ALLOW, DENY)
MAX_IP_RULES: Final = 100
MAX_IP_CIDRS: Final = 1000
MAX_ADDRESS_TEXT: Final = 64  # longer than any IPv4/IPv6 address text: refused before parsing or caching


class IpRuleProblem(InvalidInput):
    """A rule set that cannot be saved (BAD_USER_INPUT); the message says which rule and why."""


@lru_cache(maxsize=4096)
def parse_address(text: str) -> IPAddress | None:
    """An address, or None for anything else. An IPv4-mapped IPv6 address is that IPv4 address.

    Cached: a service sees the same few peers and clients over and over; parsing costs microseconds.
    """
    if len(text) > MAX_ADDRESS_TEXT:
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class IpRule:
    """A named ALLOW or DENY list of networks."""

    name: str
    type: str  # ALLOW | DENY
    cidrs: tuple[IPNetwork, ...]


@dataclass(frozen=True, slots=True)
class IpMatch:
    """The rule whose most specific network matched an address."""

    rule: str
    type: str
    cidr: IPNetwork

    @property
    def allowed(self) -> bool:
        return self.type == ALLOW


_IPV4_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")


def as_ipv4_if_mapped(network: IPNetwork) -> IPNetwork:
    """An IPv4-mapped IPv6 network (``::ffff:127.0.0.1/128``) as the IPv4 network it means: addresses are
    matched in that form (``parse_address``), so kept as IPv6 it would never match."""
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_IPV4_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


_NOT_A_CIDR: Final = "is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32"


def parse_cidr(text: str) -> IPNetwork:
    """A network in CIDR form (a bare address means /32 or /128). Host bits must be zero.

    Refusing ``10.0.0.5/24`` instead of silently widening it to ``10.0.0.0/24`` keeps a rule meaning
    exactly what was typed; the message names both readings.
    """
    value = text.strip()
    if not value or "%" in value:
        raise IpRuleProblem(f"{shown(text)!r} {_NOT_A_CIDR}")
    try:
        return as_ipv4_if_mapped(ipaddress.ip_network(value, strict=True))
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise IpRuleProblem(f"{shown(text)!r} {_NOT_A_CIDR}") from None
    address = value.partition("/")[0]
    raise IpRuleProblem(
        f"{value} has host bits set: write {loose} for the network or {address}/{loose.max_prefixlen} for one address"
    )


def check_ip_rules(rules: Sequence[tuple[str, str, Sequence[str]]]) -> tuple[IpRule, ...]:
    """Validate ``(name, type, cidrs)`` triples; return rules with parsed, de-duplicated networks.

    Refused: a name outside 1-255 characters, an unknown type, a rule without networks, an invalid
    CIDR, and the same network in an ALLOW and a DENY rule (which one would decide is not obvious).
    """
    if len(rules) > MAX_IP_RULES:
        raise IpRuleProblem(f"at most {MAX_IP_RULES} rules")
    checked: list[IpRule] = []
    seen: dict[IPNetwork, tuple[str, str]] = {}  # network -> (type, rule name)
    total = 0
    for position, (raw_name, rule_type, cidrs) in enumerate(rules, start=1):
        try:
            name = checked_name(raw_name, f"rule {position}: name")
        except InvalidInput as problem:
            raise IpRuleProblem(str(problem)) from None
        if rule_type not in IP_RULE_TYPES:
            raise IpRuleProblem(f"rule {name!r}: type must be ALLOW or DENY")
        if not cidrs:
            raise IpRuleProblem(f"rule {name!r}: needs at least one CIDR")
        total += len(cidrs)
        if total > MAX_IP_CIDRS:
            raise IpRuleProblem(f"at most {MAX_IP_CIDRS} CIDRs in all")
        networks: dict[IPNetwork, None] = {}
        for text in cidrs:
            try:
                network = parse_cidr(text)
            except IpRuleProblem as problem:
                raise IpRuleProblem(f"rule {name!r}: {problem}") from None
            other = seen.get(network)
            if other is not None and other[0] != rule_type:
                raise IpRuleProblem(
                    f"{network} is in the {other[0]} rule {other[1]!r} and in the {rule_type} rule {name!r}"
                )
            seen.setdefault(network, (rule_type, name))
            networks[network] = None
        checked.append(IpRule(name, rule_type, tuple(networks)))
    return tuple(checked)


class IpPolicy:
    """An account's rules compiled for per-request decisions.

    Per address family, networks are grouped by prefix length (longest first) in dictionaries keyed by
    the network's integer value, so a decision costs one mask and one lookup per distinct prefix length.
    """

    __slots__ = ("_tables", "has_allow")

    def __init__(self, rules: Iterable[IpRule]):
        by_family: dict[int, dict[int, dict[int, IpMatch]]] = {4: {}, 6: {}}
        self.has_allow = False
        for rule in rules:
            self.has_allow = self.has_allow or rule.type == ALLOW
            for network in rule.cidrs:
                table = by_family[network.version].setdefault(network.prefixlen, {})
                key = int(network.network_address)
                current = table.get(key)
                # Equally specific ALLOW and DENY on one network: DENY wins.
                if current is None or (current.type == ALLOW and rule.type == DENY):
                    table[key] = IpMatch(rule.name, rule.type, network)
        self._tables: dict[int, tuple[tuple[int, dict[int, IpMatch]], ...]] = {
            version: tuple(
                (_mask(prefixlen, 32 if version == 4 else 128), table)
                for prefixlen, table in sorted(tables.items(), reverse=True)
            )
            for version, tables in by_family.items()
        }

    def match(self, address: str | None) -> IpMatch | None:
        """The rule with the most specific network containing ``address``, or None."""
        parsed = parse_address(address) if address is not None else None
        if parsed is None:
            return None
        value = int(parsed)
        for mask, table in self._tables[parsed.version]:
            found = table.get(value & mask)
            if found is not None:
                return found
        return None

    def allows(self, address: str | None) -> bool:
        """The most specific match decides; with no match, refused if any ALLOW rule exists.

        An unknown or unparsable address matches nothing.
        """
        found = self.match(address)
        if found is None:
            return not self.has_allow
        return found.allowed


def compile_rules(enabled: bool, rules: Iterable[IpRule]) -> IpPolicy | None:
    """The compiled policy while restrictions are enabled, else None (every address passes)."""
    return IpPolicy(rules) if enabled else None


def _mask(prefixlen: int, bits: int) -> int:
    return ((1 << prefixlen) - 1) << (bits - prefixlen)
