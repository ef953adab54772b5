"""Authorization decisions. Pure: grants x resource x access x project, no I/O.

Grants are compiled once per principal into two dictionaries so that every question a request asks
(``@requires`` on a field, ``check``, ``/auth/check``) is a lookup.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Final

from tokengate.catalog import ACCESS_LEVELS, CATALOG, READ, Catalog, is_account_resource

SERVICE_TOKEN: Final = "SERVICE_TOKEN"
USER: Final = "USER"


@dataclass(frozen=True, slots=True)
class Grant:
    permission_set: str
    all_projects: bool = True
    project_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


def license_denial(license_: str | None, resource: str, access: str) -> str | None:
    """Why a user's license forbids this access regardless of grants, or None."""
    if license_ == "READ_ONLY":
        if is_account_resource(resource):
            return "a READ_ONLY license gives no access to account resources"
        if access != READ:
            return "a READ_ONLY license allows READ at most"
    elif license_ == "IT" and not is_account_resource(resource):
        return "an IT license gives no access to project resources"
    return None


def license_cap(license_: str | None, resource: str) -> int:
    """The highest access level a license permits on a resource (0 none, 1 READ, 2 WRITE)."""
    if license_ == "READ_ONLY":
        return 0 if is_account_resource(resource) else ACCESS_LEVELS[READ]
    if license_ == "IT" and not is_account_resource(resource):
        return 0
    return ACCESS_LEVELS["WRITE"]


class Permissions:
    """A principal's grants compiled for constant-time decisions."""

    __slots__ = ("_by_project", "_everywhere", "license")

    def __init__(self, grants: Iterable[Grant], license_: str | None = None, catalog: Catalog = CATALOG):
        self.license = license_
        # resource -> (level, permission set) for grants that reach every project (or the account)
        self._everywhere: dict[str, tuple[int, str]] = {}
        # (resource, project id) -> (level, permission set) for grants limited to listed projects
        self._by_project: dict[tuple[str, str], tuple[int, str]] = {}
        for grant in grants:
            permission_set = catalog.permission_sets.get(grant.permission_set)
            if permission_set is None:
                continue
            reaches_all = grant.all_projects or permission_set.is_account_level
            for resource, access in permission_set.access.items():
                level = min(ACCESS_LEVELS[access], license_cap(license_, resource))
                if level == 0:
                    continue
                if reaches_all or is_account_resource(resource):
                    _keep_best(self._everywhere, resource, level, grant.permission_set)
                else:
                    for project_id in grant.project_ids:
                        _keep_best(self._by_project, (resource, project_id), level, grant.permission_set)

    def decide(self, resource: str, access: str, project_id: str | None = None) -> Decision:
        """May the principal have ``access`` to ``resource`` (in ``project_id`` for project resources)?"""
        needed = ACCESS_LEVELS[access]
        best = self._everywhere.get(resource)
        scope = "for all projects"
        if project_id is not None and not is_account_resource(resource):
            in_project = self._by_project.get((resource, project_id))
            if in_project is not None and (best is None or in_project[0] > best[0]):
                best, scope = in_project, f"on project {project_id}"
        if best is not None and best[0] >= needed:
            if is_account_resource(resource):
                scope = "on the account"
            return Decision(True, f"{resource}:{access} granted by {best[1]} {scope}")
        denial = license_denial(self.license, resource, access)
        if denial is not None:
            return Decision(False, denial)
        where = f" in project {project_id}" if project_id and not is_account_resource(resource) else ""
        if not where and not is_account_resource(resource):
            where = " across all projects"
        return Decision(False, f"no grant gives {resource}:{access}{where}")

    def allows(self, resource: str, access: str, project_id: str | None = None) -> bool:
        return self.decide(resource, access, project_id).allowed


def _keep_best(table: dict, key: object, level: int, permission_set: str) -> None:
    current = table.get(key)
    if current is None or level > current[0]:
        table[key] = (level, permission_set)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a service token or a user (through a personal token), with compiled grants."""

    kind: str  # SERVICE_TOKEN | USER
    token_id: str
    display_prefix: str
    account_id: str
    account_name: str
    account_plan: str
    user_id: str | None
    license: str | None
    grants: tuple[Grant, ...]
    project_ids: frozenset[str]  # every project of the account, for tenant checks
    expires_at: datetime | None = None
    permissions: Permissions = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "permissions", Permissions(self.grants, self.license))

    @property
    def actor(self) -> str:
        """How the audit log names this principal (never a secret)."""
        if self.kind == USER:
            return f"user:{self.user_id}"
        return f"service_token:{self.token_id} ({self.display_prefix})"


MAX_NAME_LENGTH: Final = 255


class NameProblem(ValueError):
    """A token, project or account name outside 1 to 255 characters (BAD_USER_INPUT, or a CLI failure)."""


def checked_name(value: str, what: str = "name") -> str:
    """The name with surrounding spaces trimmed; names are 1 to 255 characters."""
    value = value.strip()
    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise NameProblem(f"{what} must be 1 to {MAX_NAME_LENGTH} characters")
    return value


class GrantProblem(ValueError):
    """A grant list that breaks the catalog's rules (BAD_USER_INPUT)."""


class PlanRestriction(ValueError):
    """A permission set the account's plan does not allow on service tokens (PLAN_RESTRICTED)."""


MAX_GRANTS: Final = 100
MAX_ECHO: Final = 64  # characters of a refused value repeated in a message


def shown(text: str) -> str:
    """A client's value for an error message, cut short so a huge input is not echoed whole."""
    return text if len(text) <= MAX_ECHO else text[:MAX_ECHO] + "..."


