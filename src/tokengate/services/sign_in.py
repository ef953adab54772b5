"""People sign in without a pasted token: invitations, passkeys and browser sessions (docs/sign-in.md).

An admin's ``createInvitation`` gives a one-time link (its secret shown once, stored as a keyed hash, expiring,
single use); a new invitation revokes the person's older invitations and passkeys and ends their sessions
(a lost or stolen device). The invitee opens the link and registers a passkey (a WebAuthn registration
ceremony, py_webauthn), which uses the invitation and signs them in; later they sign in with the passkey
(an authentication ceremony). Every sign-in makes a new session: a random cookie value, stored hashed, with
an idle and an absolute timeout. Each ceremony's challenge is stored server-side, expires, and is taken once
(in its own statement, before the answer is checked, so a refused answer spends it too).

Sessions are read from the database on every request (store/sign_in.py ``use_session``): ending one (sign out,
sign out everywhere, a new invitation, deactivation) holds on every instance at once, with no cache to forget.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any, Final

import webauthn
from webauthn.helpers import exceptions as webauthn_errors
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from tokengate.config import Config
from tokengate.core import global_ids, tokens
from tokengate.core.browser_sessions import RelyingParty, new_secret, secret_hashes
from tokengate.core.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from tokengate.core.policy import require, require_account
from tokengate.services.unit_of_work import Actor, Backend, UnitOfWork
from tokengate.services.users import USER, acts_as_admin, end_sessions, member_to_take_over
from tokengate.store import grants as grant_store
from tokengate.store import sign_in as sign_in_store
from tokengate.store import single_sign_on as single_sign_on_store
from tokengate.store import users as user_store
from tokengate.store.sign_in import InvitationRow, SessionRow
from tokengate.store.users import UserRow

RP_NAME: Final = "tokengate"
SOURCE: Final = "sign_in"  # the audit log's door for sign-ins
INVITATION_PATH: Final = "/invitation#"
SIGNED_OUT: Final = "signed_out"
SIGNED_OUT_EVERYWHERE: Final = "signed_out_everywhere"
SIGNED_IN_AGAIN: Final = "signed_in_again"  # the browser signed in anew: its previous session ends
INVITATION_RENEWED: Final = "invitation.created"
USER_DEACTIVATED: Final = "user.deactivated"
INVITATION_REFUSED: Final = "this invitation link is unknown, already used, expired or replaced by a newer one"
PASSKEY_REFUSED: Final = "this passkey is not accepted here: it is unknown, or was replaced by a new invitation"
CEREMONY_REFUSED: Final = "this sign-in attempt is unknown, expired or already used: start again"
SSO_ENFORCED: Final = (
    "this account signs its members in through single sign-on: use your organisation's sign-in at "
    "/sign-in/sso?account={account} (only account administrators may sign in with a passkey)"
)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds: a session's idle and absolute timeouts, an invitation's and a ceremony's lifetime."""

    session_idle: float
    session_absolute: float
    invitation: float
    ceremony: float


@dataclass(frozen=True, slots=True)
class Browser:
    """Where a ceremony happens: the relying party of the pages it was opened on, the timeouts, and the
    browser's address and user agent (shown in the session list)."""

    rp: RelyingParty
    timeouts: Timeouts
    client_addr: str | None
    user_agent: str | None


def sign_in_timeouts(config: Config) -> Timeouts:
    """The configured timeouts (config.py ``SignInSettings``)."""
    settings = config.sign_in
    return Timeouts(
        settings.session_idle_seconds,
        settings.session_absolute_seconds,
        settings.invitation_seconds,
        settings.ceremony_seconds,
    )


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: its row, the cookie's value (the only copy), and who it is."""

    session: SessionRow
    secret: str
    user: UserRow

    def __repr__(self) -> str:
        return f"SignedIn(session={self.session.id!r}, user={self.user.id!r})"


def user_actor(user: UserRow, client_addr: str | None) -> Actor:
    """A person signing in, as the audit log names them (they hold no principal yet)."""
    return Actor(global_ids.actor_name(global_ids.USER_ACTOR, user.id, printed=False), SOURCE, client_addr)


# Invitations


