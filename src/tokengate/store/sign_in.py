"""Browser sessions, invitations, passkeys and WebAuthn challenges (sql/009_sessions_invitations_passkeys.sql).

Secrets (a session cookie's value, an invitation link's) are found by their keyed hash under any server key
(``hashes``: one per key, newest first), so rotating the key signs nobody out. Expiry is decided by the
database's clock in every statement here: sessions and ceremonies are made and checked by the same clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from tokengate.core.browser_sessions import SESSION_PREFIX
from tokengate.core.policy import USER, Principal
from tokengate.store import Executor
from tokengate.store.grants import grants_from_document

SESSION_COLUMNS = (
    "id, account_id, user_id, method, created_at, last_seen_at, idle_expires_at, absolute_expires_at, client_addr, "
    "user_agent, ended_at, ended_reason"
)


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    account_id: str
    user_id: str
    method: str
    created_at: datetime
    last_seen_at: datetime
    idle_expires_at: datetime
    absolute_expires_at: datetime
    client_addr: str | None
    user_agent: str | None
    ended_at: datetime | None
    ended_reason: str | None


INSERT_SESSION = (
    """
INSERT INTO sessions (id, secret_hash, account_id, user_id, method, passkey_id, idle_expires_at, absolute_expires_at,
                      client_addr, user_agent)
VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7), now() + make_interval(secs => $8), $9, $10)
RETURNING """
    + SESSION_COLUMNS
)

# A use of a live session moves its idle expiry on (never past its absolute one) and reads, in the same statement,
# everything the user's principal needs: the user's license and grants, the account, its projects. A deactivated
# user's session does not match.
USE_SESSION = """
UPDATE sessions s
   SET last_seen_at = now(), idle_expires_at = least(now() + make_interval(secs => $2), s.absolute_expires_at)
  FROM users u, accounts a
 WHERE s.secret_hash = ANY($1::bytea[]) AND s.ended_at IS NULL
   AND s.idle_expires_at > now() AND s.absolute_expires_at > now()
   AND u.id = s.user_id AND u.state = 'active' AND a.id = s.account_id
RETURNING s.id, s.account_id, s.user_id, s.created_at, a.name AS account_name, a.plan AS account_plan, u.license,
       ARRAY(SELECT p.id FROM projects p WHERE p.account_id = s.account_id) AS project_ids,
       (SELECT json_agg(json_build_array(g.permission_set, g.all_projects, g.project_ids, g.id)
                        ORDER BY g.position, g.id)::text
          FROM grants g WHERE g.user_id = s.user_id) AS grants
"""
SESSIONS_OF_USER = (
    "SELECT "
    + SESSION_COLUMNS
    + """ FROM sessions WHERE user_id = $1 AND ended_at IS NULL AND idle_expires_at > now()
   AND absolute_expires_at > now() ORDER BY created_at, id"""
)
END_SESSION = (
    "UPDATE sessions SET ended_at = now(), ended_reason = $3 WHERE user_id = $1 AND id = $2 AND ended_at IS NULL "
    "RETURNING " + SESSION_COLUMNS
)
END_SESSION_BY_SECRET = (
    "UPDATE sessions SET ended_at = now(), ended_reason = $2 WHERE secret_hash = ANY($1::bytea[]) AND ended_at IS NULL "
    "RETURNING " + SESSION_COLUMNS
)
END_SESSIONS_OF_USER = (
    "UPDATE sessions SET ended_at = now(), ended_reason = $2 WHERE user_id = $1 AND ended_at IS NULL "
    "AND idle_expires_at > now() AND absolute_expires_at > now() RETURNING id"
)


async def insert_session(
    db: Executor,
    session_id: str,
    secret_hash: bytes,
    account_id: str,
    user_id: str,
    method: str,
    passkey_id: str | None,
    idle_seconds: float,
    absolute_seconds: float,
    client_addr: str | None,
    user_agent: str | None,
) -> SessionRow:
    row = await db.fetchrow(
        INSERT_SESSION,
        session_id,
        secret_hash,
        account_id,
        user_id,
        method,
        passkey_id,
        min(idle_seconds, absolute_seconds),
        absolute_seconds,
        client_addr,
        user_agent,
    )
    return SessionRow(**dict(row))


async def use_session(db: Executor, hashes: list[bytes], idle_seconds: float) -> Principal | None:
    """The principal of the live session whose secret has one of ``hashes``, its idle expiry moved on; None when
    there is none (unknown, ended, idle or past its absolute timeout, or its user deactivated)."""
    row = await db.fetchrow(USE_SESSION, hashes, idle_seconds)
    if row is None:
        return None
    return Principal(
        kind=USER,
        token_id=row["id"],
        display_prefix=SESSION_PREFIX,
        account_id=row["account_id"],
        account_name=row["account_name"],
        account_plan=row["account_plan"],
        user_id=row["user_id"],
        license=row["license"],
        grants=grants_from_document(row["grants"]),
        project_ids=frozenset(row["project_ids"]),
        created_at=row["created_at"],
        signed_in_at=row["created_at"],
    )


async def sessions_of_user(db: Executor, user_id: str) -> list[SessionRow]:
    """The user's live sessions, oldest first."""
    return [SessionRow(**dict(row)) for row in await db.fetch(SESSIONS_OF_USER, user_id)]


