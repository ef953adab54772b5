"""Single sign-on with an OpenID Connect provider (docs/sign-in.md "Single sign-on"): the account's settings and
the sign-in itself, one function per change.

An account admin configures the provider (``configure``; ``remove``). A sign-in starts at ``start``: a flow row
holding the keyed hash of its ``state``, the keyed hash of the browser's flow cookie, the ``nonce`` and the PKCE
verifier, expiring and taken once; the browser is sent to the provider. ``finish`` takes the flow of the
browser's cookie, checks the state, exchanges the code at the provider's token endpoint (through the webhooks'
SSRF guard), verifies the ID token (RS256/ES256 only, the provider's JWKS, iss, aud, azp, exp, iat, nonce), and
signs in the member linked to (issuer, subject), or makes one just in time under the e-mail rules of
core/single_sign_on.py. Every refusal is audited ``sign_in.refused`` with its reason and answers ``Refused``.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import quote

import asyncpg
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from tokengate.core import single_sign_on as rules
from tokengate.core import tokens
from tokengate.core.browser_sessions import secret_hashes
from tokengate.core.errors import Forbidden, InvalidInput, NotFound
from tokengate.core.federation import KeysUnavailable, ProviderDocuments
from tokengate.core.invalidations import UserChanged
from tokengate.core.policy import (
    ACCOUNT_ADMIN,
    Grant,
    Principal,
    check_grants,
    holds_account_admin,
    require,
    require_account,
    require_change,
)
from tokengate.core.webhook_events import seal_secret, unseal_secret
from tokengate.services.sign_in import SOURCE, Browser, SignedIn, start_session, user_actor
from tokengate.services.unit_of_work import Actor, Backend, UnitOfWork
from tokengate.services.users import account_grants
from tokengate.store import Executor
from tokengate.store import grants as grant_store
from tokengate.store import projects as project_store
from tokengate.store import single_sign_on as store
from tokengate.store import users as user_store
from tokengate.store.single_sign_on import SingleSignOnRow
from tokengate.store.users import UserRow

SINGLE_SIGN_ON: Final = "single sign-on"
JIT_LICENSE: Final = "DEVELOPER"
ADMIN_GRANT: Final = f"only an {ACCOUNT_ADMIN} may map a group or the default grants to {ACCOUNT_ADMIN}"

# What the person sees for each kind of refusal (never a secret, never the provider's words beyond its error code).
FLOW_REFUSED: Final = (
    "This sign-in attempt is unknown, expired or already used, or it was started in another browser. "
    "Start again from the sign-in page."
)
NOT_VERIFIED: Final = (
    "The identity provider's answer could not be verified, so you were not signed in. Start again; if it happens "
    "again, tell an account administrator."
)
ALREADY_LINKED: Final = (  # reason email_taken, for a member linked to another subject of the same issuer
    "The member with your e-mail address is already connected to another identity at this identity provider, so "
    "it cannot be connected to yours. Ask an account administrator."
)
MESSAGES: Final[dict[str, str]] = {
    "email_not_verified": "Your identity provider does not say that your e-mail address is verified, so no "
    "membership can be made from it. Verify the address at your identity provider, or ask an account administrator.",
    "email_domain_not_allowed": "Your e-mail address is not of a domain this account lets sign in through single "
    "sign-on. Ask an account administrator.",
    "no_email": "Your identity provider sent no e-mail address, so no membership can be made. Ask an account "
    "administrator to let the provider share your e-mail address.",
    "user_deactivated": "Your membership of this account is deactivated. Ask an account administrator.",
    "email_taken": "A member with your e-mail address already exists but was not made through this identity "
    "provider, and a membership is never taken over by e-mail alone. Ask an account administrator.",
    "provider_error": "The identity provider did not sign you in. Start again from the sign-in page.",
    "sso_not_configured": "Single sign-on is not configured for this account (any more).",
    "provider_unreachable": "The identity provider could not be reached. Try again shortly.",
}


class Refused(Exception):
    """A sign-in through the provider is refused: ``reason`` for the audit log, ``message`` for the person,
    ``status`` for the page."""

    def __init__(self, reason: str, message: str, status: int):
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Started:
    """Where the browser goes next, and the flow cookie's value (its only copy)."""

    location: str
    browser_secret: str

    def __repr__(self) -> str:
        return "Started(...)"


