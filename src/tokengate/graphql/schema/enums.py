"""GraphQL enums, generated from the catalog so the values live in one place."""

from __future__ import annotations

from enum import Enum

import strawberry

from tokengate.core.catalog import LICENSES, PERMISSION_SET_KEYS, PLANS, RESOURCES


def _enum(name: str, values: tuple[str, ...], description: str) -> type[Enum]:
    return strawberry.enum(Enum(name, {value: value for value in values}), description=description)  # type: ignore[return-value]


Resource = _enum("Resource", RESOURCES, "What a permission covers: an account resource or a project resource.")
PermissionSetKey = _enum("PermissionSetKey", PERMISSION_SET_KEYS, "A permission set of the catalog.")
Plan = _enum("Plan", PLANS, "The account's plan: decides which permission sets service tokens may carry.")
License = _enum("License", LICENSES, "A user's license: limits what the user's grants give.")
Access = _enum("Access", ("READ", "WRITE"), "WRITE implies READ.")
TokenFormat = _enum("TokenFormat", ("LEGACY", "V2"), "LEGACY tokens predate 2023-07-18 and validate slowly.")
TokenState = _enum("TokenState", ("ACTIVE", "EXPIRED", "DELETED"), "Whether a token is usable.")
PrincipalKind = _enum("PrincipalKind", ("SERVICE_TOKEN", "USER"), "Who is calling.")
IpRuleType = _enum("IpRuleType", ("ALLOW", "DENY"), "What an IP rule does with matching addresses.")
UserState = _enum("UserState", ("ACTIVE", "DEACTIVATED"), "A deactivated user's personal tokens are refused.")
