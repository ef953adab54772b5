"""Trust policies (keyless CI), the tokens exchanged under them, and the presented tokens' jti seen once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokengate.core.policy import Grant
from tokengate.core.trust_policies import Binding
from tokengate.store import Executor
from tokengate.store.grants import as_documents, from_documents

COLUMNS = """id, account_id, name, issuer, audience, subject, conditions::text AS conditions, grants::text AS grants,
max_lifetime_seconds, created_at, created_by, updated_at"""
INSERT = (
    """
INSERT INTO trust_policies (id, account_id, name, issuer, audience, subject, conditions, grants, max_lifetime_seconds,
                            created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10) RETURNING """
    + COLUMNS
)
OF_ACCOUNT = "SELECT " + COLUMNS + " FROM trust_policies WHERE account_id = $1 ORDER BY created_at, id"
ONE = "SELECT " + COLUMNS + " FROM trust_policies WHERE account_id = $1 AND id = $2"
FOR_UPDATE = ONE + " FOR UPDATE"
OF_ISSUER = "SELECT " + COLUMNS + " FROM trust_policies WHERE issuer = $1 ORDER BY created_at, id"
HAS_ISSUER = "SELECT EXISTS (SELECT 1 FROM trust_policies WHERE issuer = $1)"
UPDATE = (
    """
UPDATE trust_policies SET name = $2, issuer = $3, audience = $4, subject = $5, conditions = $6::jsonb,
                          grants = $7::jsonb, max_lifetime_seconds = $8, updated_at = now()
WHERE id = $1 RETURNING """
    + COLUMNS
)
DELETE = "DELETE FROM trust_policies WHERE account_id = $1 AND id = $2 RETURNING " + COLUMNS
# Every usable token exchanged under the policy stops at once (the caller publishes the notices).
REVOKE_TOKENS = """
UPDATE tokens SET state = 'deleted', deleted_at = now()
WHERE trust_policy_id = $1 AND state = 'active' AND expires_at > now() RETURNING id
"""
ACTIVE_TOKENS = """
SELECT id, created_at, expires_at, created_by FROM tokens
WHERE trust_policy_id = $1 AND state = 'active' AND expires_at > now() ORDER BY created_at DESC, id LIMIT $2
"""
# A jti is accepted once per issuer: the insert that wins is the only exchange. Rows past their token's expiry
# are useless (an expired token is refused anyway) and are swept a few at a time by later exchanges.
CLAIM_JTI = """
INSERT INTO exchanged_subject_tokens (issuer, jti, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (issuer, jti) DO NOTHING RETURNING true
"""
SWEEP_JTIS = """
DELETE FROM exchanged_subject_tokens WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM exchanged_subject_tokens WHERE expires_at < $1 LIMIT 100))
"""


@dataclass(frozen=True, slots=True)
class TrustPolicyRow:
    id: str
    account_id: str
    name: str
    issuer: str
    audience: str
    subject: str
    conditions: dict[str, str]
    grants: tuple[Grant, ...]
    max_lifetime_seconds: int
    created_at: datetime
    created_by: str
    updated_at: datetime

    @property
    def binding(self) -> Binding:
        return Binding(self.issuer, self.audience, self.subject, self.conditions)


@dataclass(frozen=True, slots=True)
class ExchangedTokenRow:
    id: str
    created_at: datetime
    expires_at: datetime
    created_by: str


def grants_json(grants: Sequence[Grant]) -> str:
    return json.dumps(as_documents(grants))


def _grants(document: str) -> tuple[Grant, ...]:
    return from_documents(json.loads(document))


def _columns(binding: Binding, grants: Sequence[Grant], max_lifetime_seconds: int) -> tuple[object, ...]:
    """The stored columns of a policy's binding, grants and lifetime, in the statements' order."""
    conditions = json.dumps(dict(binding.conditions))
    return (binding.issuer, binding.audience, binding.subject, conditions, grants_json(grants), max_lifetime_seconds)


def _row(row: Any) -> TrustPolicyRow:
    values = dict(row)
    values["conditions"] = json.loads(values["conditions"])
    values["grants"] = _grants(values["grants"])
    return TrustPolicyRow(**values)


async def insert(
    db: Executor,
    policy_id: str,
    account_id: str,
    name: str,
    binding: Binding,
    grants: Sequence[Grant],
    max_lifetime_seconds: int,
    created_by: str,
) -> TrustPolicyRow:
    row = await db.fetchrow(
        INSERT, policy_id, account_id, name, *_columns(binding, grants, max_lifetime_seconds), created_by
    )
    return _row(row)


async def of_account(db: Executor, account_id: str) -> list[TrustPolicyRow]:
    return [_row(row) for row in await db.fetch(OF_ACCOUNT, account_id)]


async def get(db: Executor, account_id: str, policy_id: str) -> TrustPolicyRow | None:
    row = await db.fetchrow(ONE, account_id, policy_id)
    return _row(row) if row else None


async def lock(db: Executor, account_id: str, policy_id: str) -> TrustPolicyRow | None:
    row = await db.fetchrow(FOR_UPDATE, account_id, policy_id)
    return _row(row) if row else None


async def of_issuer(db: Executor, issuer: str) -> list[TrustPolicyRow]:
    return [_row(row) for row in await db.fetch(OF_ISSUER, issuer)]


async def issuer_is_trusted(db: Executor, issuer: str) -> bool:
    return bool(await db.fetchval(HAS_ISSUER, issuer))


async def update(
    db: Executor, policy_id: str, name: str, binding: Binding, grants: Sequence[Grant], max_lifetime_seconds: int
) -> TrustPolicyRow:
    return _row(await db.fetchrow(UPDATE, policy_id, name, *_columns(binding, grants, max_lifetime_seconds)))


async def delete(db: Executor, account_id: str, policy_id: str) -> TrustPolicyRow | None:
    row = await db.fetchrow(DELETE, account_id, policy_id)
    return _row(row) if row else None


async def revoke_tokens(db: Executor, policy_id: str) -> list[str]:
    return [row["id"] for row in await db.fetch(REVOKE_TOKENS, policy_id)]


async def active_tokens(db: Executor, policy_id: str, limit: int = 100) -> list[ExchangedTokenRow]:
    return [ExchangedTokenRow(**dict(row)) for row in await db.fetch(ACTIVE_TOKENS, policy_id, limit)]


async def claim_jti(db: Executor, issuer: str, jti: str, expires_at: datetime, now: datetime) -> bool:
    """True for exactly one caller per (issuer, jti), across requests and instances."""
    await db.execute(SWEEP_JTIS, now)
    return bool(await db.fetchval(CLAIM_JTI, issuer, jti, expires_at))
