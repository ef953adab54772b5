"""Members get in without a pasted token: invitations, passkeys (a software authenticator), browser sessions
and their CSRF defence, over HTTP on loopback; two instances on one database where "at once on every instance"
is claimed. docs/sign-in.md."""

from __future__ import annotations

import json
from http.cookies import SimpleCookie

import pytest

from tests.api.sign_in_calls import END_ALL, END_ONE, SESSIONS, Authenticator, Browser, invite
from tests.api.test_cache_and_invalidation import eventually
from tests.api.test_cli import external, tokengate
from tests.api.test_personal_tokens import DEACTIVATE, member
from tests.conftest import Server, make_config, start_server
from tokengate.config import SignInSettings
from tokengate.core.browser_sessions import COOKIE

VIEWER = "{ viewer { kind user { id email } } }"
DEVELOPER = [{"permissionSet": "DEVELOPER", "allProjects": True}]


@pytest.fixture
async def second(database, tmp_path):
    """Instance B on the same database."""
    async for running in start_server(database, make_config(tmp_path / "b")):
        yield running


async def refusals(server: Server) -> list[tuple[str, str]]:
    """The audited sign-in refusals: (method, reason), oldest first."""
    rows = await server.pool.fetch(
        "SELECT details FROM audit_events WHERE action = 'sign_in.refused' AND source = 'sign_in' ORDER BY id"
    )
    return [(json.loads(row["details"])["method"], json.loads(row["details"])["reason"]) for row in rows]


async def signed_in_member(server: Server, email: str = "dev@example.com") -> tuple[str, str, Browser, Authenticator]:
    """A member invited by the admin who registered a passkey: (admin token, user id, their browser, passkey)."""
    admin = await server.bootstrap()
    user_id, _ = await member(server, admin.token, email, DEVELOPER)
    browser, authenticator = Browser(server), Authenticator()
    registered = await browser.register(await invite(server, admin.token, user_id), authenticator)
    assert registered.status == 200, registered.body
    return admin.token, user_id, browser, authenticator


async def test_an_invitation_registers_a_passkey_and_signs_the_member_in_with_a_host_cookie(server):
    admin = await server.bootstrap()
    user_id, _ = await member(server, admin.token, "dev@example.com", DEVELOPER)
    browser, authenticator = Browser(server), Authenticator()
    registered = await browser.register(await invite(server, admin.token, user_id), authenticator)
    assert registered.status == 200, registered.body
    assert registered.body["user"] == {"id": user_id, "email": "dev@example.com"}
    [line] = [line for line in registered.set_cookie if line.startswith(COOKIE + "=")]
    morsel = SimpleCookie(line)[COOKIE]
    assert morsel["secure"] and morsel["httponly"] and morsel["path"] == "/" and morsel["samesite"] == "Strict"
    assert not morsel["domain"]  # the __Host- prefix's rules
    viewer = await browser.gql(VIEWER)
    assert viewer.status == 200 and viewer.errors == [], viewer.body
    assert viewer.data["viewer"] == {"kind": "USER", "user": {"id": user_id, "email": "dev@example.com"}}
    listed = await browser.gql(SESSIONS)
    [session] = listed.data["viewer"]["sessions"]
    assert session["current"] is True and session["method"] == "invitation"
    # The session acts as the member: what the member's grants allow, and no more.
    refused = await browser.gql('mutation { createProject(name: "p") { id } }')
    assert refused.codes == ["FORBIDDEN"], refused.body


async def test_each_passkey_sign_in_makes_a_new_session_with_a_new_id(server):
    _, _, browser, authenticator = await signed_in_member(server)
    first_cookie = browser.cookie
    assert (await browser.gql(VIEWER)).status == 200
    signed_in = await browser.sign_in(authenticator)
    assert signed_in.status == 200, signed_in.body
    assert browser.cookie is not None and browser.cookie != first_cookie
    other = Browser(server)
    assert (await other.sign_in(authenticator)).status == 200
    assert len({other.cookie, browser.cookie, first_cookie}) == 3
    listed = await browser.gql(SESSIONS)
    sessions = listed.data["viewer"]["sessions"]
    assert len({s["id"] for s in sessions}) == 2 and [s["method"] for s in sessions] == ["passkey", "passkey"]
    # The browser's previous session ended when it signed in again: its old cookie is worth nothing.
    stale = Browser(server, first_cookie)
    assert (await stale.gql(VIEWER)).status == 401


