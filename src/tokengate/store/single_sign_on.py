"""Single sign-on: an account's provider settings, the (issuer, subject) links to members, and the flows
(sql/012_single_sign_on.sql). Flows expire and are taken once by the database's clock."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokengate.core.single_sign_on import GroupMapping, Settings
from tokengate.store import Executor
from tokengate.store.grants import as_documents, from_documents


@dataclass(frozen=True, slots=True)
class SingleSignOnRow:
    account_id: str
    settings: Settings
    sealed_secret: bytes
    secret_key_id: str
    links_existing_members: bool  # saved by an ACCOUNT_ADMIN: a first sign-in may link a member who exists
    updated_by: str
    created_at: datetime
    updated_at: datetime

    def __repr__(self) -> str:  # the sealed secret is no one's business
        return f"SingleSignOnRow(account_id={self.account_id!r}, issuer={self.settings.issuer!r})"


COLUMNS = (
    "account_id, issuer, client_id, sealed_secret, secret_key_id, email_domains, trust_emails_without_verification, "
    "default_grants::text, group_mappings::text, groups_claim, enforced, sign_in_again_after_seconds, "
    "links_existing_members, updated_by, created_at, updated_at"
)
OF_ACCOUNT = "SELECT " + COLUMNS + " FROM single_sign_on WHERE account_id = $1"
LOCK_OF_ACCOUNT = OF_ACCOUNT + " FOR UPDATE"
UPSERT = (
    """
INSERT INTO single_sign_on (account_id, issuer, client_id, sealed_secret, secret_key_id, email_domains,
    trust_emails_without_verification, default_grants, group_mappings, groups_claim, enforced,
    sign_in_again_after_seconds, links_existing_members, updated_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11, $12, $13, $14)
ON CONFLICT (account_id) DO UPDATE SET issuer = EXCLUDED.issuer, client_id = EXCLUDED.client_id,
    sealed_secret = EXCLUDED.sealed_secret, secret_key_id = EXCLUDED.secret_key_id,
    email_domains = EXCLUDED.email_domains,
    trust_emails_without_verification = EXCLUDED.trust_emails_without_verification,
    default_grants = EXCLUDED.default_grants, group_mappings = EXCLUDED.group_mappings,
    groups_claim = EXCLUDED.groups_claim, enforced = EXCLUDED.enforced,
    sign_in_again_after_seconds = EXCLUDED.sign_in_again_after_seconds,
    links_existing_members = EXCLUDED.links_existing_members, updated_by = EXCLUDED.updated_by,
    updated_at = now()
RETURNING """
    + COLUMNS
)
DELETE = "DELETE FROM single_sign_on WHERE account_id = $1 RETURNING " + COLUMNS
# A lowered sign_in_again_after_seconds holds for the SSO sessions already open too.
CAP_SESSIONS = """
UPDATE sessions SET absolute_expires_at = created_at + make_interval(secs => $2),
       idle_expires_at = least(idle_expires_at, created_at + make_interval(secs => $2))
 WHERE account_id = $1 AND method = 'sso' AND ended_at IS NULL
   AND absolute_expires_at > created_at + make_interval(secs => $2)
