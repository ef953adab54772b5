"""``Query.node(id)``: the object an id names, when it is of the caller's own account and the caller may
read it where the schema lists it; null otherwise, never an error.

Each type's loader applies the rule of the field that lists such objects (the same policy question
``@requires`` asks there): a service token needs SERVICE_TOKENS:READ (except the caller's own token, which
``viewer.serviceToken`` shows), a user MEMBERS:READ (except the caller itself, as ``viewer.user``), a
project PROJECTS:READ in that project (``Account.projects``), an IP rule IP_RESTRICTIONS:READ, an audit
event AUDIT_LOG:READ; the account is the caller's own. A denial answers null like an unknown id, so
``node`` never says whether an id exists to a caller who may not see it (the denial is still counted).

Another module adds a type by adding its loader to ``LOADERS`` (keyed by the type name in global_ids).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tokengate.core import global_ids
from tokengate.core.policy import Principal
from tokengate.graphql.schema.audit_log import AuditEvent
from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.ip_restrictions import IpRestrictions
from tokengate.graphql.schema.node import Node
from tokengate.graphql.schema.types import (
    Account,
    Project,
    principal_node_id,
    service_token_with_grants,
    users_with_grants,
)
from tokengate.graphql.schema.user_tokens import UserToken
from tokengate.graphql.schema.webhooks import webhooks_of_account
from tokengate.store import audit as audit_store
from tokengate.store import ip_rules as ip_rule_store
from tokengate.store import projects as project_store
from tokengate.store import tokens as token_store
from tokengate.store import users as user_store

Loader = Callable[[Info, str], Awaitable[Any]]


def may_read(info: Info, resource: str, project_id: str | None = None) -> bool:
    """The question ``@requires(resource: ..., access: READ)`` asks, counted as a denial when refused (a project
    of another account is not a denial: it is answered as one that does not exist)."""
    decision = info.context.caller.decide(resource, "READ", project_id)
    if decision.allowed:
        return True
    if not decision.unknown_project:
        info.context.runtime.metrics.count_denial(resource, "READ")
    return False


async def account(info: Info, key: str) -> Account | None:
    caller = info.context.caller
    return Account.of(caller) if key == caller.account_id else None


async def user(info: Info, key: str) -> Node | None:
    caller = info.context.caller
    row = await user_store.get_user(info.context.pool, key)
    if row is None or row.account_id != caller.account_id:
        return None
    if key != caller.user_id and not may_read(info, "MEMBERS"):
        return None
    return (await users_with_grants(info.context, [row]))[0]


async def project(info: Info, key: str) -> Project | None:
    if not may_read(info, "PROJECTS", key):
        return None
    row = (await project_store.projects_by_ids(info.context.pool, [key])).get(key)
    return Project.of(row) if row is not None else None


async def ip_rule(info: Info, key: str) -> Node | None:
    caller = info.context.caller
    if not may_read(info, "IP_RESTRICTIONS"):
        return None
    rules = IpRestrictions.of(await ip_rule_store.settings(info.context.pool, caller.account_id)).rules
    return next((rule for rule in rules if rule.id == key), None)


def is_own_token(principal: Principal, key: str) -> bool:
    return principal_node_id(principal) == global_ids.service_token_id(key)


async def service_token(info: Info, key: str) -> Node | None:
    caller = info.context.caller
    record = await token_store.token_by_id(info.context.pool, caller.account_id, key)
    if record is None or record.kind != "service":
        return None
    if not is_own_token(caller, key) and not may_read(info, "SERVICE_TOKENS"):
        return None
    return await service_token_with_grants(info.context, record)


async def user_token(info: Info, key: str) -> Node | None:
    """A personal token: its own user sees it, and whoever may read the members (``User.tokens``)."""
    caller = info.context.caller
    record = await token_store.token_by_id(info.context.pool, caller.account_id, key)
    if record is None or record.kind != "user":
        return None
    if record.user_id != caller.user_id and not may_read(info, "MEMBERS"):
        return None
    return UserToken.of(record)


async def webhook(info: Info, key: str) -> Node | None:
    if not may_read(info, "WEBHOOKS"):
        return None
    found = await webhooks_of_account(info, info.context.caller.account_id)
    return next((hook for hook in found if hook.id == key), None)


async def any_token(info: Info, key: str) -> Node | None:
    """A bare token id (printed before ids had prefixes): the row says which kind it is."""
    record = await token_store.token_by_id(info.context.pool, info.context.caller.account_id, key)
    if record is None:
        return None
    loader = LOADERS.get(global_ids.SERVICE_TOKEN if record.kind == "service" else global_ids.USER_TOKEN)
    return await loader(info, key) if loader is not None else None


async def audit_event(info: Info, key: str) -> AuditEvent | None:
    if not may_read(info, "AUDIT_LOG"):
        return None
    row = await audit_store.event(info.context.pool, info.context.caller.account_id, int(key))
    return AuditEvent.of(row) if row is not None else None


LOADERS: dict[str, Loader] = {
    global_ids.ACCOUNT: account,
    global_ids.USER: user,
    global_ids.PROJECT: project,
    global_ids.IP_RULE: ip_rule,
    global_ids.WEBHOOK: webhook,
    global_ids.SERVICE_TOKEN: service_token,
    global_ids.USER_TOKEN: user_token,
    global_ids.ANY_TOKEN: any_token,
    global_ids.AUDIT_EVENT: audit_event,
}


async def find_node(info: Info, node_id: str) -> Node | None:
    """The object ``node_id`` names, if the caller may see it; None otherwise."""
    parsed = global_ids.parse(node_id)
    if parsed is None:
        return None
    loader = LOADERS.get(parsed.type)
    return await loader(info, parsed.key) if loader is not None else None