async def test_an_invitation_works_once(server):
    admin = await server.bootstrap()
    user_id, _ = await member(server, admin.token, "dev@example.com", DEVELOPER)
    secret = await invite(server, admin.token, user_id)
    first = await Browser(server).register(secret, Authenticator())
    assert first.status == 200, first.body  # the link works ...
    again = await Browser(server).post("/sign-in/invitation/options", {"invitation": secret})
    assert again.status == 401 and "already used" in again.body["errors"][0]["message"]  # ... once
    assert await refusals(server) == [("invitation", "invitation_used")]


async def test_two_ceremonies_of_one_invitation_finish_once(server):
    """Both ceremonies start before either finishes: only the first to finish uses the invitation."""
    admin = await server.bootstrap()
    user_id, _ = await member(server, admin.token, "dev@example.com", DEVELOPER)
    secret = await invite(server, admin.token, user_id)
    browser, other = Browser(server), Browser(server)
    started = [await b.post("/sign-in/invitation/options", {"invitation": secret}) for b in (browser, other)]
    assert [s.status for s in started] == [200, 200]
    answers = []
    for b, s in zip((browser, other), started, strict=True):
        credential = Authenticator().create(s.body["publicKey"], b.origin)
        answers.append(
            await b.post(
                "/sign-in/invitation/verify",
                {"invitation": secret, "ceremony": s.body["ceremony"], "credential": credential},
            )
        )
    assert [a.status for a in answers] == [200, 401]


async def test_an_expired_invitation_is_refused(database, tmp_path):
    config = make_config(tmp_path, sign_in=SignInSettings(invitation_seconds=1.0))
    async for server in start_server(database, config):
        admin = await server.bootstrap()
        user_id, _ = await member(server, admin.token, "dev@example.com", DEVELOPER)
        secret = await invite(server, admin.token, user_id)
        browser = Browser(server)
        usable = await browser.post("/sign-in/invitation/options", {"invitation": secret})
        assert usable.status == 200, usable.body  # reachable while it lasts

        async def refused(browser: Browser = browser, secret: str = secret) -> bool:
            answer = await browser.post("/sign-in/invitation/options", {"invitation": secret})
            return answer.status == 401

        await eventually(refused, seconds=10)
        assert ("invitation", "invitation_expired") in await refusals(server)


async def test_a_replayed_passkey_answer_is_refused(server):
    _, _, browser, authenticator = await signed_in_member(server)
    answer = await browser.passkey_answer(authenticator)
    assert (await browser.post("/sign-in/passkey/verify", answer)).status == 200  # the answer works ...
    replayed = await Browser(server).post("/sign-in/passkey/verify", answer)
    assert replayed.status == 401, replayed.body  # ... once: the challenge was taken
    assert "already used" in replayed.body["errors"][0]["message"]
    # Nor does an old answer pass in a new ceremony: its challenge is not the new one.
    fresh = await browser.post("/sign-in/passkey/options", {})
    moved = await browser.post(
        "/sign-in/passkey/verify", {"ceremony": fresh.body["ceremony"], "credential": answer["credential"]}
    )
    assert moved.status == 401, moved.body
    assert await refusals(server) == [("passkey", "bad_answer")]