async def end_session(db: Executor, user_id: str, session_id: str, reason: str) -> SessionRow | None:
    row = await db.fetchrow(END_SESSION, user_id, session_id, reason)
    return SessionRow(**dict(row)) if row else None


async def end_session_by_secret(db: Executor, hashes: list[bytes], reason: str) -> SessionRow | None:
    row = await db.fetchrow(END_SESSION_BY_SECRET, hashes, reason)
    return SessionRow(**dict(row)) if row else None


async def end_sessions_of_user(db: Executor, user_id: str, reason: str) -> list[str]:
    """End every live session of the user; the ids of those ended."""
    return [row["id"] for row in await db.fetch(END_SESSIONS_OF_USER, user_id, reason)]


# Invitations


@dataclass(frozen=True, slots=True)
class InvitationRow:
    id: str
    account_id: str
    user_id: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


INVITATION_COLUMNS = "id, account_id, user_id, created_by, created_at, expires_at, used_at, revoked_at"
INSERT_INVITATION = (
    "INSERT INTO invitations (id, secret_hash, account_id, user_id, created_by, expires_at) "
    "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING " + INVITATION_COLUMNS
)
REVOKE_INVITATIONS_OF_USER = (
    "UPDATE invitations SET revoked_at = now() WHERE user_id = $1 AND used_at IS NULL AND revoked_at IS NULL "
    "AND expires_at > now() RETURNING id"
)
# The invitation a link names, whatever its state: the caller says why one that cannot be used is refused.
INVITATION_BY_SECRET = (
    "SELECT "
    + INVITATION_COLUMNS
    + ", (used_at IS NULL AND revoked_at IS NULL AND expires_at > now()) AS usable FROM invitations "
    "WHERE secret_hash = ANY($1::bytea[])"
)
# Used once: of two ceremonies finishing at once, one gets the row back.
USE_INVITATION = (
    "UPDATE invitations SET used_at = now() WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL "
    "AND expires_at > now() RETURNING " + INVITATION_COLUMNS
)


async def insert_invitation(
    db: Executor, invitation_id: str, secret_hash: bytes, account_id: str, user_id: str, created_by: str, seconds: float
) -> InvitationRow:
    row = await db.fetchrow(INSERT_INVITATION, invitation_id, secret_hash, account_id, user_id, created_by, seconds)
    return InvitationRow(**dict(row))


async def revoke_invitations_of_user(db: Executor, user_id: str) -> list[str]:
    return [row["id"] for row in await db.fetch(REVOKE_INVITATIONS_OF_USER, user_id)]


async def invitation_by_secret(db: Executor, hashes: list[bytes]) -> tuple[InvitationRow, bool] | None:
    """The invitation and whether it can be used now (not used, revoked nor expired)."""
    row = await db.fetchrow(INVITATION_BY_SECRET, hashes)
    if row is None:
        return None
    values = dict(row)
    usable = bool(values.pop("usable"))
    return InvitationRow(**values), usable


async def use_invitation(db: Executor, invitation_id: str) -> InvitationRow | None:
    row = await db.fetchrow(USE_INVITATION, invitation_id)
    return InvitationRow(**dict(row)) if row else None