"""


def _row(record: Any) -> SingleSignOnRow:
    mappings = tuple(
        GroupMapping(entry["group"], from_documents(entry["grants"])) for entry in json.loads(record["group_mappings"])
    )
    settings = Settings(
        issuer=record["issuer"],
        client_id=record["client_id"],
        email_domains=tuple(record["email_domains"]),
        trust_emails_without_verification=record["trust_emails_without_verification"],
        default_grants=from_documents(json.loads(record["default_grants"])),
        groups_claim=record["groups_claim"],
        group_mappings=mappings,
        enforced=record["enforced"],
        sign_in_again_after_seconds=record["sign_in_again_after_seconds"],
    )
    return SingleSignOnRow(
        record["account_id"],
        settings,
        bytes(record["sealed_secret"]),
        record["secret_key_id"],
        record["links_existing_members"],
        record["updated_by"],
        record["created_at"],
        record["updated_at"],
    )


async def of_account(db: Executor, account_id: str, lock: bool = False) -> SingleSignOnRow | None:
    record = await db.fetchrow(LOCK_OF_ACCOUNT if lock else OF_ACCOUNT, account_id)
    return _row(record) if record else None


async def save(
    db: Executor,
    account_id: str,
    settings: Settings,
    sealed_secret: bytes,
    secret_key_id: str,
    links_existing_members: bool,
    updated_by: str,
) -> SingleSignOnRow:
    mappings = [{"group": m.group, "grants": as_documents(m.grants)} for m in settings.group_mappings]
    record = await db.fetchrow(
        UPSERT,
        account_id,
        settings.issuer,
        settings.client_id,
        sealed_secret,
        secret_key_id,
        list(settings.email_domains),
        settings.trust_emails_without_verification,
        json.dumps(as_documents(settings.default_grants)),
        json.dumps(mappings),
        settings.groups_claim,
        settings.enforced,
        settings.sign_in_again_after_seconds,
        links_existing_members,
        updated_by,
    )
    await db.execute(CAP_SESSIONS, account_id, settings.sign_in_again_after_seconds)
    return _row(record)


async def delete(db: Executor, account_id: str) -> SingleSignOnRow | None:
    record = await db.fetchrow(DELETE, account_id)
    return _row(record) if record else None


# Links

LINKED_USER = """
SELECT user_id FROM single_sign_on_links WHERE account_id = $1 AND issuer = $2 AND subject = $3
"""
INSERT_LINK = "INSERT INTO single_sign_on_links (account_id, issuer, subject, user_id) VALUES ($1, $2, $3, $4)"
SUBJECT_OF_USER = "SELECT subject FROM single_sign_on_links WHERE account_id = $1 AND issuer = $2 AND user_id = $3"
LINK_USED = (
    "UPDATE single_sign_on_links SET last_sign_in_at = now() WHERE account_id = $1 AND issuer = $2 AND subject = $3"
)


async def linked_user(db: Executor, account_id: str, issuer: str, subject: str) -> str | None:
    value = await db.fetchval(LINKED_USER, account_id, issuer, subject)
    return str(value) if value is not None else None


async def subject_of_user(db: Executor, account_id: str, issuer: str, user_id: str) -> str | None:
    """The subject the member is linked to at this issuer, or None (a member has at most one per issuer)."""
    value = await db.fetchval(SUBJECT_OF_USER, account_id, issuer, user_id)
    return str(value) if value is not None else None


async def link(db: Executor, account_id: str, issuer: str, subject: str, user_id: str) -> None:
    await db.execute(INSERT_LINK, account_id, issuer, subject, user_id)


async def link_used(db: Executor, account_id: str, issuer: str, subject: str) -> None:
    await db.execute(LINK_USED, account_id, issuer, subject)


# Flows


@dataclass(frozen=True, slots=True)
class FlowRow:
    id: str
    account_id: str
    state_hash: bytes
    nonce: str
    code_verifier: str
    redirect_uri: str

    def __repr__(self) -> str:
        return f"FlowRow(id={self.id!r}, account_id={self.account_id!r})"


FLOW_COLUMNS = "id, account_id, state_hash, nonce, code_verifier, redirect_uri"
INSERT_FLOW = (
    "INSERT INTO single_sign_on_flows (id, account_id, state_hash, browser_hash, nonce, code_verifier, redirect_uri, "
    "expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))"
)
# Taken once: the first callback of the flow's browser takes it, whatever its state says; a replay finds it used.
TAKE_FLOW = (
    "UPDATE single_sign_on_flows SET used_at = now() WHERE browser_hash = ANY($1::bytea[]) AND used_at IS NULL "
    "AND expires_at > now() RETURNING " + FLOW_COLUMNS
)
# The flow a state names, whatever the browser (for the refusal's audit: which account it was meant for).
FLOW_BY_STATE = "SELECT account_id, used_at IS NOT NULL AS used FROM single_sign_on_flows WHERE state_hash = ANY($1)"
FORGET_OLD_FLOWS = "DELETE FROM single_sign_on_flows WHERE expires_at < now() - interval '1 day'"


async def insert_flow(
    db: Executor,
    flow_id: str,
    account_id: str,
    state_hash: bytes,
    browser_hash: bytes,
    nonce: str,
    code_verifier: str,
    redirect_uri: str,
    seconds: float,
) -> None:
    await db.execute(
        INSERT_FLOW, flow_id, account_id, state_hash, browser_hash, nonce, code_verifier, redirect_uri, seconds
    )


async def take_flow(db: Executor, browser_hashes: list[bytes]) -> FlowRow | None:
    record = await db.fetchrow(TAKE_FLOW, browser_hashes)
    if record is None:
        return None
    values = dict(record)
    values["state_hash"] = bytes(values["state_hash"])
    return FlowRow(**values)


async def flow_by_state(db: Executor, state_hashes: list[bytes]) -> tuple[str, bool] | None:
    record = await db.fetchrow(FLOW_BY_STATE, state_hashes)
    return (record["account_id"], bool(record["used"])) if record else None


async def forget_old_flows(db: Executor) -> None:
    await db.execute(FORGET_OLD_FLOWS)
