"""IP restrictions in GraphQL: the account's rules, and ``setIpRestrictions`` replacing them as a whole."""

from __future__ import annotations

import strawberry

from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.directives import requires
from tokengate.graphql.schema.enums import Access, IpRuleType, Resource
from tokengate.graphql.schema.inputs import IpRuleInput
from tokengate.graphql.schema.node import Node
from tokengate.services import ip_restrictions
from tokengate.store.ip_rules import IpSettings


@strawberry.type(name="IpRule")
class IpRuleView(Node):
    name: str
    type: IpRuleType  # type: ignore[valid-type]
    cidrs: list[str] = strawberry.field(description="Networks in canonical CIDR form.")


@strawberry.type(description="While enabled, every token of the account is refused outside these rules.")
class IpRestrictions:
    enabled: bool
    rules: list[IpRuleView]

    @classmethod
    def of(cls, settings: IpSettings) -> IpRestrictions:
        return cls(
            enabled=settings.enabled,
            rules=[
                IpRuleView(
                    id=strawberry.ID(rule.id), name=rule.name, type=IpRuleType(rule.type), cidrs=list(rule.cidrs)
                )
                for rule in settings.rules
            ],
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
        settings = await ip_restrictions.replace(
            context.backend,
            context.actor,
            context.caller.account_id,
            enabled,
            [(rule.name, rule.type.value, rule.cidrs) for rule in rules],
        )
        return IpRestrictions.of(settings)