# Settings


def require_provider_admin(principal: Principal | None, account_id: str, access: str) -> None:
    require_account(principal, account_id)
    require(principal, "AUTH_PROVIDER", access)


async def get(db: Executor, actor: Actor, account_id: str) -> SingleSignOnRow | None:
    """The account's single sign-on settings (AUTH_PROVIDER:READ); None when not configured."""
    require_provider_admin(actor.principal, account_id, "READ")
    return await store.of_account(db, account_id)


async def _checked_grants(work: UnitOfWork, account_id: str, settings: rules.Settings) -> rules.Settings:
    """Every grant normalised against the account's projects, and each one the saver could give to a member
    (the no-escalation rule of createUser); ACCOUNT_ADMIN only by an ACCOUNT_ADMIN."""
    principal = work.actor.principal
    defaults = await account_grants(work, account_id, settings.default_grants)
    mappings = []
    for mapping in settings.group_mappings:
        mappings.append(rules.GroupMapping(mapping.group, await account_grants(work, account_id, mapping.grants)))
    settings = replace(settings, default_grants=defaults, group_mappings=tuple(mappings))
    every = rules.every_grant(settings)
    if principal is not None:
        if any(grant.permission_set == ACCOUNT_ADMIN for grant in every) and not holds_account_admin(principal):
            raise Forbidden(ADMIN_GRANT)
        require_change(principal, (), rules.merged(every))
    return settings


def links_existing_members(principal: Principal | None) -> bool:
    """Whether a configuration saved by ``principal`` may link members who exist already at their first sign-in:
    only an ACCOUNT_ADMIN's (who could invite, i.e. sign in as, any member anyway: ``require_change`` lets them
    take over anything) or the operator's. Anyone else holding AUTH_PROVIDER:WRITE (a SECURITY_ADMIN) could point
    the account at a provider they control and sign in as an admin, so their save links nobody."""
    return principal is None or holds_account_admin(principal)


async def configure(
    backend: Backend,
    actor: Actor,
    account_id: str,
    settings: rules.Settings,
    client_secret: str | None,
    allow_private: bool,
) -> SingleSignOnRow:
    """Save the account's provider (AUTH_PROVIDER:WRITE): the client secret is sealed under the server key and
    never read back; without one the stored one is kept (required the first time). Whether it links existing
    members is decided anew at every save by who saves it (``links_existing_members``). Audited
    ``sso.configured``."""
    require_provider_admin(actor.principal, account_id, "WRITE")
    actor.require_recent_sign_in()  # who signs everyone in: a stale browser session may not change it
    settings = rules.checked_settings(settings, allow_private)
    async with backend.change(actor) as work:
        await work.account(account_id)
        current = await store.of_account(work.conn, account_id, lock=True)
        secret = rules.checked_client_secret(client_secret, current is None)
        settings = await _checked_grants(work, account_id, settings)
        if secret is not None:
            sealed, key_id = seal_secret(secret, backend.newest_key)
        else:
            assert current is not None
            sealed, key_id = current.sealed_secret, current.secret_key_id
        links = links_existing_members(actor.principal)
        row = await store.save(work.conn, account_id, settings, sealed, key_id, links, actor.name)
        await work.audit(
            account_id,
            "sso.configured",
            account_id,
            issuer=settings.issuer,
            client_id=settings.client_id,
            email_domains=list(settings.email_domains),
            trust_emails_without_verification=settings.trust_emails_without_verification,
            default_grants=[g.permission_set for g in settings.default_grants],
            groups=[m.group for m in settings.group_mappings],
            enforced=settings.enforced,
            sign_in_again_after_seconds=settings.sign_in_again_after_seconds,
            client_secret_changed=secret is not None,
            links_existing_members=links,
        )
        return row


