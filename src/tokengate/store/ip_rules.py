"""IP restrictions of an account: the switch and its rules, replaced as a whole."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tokengate.core.ip_rules import IpRule
from tokengate.store import Executor

# One statement, so the switch and the rules come from one snapshot.
SETTINGS = """
SELECT s.enabled, r.id, r.name, r.type, r.cidrs::text[] AS cidrs
FROM ip_restrictions s LEFT JOIN ip_rules r ON r.account_id = s.account_id
WHERE s.account_id = $1 ORDER BY r.position
"""
UPSERT_SETTINGS = """
INSERT INTO ip_restrictions (account_id, enabled) VALUES ($1, $2)
ON CONFLICT (account_id) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now()
"""
CLEAR_RULES = "DELETE FROM ip_rules WHERE account_id = $1"
INSERT_RULE = """
INSERT INTO ip_rules (id, account_id, name, type, cidrs, position) VALUES ($1, $2, $3, $4, $5::cidr[], $6)
"""


@dataclass(frozen=True, slots=True)
class StoredIpRule:
    id: str
    name: str
    type: str  # ALLOW | DENY
    cidrs: tuple[str, ...]  # canonical CIDR text


@dataclass(frozen=True, slots=True)
class IpSettings:
    enabled: bool
    rules: tuple[StoredIpRule, ...]


async def settings(db: Executor, account_id: str) -> IpSettings:
    """The account's switch and rules; an account that never set any has them off and empty."""
    rows = await db.fetch(SETTINGS, account_id)
    return IpSettings(
        enabled=bool(rows and rows[0]["enabled"]),
        rules=tuple(
            StoredIpRule(row["id"], row["name"], row["type"], tuple(row["cidrs"])) for row in rows if row["id"]
        ),
    )


async def replace(db: Executor, account_id: str, enabled: bool, rules: Sequence[tuple[str, IpRule]]) -> IpSettings:
    """Replace the switch and every rule (``(id, rule)`` pairs); run in a transaction."""
    await db.execute(UPSERT_SETTINGS, account_id, enabled)
    await db.execute(CLEAR_RULES, account_id)
    stored = []
    for position, (rule_id, rule) in enumerate(rules):
        cidrs = tuple(str(network) for network in rule.cidrs)
        await db.execute(INSERT_RULE, rule_id, account_id, rule.name, rule.type, list(cidrs), position)
        stored.append(StoredIpRule(rule_id, rule.name, rule.type, cidrs))
    return IpSettings(enabled, tuple(stored))
