"""A member reaches the settings pages in Chromium without a pasted token: invited, they create a passkey (the
DevTools protocol's virtual authenticator, ``WebAuthn.addVirtualAuthenticator``), sign out, sign in with the
passkey, and a new invitation revokes that passkey. No bearer token of theirs is ever in the page's storage.

The pages are opened at ``http://localhost:PORT``: a passkey's relying party is a host name, never an IP
address, and browsers treat localhost as a secure context (``Secure`` cookies and WebAuthn work over http).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.api.sign_in_calls import invite
from tests.api.test_cache_and_invalidation import eventually
from tests.api.test_personal_tokens import member
from tests.conftest import Server
from tests.e2e.settings_browser import Browser, assert_accessible, expect
from tokengate.core.browser_sessions import COOKIE

AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}
EMAIL = "dev@acme.example"


async def session_cookies(context) -> list[dict]:
    return [cookie for cookie in await context.cookies() if cookie["name"] == COOKIE]


async def test_invite_register_sign_out_sign_in_and_reinvite(server: Server, browser: Browser):
    admin = await server.bootstrap()
    user_id, _ = await member(server, admin.token, EMAIL, [{"permissionSet": "DEVELOPER", "allProjects": True}])
    secret = await invite(server, admin.token, user_id)
    origin = f"http://localhost:{urlsplit(server.url).port}"
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    devtools = await context.new_cdp_session(page)
    await devtools.send("WebAuthn.enable")
    authenticator = await devtools.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})

    # Invited: the link's page creates a passkey and signs in.
    await page.goto(origin + "/invitation#" + secret)
    await expect(page.get_by_role("heading", name="Accept your invitation")).to_be_visible()
    assert urlsplit(page.url).fragment == ""  # the secret left the address bar at once
    await assert_accessible(page, "invitation")
    await page.get_by_role("button", name="Create a passkey and sign in").click()
    await expect(page).to_have_url(origin + "/settings/service-tokens")
    await expect(page.locator("#session-who")).to_have_text(f"Signed in as {EMAIL}")
    credentials = await devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator["authenticatorId"]})
    assert len(credentials["credentials"]) == 1
    [cookie] = await session_cookies(context)
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert await page.evaluate("sessionStorage.length") == 0 and await page.evaluate("localStorage.length") == 0
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: no script of the page reads it

    # Another page of the settings: still signed in, by the cookie alone.
    await page.get_by_role("navigation", name="Account settings").get_by_role("link", name="Personal tokens").click()
    await expect(page.locator("#session-who")).to_have_text(f"Signed in as {EMAIL}")

    # Sign out: the session ends on the server and the cookie goes.
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page.get_by_role("heading", name="Sign in to account settings")).to_be_visible()

    async def signed_out() -> bool:
        return await session_cookies(context) == [] and not await server.pool.fetchval(
            "SELECT count(*) FROM sessions WHERE ended_at IS NULL"
        )

    await eventually(signed_out, seconds=10)

    # Sign in with the passkey: a new session.
    await page.get_by_role("link", name="Sign in with a passkey").click()
    await expect(page.get_by_role("heading", name="Sign in to tokengate")).to_be_visible()
    await assert_accessible(page, "sign-in-passkey")
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await expect(page).to_have_url(origin + "/settings/service-tokens")
    await expect(page.locator("#session-who")).to_have_text(f"Signed in as {EMAIL}")
    [second] = await session_cookies(context)
    assert second["value"] != cookie["value"]  # a new session id at every sign-in
    assert await page.evaluate("sessionStorage.length") == 0 and await page.evaluate("localStorage.length") == 0

    # The person's page lists the signed-in browsers; "Sign out everywhere" ends them all.
    await page.get_by_role("navigation", name="Account settings").get_by_role("link", name="Personal tokens").click()
    sessions = page.get_by_role("table", name="Signed-in browsers")
    await expect(sessions.get_by_text("This browser")).to_be_visible()
    await assert_accessible(page, "personal-tokens-sessions")
    await page.get_by_role("button", name="Sign out everywhere").click()
    await expect(page.get_by_role("heading", name="Sign in to account settings")).to_be_visible()
    await eventually(signed_out, seconds=10)
    await page.goto(origin + "/sign-in")
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await expect(page.locator("#session-who")).to_have_text(f"Signed in as {EMAIL}")

    # A new invitation (a lost device) revokes that passkey and ends the session.
    await invite(server, admin.token, user_id)
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in to account settings")).to_be_visible()
    await page.goto(origin + "/sign-in")
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await expect(page.get_by_role("alert")).to_contain_text("replaced by a new invitation")
    await context.close()