async def remove(backend: Backend, actor: Actor, account_id: str) -> SingleSignOnRow:
    """Remove the account's provider (AUTH_PROVIDER:WRITE; the operator's ``tokengate remove-sso``): nobody signs
    in through it any more, and enforcement ends with it. Links are kept, so the same provider configured again
    signs in the same members. Audited ``sso.removed``."""
    require_provider_admin(actor.principal, account_id, "WRITE")
    actor.require_recent_sign_in()  # who signs everyone in: a stale browser session may not change it
    async with backend.change(actor) as work:
        removed = await store.delete(work.conn, account_id)
        if removed is None:
            raise NotFound(SINGLE_SIGN_ON)
        await work.audit(account_id, "sso.removed", account_id, issuer=removed.settings.issuer)
        return removed


# The sign-in


def _state_hashes(keys: tuple[bytes, ...], state: str | None) -> list[bytes] | None:
    return secret_hashes(keys, state) if state else None


async def start(
    backend: Backend, issuer_keys: ProviderDocuments, account_id: str, redirect_uri: str, allow_private: bool
) -> Started:
    """Begin a sign-in: the flow stored (state hashed, nonce, PKCE verifier; 10 minutes; once) and the
    provider's authorization URL. ``NotFound`` without settings; ``Refused`` when the provider is unreachable."""
    row = await store.of_account(backend.pool, account_id) if 0 < len(account_id) <= 100 else None
    if row is None:
        raise NotFound(SINGLE_SIGN_ON)
    settings = row.settings
    try:
        metadata = await issuer_keys.metadata(settings.issuer)
        endpoint = rules.checked_endpoint(metadata, "authorization_endpoint", allow_private)
    except (KeysUnavailable, InvalidInput) as problem:
        raise Refused(f"provider_unreachable: {problem}", MESSAGES["provider_unreachable"], 502) from None
    state, nonce, verifier = generate_token(43), generate_token(43), generate_token(64)
    browser_secret = secrets.token_urlsafe(32)
    await store.insert_flow(
        backend.pool,
        tokens.new_id("sso"),
        account_id,
        tokens.hash_token(state, backend.newest_key),
        tokens.hash_token(browser_secret, backend.newest_key),
        nonce,
        verifier,
        redirect_uri,
        rules.FLOW_SECONDS,
    )
    if secrets.randbelow(64) == 0:  # now and then, flows of yesterday are forgotten
        await store.forget_old_flows(backend.pool)
    location = rules.authorization_url(
        endpoint,
        settings.client_id,
        redirect_uri,
        state,
        nonce,
        create_s256_code_challenge(verifier),
        rules.scope(metadata),
    )
    return Started(location, browser_secret)


async def audit_refusal(
    backend: Backend,
    account_id: str | None,
    target_id: str | None,
    reason: str,
    client_addr: str | None,
    **details: Any,
) -> None:
    if account_id is None:
        return
    actor = Actor("anonymous", SOURCE, client_addr)
    async with backend.change(actor) as work:
        await work.audit(account_id, "sign_in.refused", target_id, method="sso", reason=reason, **details)