def check_grants(
    grants: Sequence[Grant],
    account_project_ids: frozenset[str] | set[str],
    catalog: Catalog = CATALOG,
) -> tuple[Grant, ...]:
    """Validate grants against the catalog and the account's projects; return them normalised."""
    if len(grants) > MAX_GRANTS:
        raise GrantProblem(f"at most {MAX_GRANTS} grants")
    normalised: list[Grant] = []
    for grant in grants:
        permission_set = catalog.permission_sets.get(grant.permission_set)
        if permission_set is None:
            raise GrantProblem(f"unknown permission set {grant.permission_set}")
        if grant.all_projects:
            if grant.project_ids:
                raise GrantProblem(f"{grant.permission_set}: projectIds must be empty when allProjects is true")
            normalised.append(Grant(grant.permission_set, True, ()))
            continue
        if permission_set.is_account_level:
            raise GrantProblem(
                f"{grant.permission_set} is an account-level permission set: grant it with allProjects: true"
            )
        if not grant.project_ids:
            raise GrantProblem(f"{grant.permission_set}: projectIds must not be empty when allProjects is false")
        for project_id in grant.project_ids:
            if project_id not in account_project_ids:
                raise GrantProblem(f"{grant.permission_set}: unknown project {shown(project_id)}")
        normalised.append(Grant(grant.permission_set, False, tuple(dict.fromkeys(grant.project_ids))))
    return tuple(normalised)


def check_plan(grants: Sequence[Grant], plan: str, catalog: Catalog = CATALOG) -> None:
    """Raise ``PlanRestriction`` when a grant's set is not available for service tokens on ``plan``."""
    allowed = catalog.sets_for_plan(plan)
    refused = [grant.permission_set for grant in grants if grant.permission_set not in allowed]
    if refused:
        raise PlanRestriction(
            f"the {plan} plan does not allow {', '.join(dict.fromkeys(refused))} on service tokens; "
            f"it allows: {', '.join(allowed)}"
        )


TOKEN_ADMIN_LICENSE: Final = "DEVELOPER"


def service_token_admin_denial(principal: Principal) -> str | None:
    """Why this caller may not create, rotate, update or delete service tokens beyond its grants, or None.

    SERVICE_TOKENS:WRITE is checked by ``@requires``; a user caller also needs a Developer license
    (an IT license passes SERVICE_TOKENS:WRITE, so this rule is what refuses it).
    """
    if principal.kind == USER and principal.license != TOKEN_ADMIN_LICENSE:
        return f"managing service tokens requires a {TOKEN_ADMIN_LICENSE} license (yours is {principal.license})"
    return None


def check_service_token_grants(
    grants: Sequence[Grant],
    account_project_ids: frozenset[str] | set[str],
    plan: str,
    catalog: Catalog = CATALOG,
) -> tuple[Grant, ...]:
    """A service token's grants, normalised: the catalog's rules (``GrantProblem``), then the plan's
    (``PlanRestriction``)."""
    checked = check_grants(grants, account_project_ids, catalog)
    check_plan(checked, plan, catalog)
    return checked


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


MAX_ADDRESS_TEXT = 64  # longer than any IPv4/IPv6 address text: refused before parsing or caching
MAX_CACHED_FORWARDED_FOR = 256  # longer headers are rare and would only churn the cache


@lru_cache(maxsize=4096)
def _address(text: str) -> IPAddress | None:
    # Cached: a service sees the same few peers and clients over and over; parsing costs microseconds.
    if len(text) > MAX_ADDRESS_TEXT:
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket is still that IPv4 address.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


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
    peer_address = _address(peer)
    if peer_address is None:
        return peer
    if not forwarded_for or not _is_trusted(peer_address, trusted):
        return str(peer_address)
    hops = [_address(hop) for hop in forwarded_for.split(",")]
    if not hops or any(hop is None for hop in hops):
        return str(peer_address)
    for hop in reversed(hops):
        assert hop is not None
        if not _is_trusted(hop, trusted):
            return str(hop)
    return str(hops[0])


_cached_client_address = lru_cache(maxsize=4096)(_client_address)

ALLOW: Final = "ALLOW"
DENY: Final = "DENY"
IP_RULE_TYPES: Final = (ALLOW, DENY)
MAX_IP_RULES: Final = 100
MAX_IP_CIDRS: Final = 1000
MAX_RULE_NAME_LENGTH: Final = 255


class IpRuleProblem(ValueError):
    """A rule set that cannot be saved (BAD_USER_INPUT); the message says which rule and why."""


@dataclass(frozen=True, slots=True)
class IpRule:
    """A named ALLOW or DENY list of networks, as the account's settings page has it."""

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


def parse_cidr(text: str) -> IPNetwork:
    """A network in CIDR form (a bare address means /32 or /128). Host bits must be zero.

    Refusing ``10.0.0.5/24`` instead of silently widening it to ``10.0.0.0/24`` keeps a rule meaning
    exactly what was typed; the message names both readings.
    """
    value = text.strip()
    if not value or "%" in value:
        raise IpRuleProblem(f"{shown(text)!r} is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise IpRuleProblem(f"{shown(text)!r} is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32") from None
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
        name = raw_name.strip()
        if not 1 <= len(name) <= MAX_RULE_NAME_LENGTH:
            raise IpRuleProblem(f"rule {position}: name must be 1 to {MAX_RULE_NAME_LENGTH} characters")
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
        parsed = _address(address) if address is not None else None
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


def _mask(prefixlen: int, bits: int) -> int:
    return ((1 << prefixlen) - 1) << (bits - prefixlen)
