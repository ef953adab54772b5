"""IP restrictions in GraphQL: the account's rules, and ``setIpRestrictions`` replacing them as a whole."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from tokengate import tokens
from tokengate.api.directives import requires
from tokengate.api.enums import Access, IpRuleType, Resource
from tokengate.api.errors import BadUserInput
from tokengate.policy import IpPolicy, IpRuleProblem, check_ip_rules
from tokengate.store import audit
from tokengate.store import ip_rules as ip_rule_store
from tokengate.store.ip_rules import IpSettings


@strawberry.type
class IpRule:
    id: strawberry.ID
    name: str
    type: IpRuleType  # type: ignore[valid-type]
    cidrs: list[str] = strawberry.field(description="Networks in canonical CIDR form.")


@strawberry.type(description="While enabled, every token of the account is refused outside these rules.")
class IpRestrictions:
    enabled: bool
    rules: list[IpRule]

    @classmethod
    def of(cls, settings: IpSettings) -> IpRestrictions:
        return cls(
            enabled=settings.enabled,
            rules=[
                IpRule(id=strawberry.ID(rule.id), name=rule.name, type=IpRuleType(rule.type), cidrs=list(rule.cidrs))
                for rule in settings.rules
            ],
        )


@strawberry.input
class IpRuleInput:
    name: str
    type: IpRuleType  # type: ignore[valid-type]
    cidrs: list[str] = strawberry.field(
        description="IPv4/IPv6 networks such as 203.0.113.0/24; a bare address means that one address. "
        "Host bits must be zero (10.0.0.5/24 is refused)."
    )


@strawberry.type
class IpRestrictionMutations:
    @requires(
        Resource.IP_RESTRICTIONS,
        Access.WRITE,
        description="Replace the account's IP rules and switch. Refused (BAD_USER_INPUT) when enabling them "
        "would refuse the caller's own address.",
    )
    async def set_ip_restrictions(self, info: Info, enabled: bool, rules: list[IpRuleInput]) -> IpRestrictions | None:
        context = info.context
        account_id = context.caller.account_id
        try:
            checked = check_ip_rules([(rule.name, rule.type.value, rule.cidrs) for rule in rules])
        except IpRuleProblem as problem:
            raise BadUserInput(str(problem)) from None
        if enabled and not IpPolicy(checked).allows(context.client_addr):
            raise BadUserInput(
                f"these rules would refuse your own address {context.client_addr}: "
                "allow it first, or save the rules disabled"
            )
        async with context.pool.acquire() as conn, conn.transaction():
            settings = await ip_rule_store.replace(
                conn, account_id, enabled, [(tokens.new_id("ipr"), rule) for rule in checked]
            )
            details = {
                "enabled": enabled,
                "rules": [{"name": rule.name, "type": rule.type, "cidrs": list(rule.cidrs)} for rule in settings.rules],
            }
            await audit.record(conn, context.audit_entry("ip_restrictions.updated", account_id, details))
        context.services.ip_guard.invalidate(account_id)
        return IpRestrictions.of(settings)