async def finish(
    backend: Backend,
    issuer_keys: ProviderDocuments,
    browser_secret: str | None,
    params: dict[str, str],
    browser: Browser,
    allow_private: bool,
) -> SignedIn:
    """The provider sent the browser back (``code`` and ``state``, or ``error``): a session, or ``Refused``
    (audited in the account the flow was for)."""
    keys = backend.keys
    state_hashes = _state_hashes(keys, params.get("state"))
    browser_hashes = secret_hashes(keys, browser_secret) if browser_secret else None
    flow = await store.take_flow(backend.pool, browser_hashes) if browser_hashes else None
    if flow is None:
        meant = await store.flow_by_state(backend.pool, state_hashes) if state_hashes else None
        reason = "no_flow_cookie" if browser_hashes is None else "flow_unknown_used_or_expired"
        if meant is not None and meant[1]:
            reason = "flow_already_used"
        await audit_refusal(backend, meant[0] if meant else None, None, reason, browser.client_addr)
        raise Refused(reason, FLOW_REFUSED, 400)
    if state_hashes is None or not any(hmac.compare_digest(flow.state_hash, h) for h in state_hashes):
        await audit_refusal(backend, flow.account_id, flow.id, "state_mismatch", browser.client_addr)
        raise Refused("state_mismatch", FLOW_REFUSED, 400)
    try:
        return await _signed_in(backend, issuer_keys, flow, params, browser, allow_private)
    except Refused as refused:
        await audit_refusal(backend, flow.account_id, flow.id, refused.reason, browser.client_addr)
        raise


async def _signed_in(
    backend: Backend,
    issuer_keys: ProviderDocuments,
    flow: store.FlowRow,
    params: dict[str, str],
    browser: Browser,
    allow_private: bool,
) -> SignedIn:
    if "error" in params or not params.get("code"):
        raise Refused("provider_error", MESSAGES["provider_error"], 400)
    row = await store.of_account(backend.pool, flow.account_id)
    if row is None:
        raise Refused("sso_not_configured", MESSAGES["sso_not_configured"], 400)
    settings = row.settings
    id_token = await _exchange_code(backend, issuer_keys, row, flow, params["code"], allow_private)
    claims = await _verified_claims(issuer_keys, settings, id_token)
    problem = rules.claims_problem(claims, settings.issuer, settings.client_id, flow.nonce, time.time())
    if problem is not None:
        raise Refused(problem, NOT_VERIFIED, 401)
    return await _member_session(backend, row, claims, browser)


async def _exchange_code(
    backend: Backend,
    issuer_keys: ProviderDocuments,
    row: SingleSignOnRow,
    flow: store.FlowRow,
    code: str,
    allow_private: bool,
) -> str:
    """The ID token the provider's token endpoint answers for the code (client_secret_basic, or _post)."""
    settings = row.settings
    secret = unseal_secret(row.sealed_secret, row.secret_key_id, backend.keys)
    if secret is None:
        raise Refused("client_secret_unreadable", MESSAGES["provider_unreachable"], 502)
    try:
        metadata = await issuer_keys.metadata(settings.issuer)
        endpoint = rules.checked_endpoint(metadata, "token_endpoint", allow_private)
    except (KeysUnavailable, InvalidInput) as problem:
        raise Refused(f"provider_unreachable: {problem}", MESSAGES["provider_unreachable"], 502) from None
    form = {
        "grant_type": "authorization_code",
        "code": code[:2048],
        "redirect_uri": flow.redirect_uri,
        "code_verifier": flow.code_verifier,
    }
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if rules.token_endpoint_auth(metadata) == "client_secret_post":
        form.update(client_id=settings.client_id, client_secret=secret)
    else:
        headers["Authorization"] = _basic(settings.client_id, secret)
    try:
        status, answer = await issuer_keys.post_form(endpoint, form, headers)
    except KeysUnavailable as problem:
        raise Refused(f"token_endpoint_failed: {problem}", MESSAGES["provider_unreachable"], 502) from None
    if status != 200 or not isinstance(answer, dict):
        error = answer.get("error") if isinstance(answer, dict) else None
        shown = str(error)[:40] if isinstance(error, str) else f"HTTP {status}"
        raise Refused(f"code_refused ({shown})", NOT_VERIFIED, 401)
    id_token = answer.get("id_token")
    if not isinstance(id_token, str) or not id_token or len(id_token) > rules.MAX_ID_TOKEN_LENGTH:
        raise Refused("no_id_token", NOT_VERIFIED, 401)
    return id_token