async def create_invitation(
    backend: Backend, actor: Actor, account_id: str, user_id: str, timeouts: Timeouts
) -> tuple[InvitationRow, str]:
    """A one-time sign-in link for a member (MEMBERS:WRITE, and the caller must be able to give everything the
    member holds: the link signs in as them; never yourself). It revokes the member's older invitations and
    passkeys and ends their sessions. The returned secret is the only copy."""
    require_account(actor.principal, account_id)
    require(actor.principal, "MEMBERS", "WRITE")
    async with backend.change(actor) as work:
        user, _ = await member_to_take_over(work, account_id, user_id)
        return await invite(work, backend.keys, user, timeouts.invitation)


async def invite(work: UnitOfWork, keys: tuple[bytes, ...], user: UserRow, seconds: float) -> tuple[InvitationRow, str]:
    """In a change: the invitation, the older ones and the passkeys revoked, the sessions ended, all audited."""
    if user.state != "active":
        raise InvalidInput("the user is deactivated: it cannot be invited")
    conn, account_id = work.conn, user.account_id
    for invitation_id in await sign_in_store.revoke_invitations_of_user(conn, user.id):
        await work.audit(account_id, "invitation.revoked", invitation_id, user_id=user.id, reason="invitation.created")
    for passkey_id in await sign_in_store.revoke_passkeys_of_user(conn, user.id):
        await work.audit(account_id, "passkey.revoked", passkey_id, user_id=user.id, reason="invitation.created")
    await end_sessions(work, user, INVITATION_RENEWED)
    secret = new_secret()
    invitation = await sign_in_store.insert_invitation(
        conn, tokens.new_id("inv"), tokens.hash_token(secret, keys[0]), account_id, user.id, work.actor.name, seconds
    )
    await work.audit(
        account_id, "invitation.created", invitation.id, user_id=user.id, expires_at=invitation.expires_at.isoformat()
    )
    return invitation, secret


async def usable_invitation(
    backend: Backend, secret: str, client_addr: str | None = None
) -> tuple[InvitationRow, UserRow]:
    """The invitation a link names, if it can be used now, and its (active) user; ``Unauthenticated`` if not.
    A link of a known invitation that cannot be used is audited ``sign_in.refused`` with the reason (an
    unknown link belongs to no account)."""
    hashes = secret_hashes(backend.keys, secret)
    found = await sign_in_store.invitation_by_secret(backend.pool, hashes) if hashes else None
    if found is None:
        raise Unauthenticated(INVITATION_REFUSED)
    invitation, usable = found
    user = await user_store.get_user(backend.pool, invitation.user_id)
    if user is None:
        raise Unauthenticated(INVITATION_REFUSED)
    if not usable or user.state != "active":
        reason = (
            "user_deactivated"
            if user.state != "active"
            else "invitation_used"
            if invitation.used_at is not None
            else "invitation_revoked"
            if invitation.revoked_at is not None
            else "invitation_expired"
        )
        async with backend.change(user_actor(user, client_addr)) as work:
            await work.audit(
                user.account_id, "sign_in.refused", invitation.id, user_id=user.id, method="invitation", reason=reason
            )
        raise Unauthenticated(INVITATION_REFUSED)
    return invitation, user


async def require_passkeys_allowed(
    backend: Backend, user: UserRow, method: str, target_id: str, client_addr: str | None
) -> None:
    """Refuse (``Forbidden``, audited ``sign_in.refused`` ``sso_enforced``) a passkey or invitation sign-in of a
    member who is not an ACCOUNT_ADMIN of an account whose single sign-on is enforced."""
    configured = await single_sign_on_store.of_account(backend.pool, user.account_id)
    if configured is None or not configured.settings.enforced:
        return
    held = (await grant_store.grants_for_users(backend.pool, [user.id])).get(user.id, [])
    if acts_as_admin(user.license, held):
        return
    async with backend.change(user_actor(user, client_addr)) as work:
        await work.audit(
            user.account_id, "sign_in.refused", target_id, user_id=user.id, method=method, reason="sso_enforced"
        )
    raise Forbidden(SSO_ENFORCED.format(account=user.account_id))


# Passkey ceremonies


def _options(options: Any) -> dict[str, Any]:
    return dict(json.loads(webauthn.options_to_json(options)))


