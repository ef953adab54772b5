"""A sensitive change from the settings pages, in Chromium, by an account admin signed in with a passkey (the
DevTools protocol's virtual authenticator): once the session's sign-in is older than the window (moved in the
database), creating a personal token (which would carry ACCOUNT_ADMIN) says "sign in again to do this" and
offers "Sign in again", whose passkey sign-in comes back to the same page, where the same form then works. The
form is never left broken, and the sign-in page returns only to a settings page of its own origin.
docs/sign-in.md "Recent sign-in"."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.api.sign_in_calls import invite
from tests.api.test_personal_tokens import member
from tests.conftest import Server
from tests.e2e.settings_browser import Browser, PageWatch, assert_accessible, expect
from tests.e2e.test_sign_in_passkeys import AUTHENTICATOR

EMAIL = "boss@acme.example"


async def test_an_old_sign_in_is_asked_to_sign_in_again_and_comes_back_to_the_page(server: Server, browser: Browser):
    first = await server.bootstrap()
    user_id, _ = await member(server, first.token, EMAIL, [{"permissionSet": "ACCOUNT_ADMIN"}])
    secret = await invite(server, first.token, user_id)
    origin = f"http://localhost:{urlsplit(server.url).port}"
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    watch = PageWatch(page, origin)
    devtools = await context.new_cdp_session(page)
    await devtools.send("WebAuthn.enable")
    await devtools.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    await page.goto(origin + "/invitation#" + secret)
    await page.get_by_role("button", name="Create a passkey and sign in").click()
    await expect(page.locator("#session-who")).to_have_text(f"Signed in as {EMAIL}")

    async def personal_tokens() -> int:
        return await server.pool.fetchval("SELECT count(*) FROM tokens WHERE user_id = $1", user_id)

    async def create_token(name: str) -> None:
        await page.get_by_role("button", name="+ New Token").click()
        await page.get_by_label("Name").fill(name)
        await page.get_by_role("button", name="Create token").click()

    await page.goto(origin + "/settings/personal-tokens")
    await expect(page.get_by_role("heading", name="Personal tokens", exact=True)).to_be_visible()
    await create_token("fresh")  # a fresh sign-in makes it
    await expect(page.get_by_role("heading", name="Token created")).to_be_visible()
    await page.keyboard.press("Escape")
    made = await personal_tokens()

    # The same session, signed in eleven minutes ago: the form says why, offers a new sign-in, stays usable.
    await server.pool.execute("UPDATE sessions SET created_at = created_at - interval '11 minutes'")
    await create_token("stale")
    await expect(page.locator("#token-form-error")).to_contain_text("Sign in again to do this")
    await expect(page.get_by_role("button", name="Create token")).to_be_enabled()
    again = page.get_by_role("link", name="Sign in again")
    await expect(again).to_be_visible()
    assert await again.get_attribute("href") == "/sign-in?next=%2Fsettings%2Fpersonal-tokens"
    assert await personal_tokens() == made  # nothing made
    await assert_accessible(page, "recent-sign-in")
    await page.get_by_role("button", name="Cancel").click()

    await again.click()
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await expect(page).to_have_url(origin + "/settings/personal-tokens")  # back where the person was
    await expect(page.locator("#session-who")).to_have_text(f"Signed in as {EMAIL}")
    await expect(page.get_by_role("link", name="Sign in again")).to_be_hidden()
    await create_token("stale")
    await expect(page.get_by_role("heading", name="Token created")).to_be_visible()
    assert await personal_tokens() == made + 1
    await page.keyboard.press("Escape")

    # The sign-in page returns only to a settings page of its own origin.
    for elsewhere in ("https://evil.example/settings", "//evil.example/settings", "/graphql"):
        await page.goto(origin + "/sign-in?next=" + elsewhere)
        await page.get_by_role("button", name="Sign in with a passkey").click()
        await expect(page).to_have_url(origin + "/settings/service-tokens")
    assert watch.problems == []
    await context.close()