async def test_a_session_without_the_csrf_header_or_from_another_site_is_refused(server):
    admin_token, _, browser, _ = await signed_in_member(server)
    assert (await browser.gql(VIEWER)).status == 200  # the cookie works from the pages
    without = await browser.server.gql(VIEWER, headers={"Cookie": f"{COOKIE}={browser.cookie}", "Host": browser.host})
    assert without.status == 403 and without.codes == ["FORBIDDEN"], without.body
    assert "X-Tokengate-CSRF" in without.errors[0]["message"]
    mutation = await browser.server.gql(
        END_ALL, headers={"Cookie": f"{COOKIE}={browser.cookie}", "Host": browser.host, "Origin": browser.origin}
    )
    assert mutation.status == 403, mutation.body
    cross_origin = await browser.gql(VIEWER, Origin="https://evil.example")
    assert cross_origin.status == 403, cross_origin.body
    cross_site = await browser.gql(VIEWER, **{"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status == 403, cross_site.body
    assert (await browser.gql(SESSIONS)).data["viewer"]["sessions"]  # none of them ended it
    # A document anyone may run still runs beside the cookie (GraphiQL's introspection): the cookie carries nothing.
    public = await browser.server.gql(
        "{ __schema { queryType { name } } }", headers={"Cookie": f"{COOKIE}={browser.cookie}", "Host": browser.host}
    )
    assert public.status == 200 and public.data == {"__schema": {"queryType": {"name": "Query"}}}, public.body
    # Bearer tokens work as before: no CSRF header, whatever cookie rides along.
    bearer = await server.gql(VIEWER, token=admin_token, headers={"Cookie": f"{COOKIE}={browser.cookie}"})
    assert bearer.status == 200 and bearer.data["viewer"]["kind"] == "USER"


async def test_sign_in_endpoints_take_the_csrf_defence_too(server):
    browser = Browser(server)
    assert (await browser.post("/sign-in/passkey/options", {})).status == 200
    refused = await browser.post("/sign-in/passkey/options", {}, headers={"Host": browser.host})
    assert refused.status == 403, refused.body


async def test_sign_out_ends_this_session_and_sign_out_everywhere_ends_them_all(server):
    _, _, browser, authenticator = await signed_in_member(server)
    laptop, phone = Browser(server), Browser(server)
    for b in (laptop, phone):
        assert (await b.sign_in(authenticator)).status == 200
    kept = browser.cookie
    signed_out = await browser.post("/sign-out", {})
    assert signed_out.status == 200 and signed_out.body == {"signedOut": True}
    assert any(line.startswith(COOKIE + '=""') or "Max-Age=0" in line for line in signed_out.set_cookie)
    browser.cookie = kept
    assert (await browser.gql(VIEWER)).status == 401  # the old cookie is dead
    assert (await laptop.gql(VIEWER)).status == 200  # the others are not
    listed = (await laptop.gql(SESSIONS)).data["viewer"]["sessions"]
    phone_id = next(s["id"] for s in listed if not s["current"])
    assert (await laptop.gql(END_ONE, {"id": phone_id})).data == {"endSession": {"id": phone_id}}
    assert (await phone.gql(VIEWER)).status == 401
    assert (await laptop.gql(VIEWER)).status == 200
    assert (await phone.sign_in(authenticator)).status == 200
    ended = await laptop.gql(END_ALL)
    assert ended.data == {"endAllSessions": 2}
    for b in (laptop, phone):
        assert (await b.gql(VIEWER)).status == 401


async def test_an_idle_session_ends(database, tmp_path):
    # Time is moved in the database rather than waited for: no sleep, and no race with a slow machine.
    config = make_config(tmp_path, sign_in=SignInSettings(session_idle_seconds=60.0, session_absolute_seconds=3600.0))
    async for server in start_server(database, config):
        _, _, browser, _ = await signed_in_member(server)
        assert (await browser.gql(VIEWER)).status == 200
        # Each use moves the idle expiry to exactly the idle timeout from that use.
        row = await server.pool.fetchrow("SELECT last_seen_at, idle_expires_at FROM sessions")
        assert (row["idle_expires_at"] - row["last_seen_at"]).total_seconds() == 60.0
        await server.pool.execute("UPDATE sessions SET idle_expires_at = now() - interval '1 second'")
        assert (await browser.gql(VIEWER)).status == 401  # left alone past its idle timeout


async def test_a_session_in_use_still_ends_at_its_absolute_timeout(database, tmp_path):
    config = make_config(tmp_path, sign_in=SignInSettings(session_idle_seconds=60.0, session_absolute_seconds=3600.0))
    async for server in start_server(database, config):
        _, _, browser, _ = await signed_in_member(server)
        # Near its absolute timeout, a use moves the idle expiry on no further than the absolute one.
        await server.pool.execute("UPDATE sessions SET absolute_expires_at = now() + interval '30 seconds'")
        assert (await browser.gql(VIEWER)).status == 200
        row = await server.pool.fetchrow("SELECT idle_expires_at, absolute_expires_at FROM sessions")
        assert row["idle_expires_at"] == row["absolute_expires_at"]
        # Used just now (its idle expiry ahead), past its absolute timeout: what ends it is the absolute one.
        await server.pool.execute(
            "UPDATE sessions SET idle_expires_at = now() + interval '60 seconds',"
            " absolute_expires_at = now() - interval '1 second'"
        )
        assert (await browser.gql(VIEWER)).status == 401


async def test_deactivation_ends_the_sessions_on_every_instance(server, second):
    admin_token, user_id, browser, authenticator = await signed_in_member(server)
    on_b = Browser(second)
    assert (await on_b.sign_in(authenticator)).status == 200
    assert (await browser.gql(VIEWER)).status == 200 and (await on_b.gql(VIEWER)).status == 200
    deactivated = await server.gql(DEACTIVATE, {"id": user_id}, token=admin_token)
    assert deactivated.errors == [], deactivated.body

    async def both_refused() -> bool:
        return (await browser.gql(VIEWER)).status == 401 and (await on_b.gql(VIEWER)).status == 401

    # Sessions are read from the database on every request: refused from the next one, no wait and no deadline.
    assert await both_refused()
    assert (await Browser(second).sign_in(authenticator)).status == 401  # nor can the passkey sign in again
    ended = await server.pool.fetch("SELECT ended_reason FROM sessions WHERE user_id = $1", user_id)
    assert {row["ended_reason"] for row in ended} == {"user.deactivated"}


async def test_a_new_invitation_revokes_the_old_passkey_and_ends_the_sessions(server):
    admin_token, user_id, browser, old_passkey = await signed_in_member(server)
    assert (await Browser(server).sign_in(old_passkey)).status == 200  # the old passkey works ...
    secret = await invite(server, admin_token, user_id)
    assert (await Browser(server).sign_in(old_passkey)).status == 401  # ... not after a new invitation
    assert (await browser.gql(VIEWER)).status == 401
    new_passkey = Authenticator()
    assert (await Browser(server).register(secret, new_passkey)).status == 200
    assert (await Browser(server).sign_in(new_passkey)).status == 200


async def test_who_may_invite(server):
    admin = await server.bootstrap()
    user_id, developer_token = await member(server, admin.token, "dev@example.com", DEVELOPER)
    other_id, _ = await member(server, admin.token, "other@example.com", DEVELOPER)
    refused = await server.gql(
        "mutation($u: ID!) { createInvitation(userId: $u) { secret } }", {"u": other_id}, token=developer_token
    )
    assert refused.codes == ["FORBIDDEN"], refused.body
    own = await server.gql(
        "mutation($u: ID!) { createInvitation(userId: $u) { secret } }", {"u": admin.user_id}, token=admin.token
    )
    assert own.codes == ["FORBIDDEN"], own.body
    audited = await server.pool.fetch(
        "SELECT action FROM audit_events WHERE account_id = $1 AND action LIKE 'invitation.%'", admin.account_id
    )
    assert audited == []
    await invite(server, admin.token, user_id)
    audited = await server.pool.fetch(
        "SELECT action FROM audit_events WHERE account_id = $1 AND action LIKE 'invitation.%'", admin.account_id
    )
    assert [row["action"] for row in audited] == ["invitation.created"]


async def test_passkeys_need_a_host_name(server):
    admin = await server.bootstrap()
    user_id, _ = await member(server, admin.token, "dev@example.com", DEVELOPER)
    secret = await invite(server, admin.token, user_id)
    browser = Browser(server)
    port = browser.host.split(":")[1]
    at_ip = await browser.post(
        "/sign-in/invitation/options",
        {"invitation": secret},
        headers=browser.page_headers(Host=f"127.0.0.1:{port}", Origin=f"http://127.0.0.1:{port}"),
    )
    assert at_ip.status == 400 and "host name" in at_ip.body["errors"][0]["message"]


async def test_the_command_line_invites_and_its_deactivation_ends_sessions(database, server):
    """bootstrap's sign_in_link signs the first admin in; invite-user is the operator's way back in; the CLI's
    deactivate-user ends the sessions at once, as deactivateUser does (one service)."""
    created = tokengate(
        "bootstrap",
        "--account-name",
        "Acme",
        "--plan",
        "ENTERPRISE",
        "--admin-email",
        "a@acme.io",
        env=external(database),
    )
    assert created.returncode == 0, created.stderr
    out = json.loads(created.stdout)
    server.issued.extend([out["token"], out["sign_in_link"].split("#", 1)[1]])
    assert out["sign_in_link"].startswith("/invitation#")
    admin_browser, admin_key = Browser(server), Authenticator()
    registered = await admin_browser.register(out["sign_in_link"].split("#", 1)[1], admin_key)
    assert registered.status == 200, registered.body
    assert (await admin_browser.gql(VIEWER)).data["viewer"]["user"]["email"] == "a@acme.io"

    user_id, _ = await member(server, out["token"], "dev@example.com", DEVELOPER)
    invited = tokengate("invite-user", "--account-id", out["account_id"], "--user-id", user_id, env=external(database))
    assert invited.returncode == 0, invited.stderr
    link = json.loads(invited.stdout)["sign_in_link"]
    server.issued.append(link.split("#", 1)[1])
    browser = Browser(server)
    assert (await browser.register(link.split("#", 1)[1], Authenticator())).status == 200
    assert (await browser.gql(VIEWER)).status == 200

    deactivated = tokengate("deactivate-user", "--user-id", user_id, env=external(database))
    assert deactivated.returncode == 0, deactivated.stderr
    assert (await browser.gql(VIEWER)).status == 401
    assert (await admin_browser.gql(VIEWER)).status == 200
