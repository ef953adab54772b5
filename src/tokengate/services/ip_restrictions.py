"""An account's IP restrictions, replaced as a whole."""

from __future__ import annotations

from collections.abc import Sequence

from tokengate.core import tokens
from tokengate.core.errors import InvalidInput
from tokengate.core.invalidations import IpRulesChanged
from tokengate.core.ip_rules import IpPolicy, check_ip_rules
from tokengate.core.policy import require, require_account
from tokengate.services.unit_of_work import Actor, Backend
from tokengate.store import ip_rules as ip_rule_store
from tokengate.store.ip_rules import IpSettings


async def replace(
    backend: Backend, actor: Actor, account_id: str, enabled: bool, rules: Sequence[tuple[str, str, Sequence[str]]]
) -> IpSettings:
    """Replace the switch and every ``(name, type, cidrs)`` rule. Refused when enabling them would refuse the
    caller's own address (a lock-out); the operator at the command line has no address to lose."""
    require_account(actor.principal, account_id)
    require(actor.principal, "IP_RESTRICTIONS", "WRITE")
    checked = check_ip_rules(rules)
    if enabled and actor.principal is not None and not IpPolicy(checked).allows(actor.client_addr):
        raise InvalidInput(
            f"these rules would refuse your own address {actor.client_addr}: allow it first, or save the rules disabled"
        )
    async with backend.change(actor) as work:
        await work.account(account_id)
        settings = await ip_rule_store.replace(
            work.conn, account_id, enabled, [(tokens.new_id("ipr"), rule) for rule in checked]
        )
        details = [{"name": rule.name, "type": rule.type, "cidrs": list(rule.cidrs)} for rule in settings.rules]
        await work.audit(account_id, "ip_restrictions.updated", account_id, enabled=enabled, rules=details)
        await work.notify(IpRulesChanged(account_id))
    return settings


async def disable(backend: Backend, actor: Actor, account_id: str) -> IpSettings:
    """Switch the account's restrictions off and keep its rules: the way back in for an admin locked out
    (``tokengate disable-ip-restrictions``)."""
    current = await ip_rule_store.settings(backend.pool, account_id)
    return await replace(backend, actor, account_id, False, [(r.name, r.type, r.cidrs) for r in current.rules])