def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 2.3.1: each part form-encoded, then base64."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


async def _verified_claims(issuer_keys: ProviderDocuments, settings: rules.Settings, id_token: str) -> dict[str, Any]:
    """The ID token's claims once its signature is verified with the provider's key, by an allowed algorithm."""
    try:
        header = extract_compact(id_token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError, TypeError):
        raise Refused("id_token_malformed", NOT_VERIFIED, 401) from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in rules.ALGORITHMS:
        raise Refused(f"algorithm_not_allowed ({str(alg)[:16]})", NOT_VERIFIED, 401)
    if not isinstance(kid, str) or not kid:
        raise Refused("no_kid", NOT_VERIFIED, 401)
    try:
        keys = await issuer_keys.keys_for(settings.issuer, kid)
    except KeysUnavailable as problem:
        raise Refused(f"no_key: {problem}", NOT_VERIFIED, 401) from None
    try:
        claims = dict(jwt.decode(id_token, keys, algorithms=list(rules.ALGORITHMS)).claims)
    except (JoseError, ValueError, TypeError) as invalid:
        raise Refused(f"bad_signature ({type(invalid).__name__})", NOT_VERIFIED, 401) from None
    return claims


async def _usable_grants(conn: Executor, account_id: str, grants: list[Grant]) -> list[Grant]:
    """The grants on the account's projects as they are now (a mapped project deleted since is left out)."""
    project_ids = set(await project_store.project_ids_of_account(conn, account_id))
    usable = []
    for grant in grants:
        if grant.all_projects:
            usable.append(grant)
            continue
        kept = tuple(p for p in grant.project_ids if p in project_ids)
        if kept:
            usable.append(Grant(grant.permission_set, False, kept))
    return list(check_grants(usable, project_ids)) if usable else []


async def _member_session(backend: Backend, row: SingleSignOnRow, claims: dict[str, Any], browser: Browser) -> SignedIn:
    """The member linked to (issuer, subject); else, for an e-mail the just-in-time rule accepts, the member who
    has it (linked now, if the configuration links existing members) or one made just in time; then a session
    capped by the account's sign_in_again_after_seconds."""
    settings, account_id = row.settings, row.account_id
    subject = str(claims["sub"])
    groups = rules.groups_of(claims, settings.groups_claim)
    timeouts = browser.timeouts
    capped = replace(
        browser,
        timeouts=replace(
            timeouts, session_absolute=min(timeouts.session_absolute, settings.sign_in_again_after_seconds)
        ),
    )
    try:
        async with backend.change(Actor("anonymous", SOURCE, browser.client_addr)) as work:
            conn = work.conn
            user_id = await store.linked_user(conn, account_id, settings.issuer, subject)
            if user_id is not None:
                user = await user_store.lock_user(conn, account_id, user_id)
                if user is None or user.state != "active":
                    raise Refused("user_deactivated", MESSAGES["user_deactivated"], 403)
                work.actor = user_actor(user, browser.client_addr)
                await store.link_used(conn, account_id, settings.issuer, subject)
                await _apply_groups(work, user, settings, groups)
            else:
                refusal = rules.email_refusal(claims, settings)
                if refusal is not None:
                    raise Refused(refusal, MESSAGES[refusal], 403)
                email = rules.email_of(claims)
                assert email is not None
                existing = await user_store.lock_user_by_email(conn, account_id, email)
                if existing is not None:
                    user = await _linked_existing(work, row, existing, subject, groups, browser)
                else:
                    user = await _made_just_in_time(work, account_id, email, settings, groups, browser)
                    await store.link(conn, account_id, settings.issuer, subject, user.id)
                    await work.audit(
                        account_id,
                        "sso.linked",
                        user.id,
                        user_id=user.id,
                        issuer=settings.issuer,
                        existing_member=False,
                    )
            return await start_session(work, backend.keys, user, "sso", None, capped)
    except asyncpg.UniqueViolationError:  # two first sign-ins of one person at once: the other one made it
        raise Refused("concurrent_first_sign_in", FLOW_REFUSED, 409) from None