async def registration_options(backend: Backend, secret: str, browser: Browser) -> tuple[str, dict[str, Any]]:
    """Start registering a passkey from an invitation: the ceremony's id and the options for
    ``navigator.credentials.create``."""
    invitation, user = await usable_invitation(backend, secret, browser.client_addr)
    await require_passkeys_allowed(backend, user, "invitation", invitation.id, browser.client_addr)
    rp, timeouts = browser.rp, browser.timeouts
    options = webauthn.generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_id=user.id.encode("ascii"),
        user_name=user.email,
        user_display_name=user.email,
        timeout=int(timeouts.ceremony * 1000),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )
    ceremony = tokens.new_id("wch")
    await sign_in_store.insert_challenge(
        backend.pool, ceremony, "registration", options.challenge, invitation.id, timeouts.ceremony
    )
    return ceremony, _options(options)


async def register_passkey(
    backend: Backend,
    secret: str,
    ceremony: str,
    credential: object,
    browser: Browser,
) -> SignedIn:
    """Finish a registration: the invitation used (once), the passkey stored, and a new session."""
    invitation, user = await usable_invitation(backend, secret, browser.client_addr)
    taken = await sign_in_store.take_challenge(backend.pool, ceremony, "registration")
    if taken is None or taken[1] != invitation.id:
        raise Unauthenticated(CEREMONY_REFUSED)
    try:
        verified = webauthn.verify_registration_response(
            credential=_credential_json(credential),
            expected_challenge=taken[0],
            expected_rp_id=browser.rp.id,
            expected_origin=list(browser.rp.origins),
            require_user_verification=False,
        )
    except (webauthn_errors.InvalidRegistrationResponse, webauthn_errors.InvalidJSONStructure, ValueError) as error:
        raise Unauthenticated(f"the passkey was not registered: {_reason(error)}") from None
    await require_passkeys_allowed(backend, user, "invitation", invitation.id, browser.client_addr)
    async with backend.change(user_actor(user, browser.client_addr)) as work:
        used = await sign_in_store.use_invitation(work.conn, invitation.id)
        if used is None:
            raise Unauthenticated(INVITATION_REFUSED)
        await work.audit(user.account_id, "invitation.used", invitation.id, user_id=user.id)
        try:
            passkey = await sign_in_store.insert_passkey(
                work.conn,
                tokens.new_id("pky"),
                user.account_id,
                user.id,
                verified.credential_id,
                verified.credential_public_key,
                verified.sign_count,
                invitation.id,
            )
        except sign_in_store.DuplicatePasskey:
            raise InvalidInput("this passkey is registered already") from None
        await work.audit(user.account_id, "passkey.registered", passkey.id, user_id=user.id)
        return await start_session(work, backend.keys, user, "invitation", passkey.id, browser)


async def authentication_options(backend: Backend, rp: RelyingParty, timeouts: Timeouts) -> tuple[str, dict[str, Any]]:
    """Start a sign-in with a passkey: the ceremony's id and the options for ``navigator.credentials.get`` (no
    credential listed: the authenticator offers the passkeys it holds for this host)."""
    options = webauthn.generate_authentication_options(
        rp_id=rp.id,
        timeout=int(timeouts.ceremony * 1000),
        user_verification=UserVerificationRequirement.PREFERRED,
        allow_credentials=list[PublicKeyCredentialDescriptor](),
    )
    ceremony = tokens.new_id("wch")
    await sign_in_store.insert_challenge(
        backend.pool, ceremony, "authentication", options.challenge, None, timeouts.ceremony
    )
    if secrets.randbelow(64) == 0:  # now and then, ceremonies of yesterday are forgotten
        await sign_in_store.forget_old_challenges(backend.pool)
    return ceremony, _options(options)


async def sign_in_with_passkey(
    backend: Backend,
    ceremony: str,
    credential: object,
    browser: Browser,
) -> SignedIn:
    """Finish a sign-in with a passkey: the challenge taken once, the assertion checked, a new session."""
    credential_json = _credential_json(credential)
    raw_id = _raw_id(credential)
    taken = await sign_in_store.take_challenge(backend.pool, ceremony, "authentication")
    if taken is None:
        raise Unauthenticated(CEREMONY_REFUSED)
    async with backend.pool.acquire() as conn, conn.transaction():
        passkey = await sign_in_store.passkey_for_sign_in(conn, raw_id)
        if passkey is None:
            raise Unauthenticated(PASSKEY_REFUSED)
        try:
            verified = webauthn.verify_authentication_response(
                credential=credential_json,
                expected_challenge=taken[0],
                expected_rp_id=browser.rp.id,
                expected_origin=list(browser.rp.origins),
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
                require_user_verification=False,
            )
        except (
            webauthn_errors.InvalidAuthenticationResponse,
            webauthn_errors.InvalidJSONStructure,
            ValueError,
        ) as error:
            refusal = f"the passkey's answer was refused: {_reason(error)}"
        else:
            refusal = None
            await sign_in_store.passkey_used(conn, passkey.id, verified.new_sign_count)
    user = await user_store.get_user(backend.pool, passkey.user_id)
    if user is None:
        raise NotFound(USER)
    if refusal is None:
        await require_passkeys_allowed(backend, user, "passkey", passkey.id, browser.client_addr)
    async with backend.change(user_actor(user, browser.client_addr)) as work:
        if refusal is not None:
            await work.audit(
                user.account_id, "sign_in.refused", passkey.id, user_id=user.id, method="passkey", reason="bad_answer"
            )
        else:
            return await start_session(work, backend.keys, user, "passkey", passkey.id, browser)
    raise Unauthenticated(refusal)