# Passkeys


@dataclass(frozen=True, slots=True)
class PasskeyRow:
    id: str
    account_id: str
    user_id: str
    credential_id: bytes
    public_key: bytes
    sign_count: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def __repr__(self) -> str:
        return f"PasskeyRow(id={self.id!r}, user_id={self.user_id!r})"


PASSKEY_COLUMNS = "id, account_id, user_id, credential_id, public_key, sign_count, created_at, last_used_at, revoked_at"
INSERT_PASSKEY = (
    "INSERT INTO passkeys (id, account_id, user_id, credential_id, public_key, sign_count, invitation_id) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING " + PASSKEY_COLUMNS
)
REVOKE_PASSKEYS_OF_USER = (
    "UPDATE passkeys SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING id"
)
# The live passkey with this credential id, locked: two sign-ins with it are checked one after the other.
PASSKEY_FOR_SIGN_IN = (
    "SELECT "
    + ", ".join("p." + column.strip() for column in PASSKEY_COLUMNS.split(","))
    + " FROM passkeys p JOIN users u ON u.id = p.user_id"
    " WHERE p.credential_id = $1 AND p.revoked_at IS NULL AND u.state = 'active' FOR UPDATE OF p"
)
PASSKEY_USED = "UPDATE passkeys SET sign_count = $2, last_used_at = now() WHERE id = $1"
PASSKEYS_OF_USER = (
    "SELECT " + PASSKEY_COLUMNS + " FROM passkeys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id"
)


class DuplicatePasskey(Exception):
    """That credential id is registered already."""


async def insert_passkey(
    db: Executor,
    passkey_id: str,
    account_id: str,
    user_id: str,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    invitation_id: str | None,
) -> PasskeyRow:
    try:
        row = await db.fetchrow(
            INSERT_PASSKEY, passkey_id, account_id, user_id, credential_id, public_key, sign_count, invitation_id
        )
    except asyncpg.UniqueViolationError:
        raise DuplicatePasskey from None
    return PasskeyRow(**dict(row))


async def revoke_passkeys_of_user(db: Executor, user_id: str) -> list[str]:
    return [row["id"] for row in await db.fetch(REVOKE_PASSKEYS_OF_USER, user_id)]


async def passkey_for_sign_in(db: Executor, credential_id: bytes) -> PasskeyRow | None:
    row = await db.fetchrow(PASSKEY_FOR_SIGN_IN, credential_id)
    return PasskeyRow(**dict(row)) if row else None


async def passkey_used(db: Executor, passkey_id: str, sign_count: int) -> None:
    await db.execute(PASSKEY_USED, passkey_id, sign_count)


async def passkeys_of_user(db: Executor, user_id: str) -> list[PasskeyRow]:
    return [PasskeyRow(**dict(row)) for row in await db.fetch(PASSKEYS_OF_USER, user_id)]


# WebAuthn challenges

INSERT_CHALLENGE = (
    "INSERT INTO webauthn_challenges (id, kind, challenge, invitation_id, expires_at) "
    "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))"
)
# Single use: the first verification of a ceremony takes its challenge; a replay finds it used.
TAKE_CHALLENGE = (
    "UPDATE webauthn_challenges SET used_at = now() WHERE id = $1 AND kind = $2 AND used_at IS NULL "
    "AND expires_at > now() RETURNING challenge, invitation_id"
)
FORGET_OLD_CHALLENGES = "DELETE FROM webauthn_challenges WHERE expires_at < now() - interval '1 day'"


async def insert_challenge(
    db: Executor, ceremony_id: str, kind: str, challenge: bytes, invitation_id: str | None, seconds: float
) -> None:
    await db.execute(INSERT_CHALLENGE, ceremony_id, kind, challenge, invitation_id, seconds)


async def take_challenge(db: Executor, ceremony_id: str, kind: str) -> tuple[bytes, str | None] | None:
    """The ceremony's challenge (and invitation), once; None when unknown, used or expired."""
    row = await db.fetchrow(TAKE_CHALLENGE, ceremony_id, kind)
    return (bytes(row["challenge"]), row["invitation_id"]) if row else None


async def forget_old_challenges(db: Executor) -> None:
    await db.execute(FORGET_OLD_CHALLENGES)
