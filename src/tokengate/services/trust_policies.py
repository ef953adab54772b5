"""Trust policies (keyless CI, docs/keyless-ci.md): create, update, delete, list; and the exchange of a verified
workload token for a short-lived tokengate token.

Managing policies is managing tokens: SERVICE_TOKENS:WRITE and, for a user, the Developer license
(``require_token_admin``); the grants are checked as a service token's (catalog, projects, plan), and a token
that expires may not create a policy that gives power (its tokens would outlive it: ``require_lifetime_bound``).
A change or a deletion revokes every token exchanged under the policy, at once on every instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from tokengate.core import global_ids, tokens
from tokengate.core import trust_policies as rules
from tokengate.core.errors import NotFound
from tokengate.core.invalidations import AccountChanged, TokenChanged
from tokengate.core.lifetimes import require_lifetime_bound
from tokengate.core.policy import SERVICE_TOKEN, Grant, gives_account_admin, require_account, require_token_admin
from tokengate.core.validation import checked_name
from tokengate.services.service_tokens import checked_grants
from tokengate.services.unit_of_work import Actor, Backend, UnitOfWork
from tokengate.store import grants as grant_store
from tokengate.store import tokens as token_store
from tokengate.store import trust_policies as store
from tokengate.store.trust_policies import TrustPolicyRow

TRUST_POLICY: Final = "trust policy"
ID_PREFIX: Final = "tpl"
# Past this many tokens revoked at once, one notice for the account instead of one per token.
MAX_TOKEN_NOTICES: Final = 20
EXCHANGE_SOURCE: Final = "token_exchange"


@dataclass(frozen=True)
class ExchangedToken:
    token_id: str
    text: str
    expires_at: datetime
    policy: TrustPolicyRow

    def __repr__(self) -> str:  # never print the secret
        return f"ExchangedToken(id={self.token_id!r})"


def described(row: TrustPolicyRow) -> dict[str, object]:
    """What a policy says, as the audit log and the command line show it."""
    return {
        "name": row.name,
        "issuer": row.issuer,
        "audience": row.audience,
        "subject": row.subject,
        "conditions": dict(row.conditions),
        "grants": [grant.permission_set for grant in row.grants],
        "max_lifetime_seconds": row.max_lifetime_seconds,
    }


async def _checked(work: UnitOfWork, account_id: str, grants: Sequence[Grant]) -> tuple[Grant, ...]:
    checked = await checked_grants(work, account_id, grants)
    # The policy makes tokens for as long as it exists: from an expiring token, only what gives no power.
    require_lifetime_bound(work.actor.principal, SERVICE_TOKEN, None, (), checked)
    return checked


def _require_recent_sign_in(work: UnitOfWork, grants: Sequence[Grant]) -> None:
    """A policy that gives ACCOUNT_ADMIN gives it to every token exchanged under it: saving one (whatever changed,
    its grants or whom it trusts) asks a browser session for a recent sign-in."""
    if gives_account_admin((), grants):
        work.actor.require_recent_sign_in()


async def create(
    backend: Backend,
    actor: Actor,
    account_id: str,
    name: str,
    binding: rules.Binding,
    grants: Sequence[Grant],
    max_lifetime_seconds: int | None = None,
    allow_private: bool = False,
) -> TrustPolicyRow:
    require_account(actor.principal, account_id)
    require_token_admin(actor.principal)
    name = checked_name(name)
    binding = rules.checked_binding(binding, allow_private)
    lifetime = rules.checked_lifetime(max_lifetime_seconds)
    async with backend.change(actor) as work:
        checked = await _checked(work, account_id, grants)
        _require_recent_sign_in(work, checked)
        row = await store.insert(
            work.conn, tokens.new_id(ID_PREFIX), account_id, name, binding, checked, lifetime, actor.name
        )
        await work.audit(account_id, "trust_policy.created", row.id, **described(row))
    return row


async def _revoke_tokens(work: UnitOfWork, row: TrustPolicyRow) -> int:
    revoked = await store.revoke_tokens(work.conn, row.id)
    if len(revoked) > MAX_TOKEN_NOTICES:
        await work.notify(AccountChanged(row.account_id))
    else:
        for token_id in revoked:
            await work.notify(TokenChanged(token_id))
    return len(revoked)


async def update(
    backend: Backend,
    actor: Actor,
    account_id: str,
    policy_id: str,
    *,
    name: str | None = None,
    binding: rules.Binding | None = None,
    grants: Sequence[Grant] | None = None,
    max_lifetime_seconds: int | None = None,
    allow_private: bool = False,
) -> TrustPolicyRow:
    """Change what the policy trusts or gives; every token exchanged under it is revoked at once."""
    require_account(actor.principal, account_id)
    require_token_admin(actor.principal)
    new_name = checked_name(name) if name is not None else None
    new_binding = rules.checked_binding(binding, allow_private) if binding is not None else None
    lifetime = rules.checked_lifetime(max_lifetime_seconds) if max_lifetime_seconds is not None else None
    async with backend.change(actor) as work:
        old = await store.lock(work.conn, account_id, policy_id)
        if old is None:
            raise NotFound(TRUST_POLICY)
        checked = await _checked(work, account_id, grants) if grants is not None else old.grants
        _require_recent_sign_in(work, checked)
        row = await store.update(
            work.conn,
            old.id,
            new_name if new_name is not None else old.name,
            new_binding if new_binding is not None else old.binding,
            checked,
            lifetime if lifetime is not None else old.max_lifetime_seconds,
        )
        revoked = await _revoke_tokens(work, row)
        await work.audit(account_id, "trust_policy.updated", row.id, **described(row), revoked_tokens=revoked)
    return row


async def delete(backend: Backend, actor: Actor, account_id: str, policy_id: str) -> TrustPolicyRow:
    """Remove the policy; every token exchanged under it is revoked at once on every instance."""
    require_account(actor.principal, account_id)
    require_token_admin(actor.principal)
    async with backend.change(actor) as work:
        row = await store.lock(work.conn, account_id, policy_id)
        if row is None:
            raise NotFound(TRUST_POLICY)
        revoked = await _revoke_tokens(work, row)
        await store.delete(work.conn, account_id, policy_id)
        await work.audit(account_id, "trust_policy.deleted", row.id, name=row.name, revoked_tokens=revoked)
    return row


async def get(backend: Backend, account_id: str, policy_id: str) -> TrustPolicyRow:
    row = await store.get(backend.pool, account_id, policy_id)
    if row is None:
        raise NotFound(TRUST_POLICY)
    return row


async def exchange(
    backend: Backend,
    policy: TrustPolicyRow,
    claims: Mapping[str, Any],
    client_addr: str | None,
    now: datetime | None = None,
) -> ExchangedToken | str:
    """A token under ``policy`` for a presented token whose signature, times and claims were verified against it;
    else why not (its jti was exchanged before, or the policy changed meanwhile: the caller audits the refusal).
    Its ``jti`` is remembered until it expires; the new token carries the policy's grants and expires after the
    policy's lifetime."""
    now = now or datetime.now(UTC)
    actor = Actor(f"trust_policy:{policy.id}", EXCHANGE_SOURCE, client_addr)
    presented_expiry = datetime.fromtimestamp(float(claims["exp"]), UTC) + timedelta(seconds=rules.CLOCK_SKEW_SECONDS)
    expires_at = now + timedelta(seconds=policy.max_lifetime_seconds)
    async with backend.change(actor) as work:
        # The policy as it is now, locked: a change that commits first revokes nothing this exchange makes after.
        current = await store.lock(work.conn, policy.account_id, policy.id)
        if current is None or current.updated_at != policy.updated_at:
            return "the policy changed during the exchange"
        if not await store.claim_jti(work.conn, policy.issuer, str(claims["jti"]), presented_expiry, now):
            return "jti replayed"
        issued, record = await token_store.insert_v2(
            work.conn,
            backend.newest_key,
            "exchanged",
            policy.account_id,
            f"{policy.name} (exchanged)"[:255],
            actor.name,
            expires_at=expires_at,
        )
        await work.conn.execute("UPDATE tokens SET trust_policy_id = $2 WHERE id = $1", record.id, policy.id)
        await grant_store.replace_token_grants(work.conn, policy.account_id, record.id, policy.grants)
        await work.audit(
            policy.account_id,
            "trust_policy.token_exchanged",
            policy.id,
            token_id=global_ids.service_token_id(record.id),
            subject=str(claims.get("sub")),
            jti=str(claims["jti"]),
            expires_at=expires_at.isoformat(),
        )
    return ExchangedToken(record.id, issued.text, expires_at, policy)


async def audit_refusal(
    backend: Backend,
    policies: Sequence[TrustPolicyRow],
    reason: str,
    claims: Mapping[str, Any],
    client_addr: str | None,
) -> None:
    """Say in each account whose policy the refused token was meant for (its issuer and audience) why it was
    refused; never the token itself, only its non-secret identifying claims."""
    seen: set[str] = set()
    for policy in policies:
        if policy.account_id in seen:
            continue
        seen.add(policy.account_id)
        actor = Actor(f"trust_policy:{policy.id}", EXCHANGE_SOURCE, client_addr)
        async with backend.change(actor) as work:
            await work.audit(
                policy.account_id,
                "trust_policy.exchange_refused",
                policy.id,
                reason=reason,
                subject=str(claims.get("sub"))[:256] if "sub" in claims else None,
                jti=str(claims.get("jti"))[:256] if "jti" in claims else None,
            )