def _credential_json(credential: object) -> str:
    if not isinstance(credential, dict):
        raise InvalidInput("credential must be the JSON of the browser's PublicKeyCredential")
    return json.dumps(credential)


def _raw_id(credential: object) -> bytes:
    raw = credential.get("rawId") if isinstance(credential, dict) else None
    if not isinstance(raw, str) or not raw or len(raw) > 1400:
        raise InvalidInput("credential.rawId must be the base64url credential id")
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except ValueError:
        raise InvalidInput("credential.rawId must be the base64url credential id") from None


def _reason(error: Exception) -> str:
    """The library's words, one line and short (they name what did not match, never a secret)."""
    text = " ".join(str(error).split())
    return text[:200] or type(error).__name__


# Sessions


async def start_session(
    work: UnitOfWork,
    keys: tuple[bytes, ...],
    user: UserRow,
    method: str,
    passkey_id: str | None,
    browser: Browser,
) -> SignedIn:
    """In a change: a new session (a new id and secret at every sign-in), audited ``session.started``."""
    secret = new_secret()
    session = await sign_in_store.insert_session(
        work.conn,
        tokens.new_id("ses"),
        tokens.hash_token(secret, keys[0]),
        user.account_id,
        user.id,
        method,
        passkey_id,
        browser.timeouts.session_idle,
        browser.timeouts.session_absolute,
        browser.client_addr,
        (browser.user_agent or "")[:300] or None,
    )
    await work.audit(user.account_id, "session.started", session.id, user_id=user.id, method=method)
    return SignedIn(session, secret, user)


async def sign_out(
    backend: Backend, secret: str, client_addr: str | None, reason: str = SIGNED_OUT
) -> SessionRow | None:
    """End the session whose cookie this is (``POST /sign-out``, or a new sign-in in the same browser); None when
    there was none to end."""
    hashes = secret_hashes(backend.keys, secret)
    if hashes is None:
        return None
    async with backend.pool.acquire() as conn, conn.transaction():
        ended = await sign_in_store.end_session_by_secret(conn, hashes, reason)
        if ended is None:
            return None
        user = await user_store.get_user(conn, ended.user_id)
    if user is not None:
        async with backend.change(user_actor(user, client_addr)) as work:
            await work.audit(ended.account_id, "session.ended", ended.id, user_id=ended.user_id, reason=reason)
    return ended


def _own_user(actor: Actor) -> str:
    principal = actor.principal
    if principal is None or principal.user_id is None:
        raise Forbidden("only a signed-in person has sessions")
    return principal.user_id


async def end_session(backend: Backend, actor: Actor, session_id: str) -> SessionRow:
    """Sign one of your own sessions out, on every instance at once."""
    user_id = _own_user(actor)
    async with backend.change(actor) as work:
        ended = await sign_in_store.end_session(work.conn, user_id, session_id, SIGNED_OUT)
        if ended is None:
            raise NotFound("session")
        await work.audit(ended.account_id, "session.ended", ended.id, user_id=user_id, reason=SIGNED_OUT)
    return ended


async def end_all_sessions(backend: Backend, actor: Actor) -> int:
    """Sign out everywhere: every session of the caller ends, on every instance at once; how many."""
    user_id = _own_user(actor)
    async with backend.change(actor) as work:
        user = await user_store.get_user(work.conn, user_id)
        if user is None:
            raise NotFound(USER)
        return len(await end_sessions(work, user, SIGNED_OUT_EVERYWHERE))