async def _linked_existing(
    work: UnitOfWork,
    row: SingleSignOnRow,
    user: UserRow,
    subject: str,
    groups: list[str],
    browser: Browser,
) -> UserRow:
    """Link the member who has the (accepted) e-mail to (issuer, subject) and add the grants of their mapped groups
    as a later sign-in would: only when an ACCOUNT_ADMIN saved the configuration, only an active member, and only
    one not linked to another subject of this issuer. Audited ``sso.linked`` with ``existing_member``."""
    settings, account_id = row.settings, row.account_id
    if not row.links_existing_members:  # saved by someone who could not sign in as every member themselves
        raise Refused("email_taken", MESSAGES["email_taken"], 403)
    if user.state != "active":
        raise Refused("user_deactivated", MESSAGES["user_deactivated"], 403)
    linked = await store.subject_of_user(work.conn, account_id, settings.issuer, user.id)
    if linked == subject:  # a concurrent first sign-in of the same person linked it first
        raise Refused("concurrent_first_sign_in", FLOW_REFUSED, 409)
    if linked is not None:
        raise Refused("email_taken", ALREADY_LINKED, 403)
    await store.link(work.conn, account_id, settings.issuer, subject, user.id)
    work.actor = user_actor(user, browser.client_addr)
    await work.audit(account_id, "sso.linked", user.id, user_id=user.id, issuer=settings.issuer, existing_member=True)
    await _apply_groups(work, user, settings, groups)
    return user


async def _made_just_in_time(
    work: UnitOfWork, account_id: str, email: str, settings: rules.Settings, groups: list[str], browser: Browser
) -> UserRow:
    """A new member of the account for this e-mail, with the default grants and those of its mapped groups."""
    conn = work.conn
    grants = await _usable_grants(conn, account_id, rules.mapped_grants(settings, groups))
    try:
        user = await user_store.create_user(conn, tokens.new_id("usr"), account_id, email, JIT_LICENSE)
    except user_store.DuplicateEmail:
        raise Refused("email_taken", MESSAGES["email_taken"], 403) from None
    await grant_store.add_user_grants(conn, account_id, user.id, grants)
    work.actor = user_actor(user, browser.client_addr)
    await work.audit(
        account_id,
        "user.created",
        user.id,
        license=JIT_LICENSE,
        grants=[g.permission_set for g in grants],
        via="sso",
        issuer=settings.issuer,
    )
    return user


async def _apply_groups(work: UnitOfWork, user: UserRow, settings: rules.Settings, groups: list[str]) -> None:
    """A later sign-in adds the grants of the mapped groups the member is in now and does not hold yet (never
    takes any away: an admin or SCIM does that). Audited ``user.updated`` when it adds any."""
    wanted = rules.mapped_grants(settings, groups, with_defaults=False)
    if not wanted:
        return
    held = (await grant_store.grants_for_users(work.conn, [user.id])).get(user.id, [])
    combined = rules.merged([*held, *wanted])
    if {(g.permission_set, g.all_projects, g.project_ids) for g in combined} == {
        (g.permission_set, g.all_projects, g.project_ids) for g in rules.merged(held)
    }:
        return
    combined = await _usable_grants(work.conn, user.account_id, combined)
    await grant_store.replace_user_grants(work.conn, user.account_id, user.id, combined)
    await work.audit(
        user.account_id, "user.updated", user.id, grants=[g.permission_set for g in combined], via="sso", groups=groups
    )
    await work.notify(UserChanged(user.id))
