"""Single sign-on in Chromium through a real OpenID provider (panva's oidc-provider from npm, OpenID Certified:
tests/e2e/oidc_provider.py): an admin configures it over GraphQL with a group mapping; a person signs in at the
provider and lands on the settings pages as a member made just in time with the default and the mapped grants,
and no bearer token of theirs is in the page's storage; enforced single sign-on refuses a member's passkey and
lets an admin's through; the session ends after the configured window and the person signs in again; SCIM
deactivation ends the open session on two `tokengate serve` instances and the member's personal token on both.

The pages are walked at ``http://localhost:PORT`` (the redirect URI registered at the provider; passkeys need a
host name), the provider at ``http://127.0.0.1:PORT``: plain http on loopback is taken because the servers allow
private networks (TOKENGATE_WEBHOOK_ALLOW_PRIVATE), as the webhooks' tests do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import aiohttp
import pytest

from tests.api.sign_in_calls import invite
from tests.api.test_personal_tokens import member
from tests.conftest import TEST_SECRET_KEY, Seeded, Server, make_config, start_server
from tests.e2e.oidc_provider import CALLBACK_PATH, OpenIdProvider, openid_provider
from tests.e2e.processes import assert_no_secret_in, log_text, tokengate_cli, tokengate_serve
from tests.e2e.settings_browser import Browser, Page, expect
from tests.e2e.test_sign_in_passkeys import AUTHENTICATOR
from tokengate.core.browser_sessions import COOKIE

SCOPE = "openid email profile"


def claims_of(jwt: str) -> tuple[dict, dict]:
    header, payload = (
        json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in jwt.split(".")[:2]
    )
    return header, payload


async def test_the_provider_signs_in_an_account_with_the_claims_the_test_set(tmp_path: Path, node_packages):
    """The harness itself, without tokengate: code flow with PKCE through the development login form; the ID
    token carries the account's e-mail, its verification and its groups, as the test changed them."""
    redirect = "http://localhost:1" + CALLBACK_PATH
    accounts = {"alice": {"email": "alice@acme.example", "email_verified": True, "groups": ["eng"]}}
    async with (
        openid_provider(tmp_path, [redirect], accounts) as provider,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        provider.set_account("alice", email="alice@acme.example", groups=["eng", "ops"])  # no email_verified
        async with http.get(provider.issuer + "/.well-known/openid-configuration") as response:
            discovery = await response.json()
        assert discovery["issuer"] == provider.issuer and discovery["code_challenge_methods_supported"] == ["S256"]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": redirect,
            "scope": SCOPE,
            "state": "s",
            "nonce": "n",
        }
        url = discovery["authorization_endpoint"] + "?" + urlencode(query)
        async with http.get(url, allow_redirects=False) as response:  # PKCE is required of every client
            refused = parse_qs(urlsplit(response.headers["Location"]).query)
        assert refused["error"] == ["invalid_request"] and "PKCE" in refused["error_description"][0]
        query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        async with http.get(discovery["authorization_endpoint"] + "?" + urlencode(query)) as response:
            form = await response.text()
            action = urljoin(str(response.url), re.search(r'action="([^"]+)"', form).group(1))
        login = {"prompt": "login", "login": "alice", "password": "any"}
        async with http.post(action, data=login, allow_redirects=False) as response:
            location = response.headers["Location"]
        while not location.startswith(redirect):  # the provider's own redirects (no consent page for the client)
            async with http.get(urljoin(provider.issuer, location), allow_redirects=False) as response:
                assert response.status in (302, 303), await response.text()
                location = response.headers["Location"]
        answer = parse_qs(urlsplit(location).query)
        assert answer["state"] == ["s"] and answer["iss"] == [provider.issuer]
        exchange = {"grant_type": "authorization_code", "code": answer["code"][0], "redirect_uri": redirect}
        basic = aiohttp.encode_basic_auth(provider.client_id, provider.client_secret)
        headers = {"Authorization": basic}
        async with http.post(
            discovery["token_endpoint"], data={**exchange, "code_verifier": verifier}, headers=headers
        ) as response:
            assert response.status == 200, await response.text()
            tokens = await response.json()
        header, claims = claims_of(tokens["id_token"])
        assert header["alg"] == "RS256" and header["kid"].startswith("rs256-")
        assert claims["iss"] == provider.issuer and claims["aud"] == provider.client_id and claims["nonce"] == "n"
        assert claims["sub"] == "alice" and claims["email"] == "alice@acme.example"
        assert claims["groups"] == ["eng", "ops"] and "email_verified" not in claims
    assert "server_error" not in provider.log.read_text()


# --- tokengate with the provider ---------------------------------------------------------------------------------

CONFIGURE = """mutation($input: SingleSignOnInput!) {
  configureSingleSignOn(input: $input) { redirectUri signInPath signInAgainAfterSeconds enforced } }"""
MEMBERS = "{ account { memberConnection(first: 50) { edges { node { id email state grants { permissionSet } } } } } }"
VIEWER_STATUS = """async () => (await fetch('/graphql', {
  method: 'POST', headers: {'Content-Type': 'application/json', 'X-Tokengate-CSRF': '1'},
  body: JSON.stringify({query: '{ viewer { kind } }'}), credentials: 'same-origin'})).status"""
DEVELOPER = [{"permissionSet": "DEVELOPER", "allProjects": True}]
ANALYST = [{"permissionSet": "ANALYST", "allProjects": True}]
DANA = {"email": "dana@acme.example", "email_verified": True, "groups": ["analysts", "unmapped"]}
SIGNED_OUT = "Sign in to account settings"


def localhost(url: str) -> str:
    """The pages' origin as a person opens them: localhost, the server's port."""
    return f"http://localhost:{urlsplit(url).port}"


def sso_input(provider: OpenIdProvider, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "issuer": provider.issuer,
        "clientId": provider.client_id,
        "clientSecret": provider.client_secret,
        "emailDomains": ["acme.example"],
        "defaultGrants": DEVELOPER,
        "groupMappings": [{"group": "analysts", "grants": ANALYST}],
    }
    return values | overrides


@dataclass
class Single:
    server: Server
    provider: OpenIdProvider
    admin: Seeded
    origin: str


@pytest.fixture
async def single(database: str, tmp_path: Path, node_packages) -> AsyncIterator[Single]:
    """An in-process tokengate that allows private networks, a provider whose client redirects to it at
    localhost, and the account's admin (bootstrap) who configured single sign-on over GraphQL."""
    config = make_config(tmp_path, webhook_allow_private=True, federation_fetch_timeout_seconds=5.0)
    async for server in start_server(database, config):
        origin = localhost(server.url)
        async with openid_provider(tmp_path, [origin + CALLBACK_PATH], {"dana": DANA}) as provider:
            server.issued.append(provider.client_secret)  # never in a log line
            admin = await server.bootstrap("Acme", "ENTERPRISE", "admin@acme.example")
            yield Single(server, provider, admin, origin)


async def configure(server_url: str, http: aiohttp.ClientSession, token: str, sso: dict[str, Any]) -> dict:
    payload = {"query": CONFIGURE, "variables": {"input": sso}}
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(server_url + "/graphql", json=payload, headers=headers) as response:
        body = await response.json()
    assert not body.get("errors"), body
    return body["data"]["configureSingleSignOn"]


async def sso_sign_in(page: Page, origin: str, account_id: str, provider: OpenIdProvider, login: str | None) -> None:
    """From the members' sign-in link to the settings, signed in: at the provider's login form when ``login``
    is given (a browser the provider does not know yet), straight back otherwise."""
    await page.goto(f"{origin}/sign-in/sso?account={account_id}")
    if login is not None:
        await expect(page).to_have_url(re.compile("^" + re.escape(provider.issuer) + "/interaction/"))
        await provider.sign_in(page, login)
    await expect(page).to_have_url(origin + "/settings/service-tokens")


async def no_token_in_the_page(page: Page) -> None:
    """Nothing a script of the page can read holds a credential: no storage, no IndexedDB, no readable cookie."""
    assert await page.evaluate("sessionStorage.length") == 0
    assert await page.evaluate("localStorage.length") == 0
    assert await page.evaluate("indexedDB.databases().then((found) => found.length)") == 0
    assert await page.evaluate("document.cookie") == ""
    ours = [cookie for cookie in await page.context.cookies() if cookie["domain"] == "localhost"]
    assert [cookie["name"] for cookie in ours] == [COOKIE]  # the flow's cookie is gone, the session's stays
    (session,) = ours
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"


async def members(server: Server, token: str) -> dict[str, dict]:
    reply = await server.gql(MEMBERS, token=token)
    assert reply.errors == [], reply.body
    return {edge["node"]["email"]: edge["node"] for edge in reply.data["account"]["memberConnection"]["edges"]}


async def test_a_person_signs_in_through_the_provider_as_a_member_made_just_in_time(single: Single, browser: Browser):
    server, provider, admin, origin = single.server, single.provider, single.admin, single.origin
    made = await configure(server.url, server.session, admin.token, sso_input(provider))
    assert (
        made["redirectUri"].endswith(CALLBACK_PATH) and made["signInPath"] == f"/sign-in/sso?account={admin.account_id}"
    )
    assert "dana@acme.example" not in await members(server, admin.token)  # nobody of that name yet
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()

    await sso_sign_in(page, origin, admin.account_id, provider, "dana")
    await expect(page.locator("#session-who")).to_have_text("Signed in as dana@acme.example")
    await no_token_in_the_page(page)
    dana = (await members(server, admin.token))["dana@acme.example"]
    assert dana["state"] == "ACTIVE"
    assert sorted(grant["permissionSet"] for grant in dana["grants"]) == ["ANALYST", "DEVELOPER"]
    sessions = await server.pool.fetch(
        "SELECT method FROM sessions WHERE ended_at IS NULL AND user_id = $1", dana["id"]
    )
    assert [row["method"] for row in sessions] == ["sso"]
    # The same person again (linked by issuer and subject): no second member, the session works page to page.
    await page.get_by_role("navigation", name="Account settings").get_by_role("link", name="Personal tokens").click()
    await expect(page.locator("#session-who")).to_have_text("Signed in as dana@acme.example")
    await no_token_in_the_page(page)
    assert len([email for email in await members(server, admin.token) if email == "dana@acme.example"]) == 1
    await context.close()


async def test_enforced_single_sign_on_refuses_a_members_passkey_and_lets_an_admins_through(
    single: Single, browser: Browser
):
    server, provider, admin, origin = single.server, single.provider, single.admin, single.origin
    await configure(server.url, server.session, admin.token, sso_input(provider))
    dev_id, _ = await member(server, admin.token, "dev@acme.example", DEVELOPER)
    boss_id, _ = await member(
        server, admin.token, "boss@acme.example", [{"permissionSet": "ACCOUNT_ADMIN", "allProjects": True}]
    )

    async def with_a_passkey(user_id: str) -> Page:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        devtools = await context.new_cdp_session(page)
        await devtools.send("WebAuthn.enable")
        await devtools.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
        await page.goto(origin + "/invitation#" + await invite(server, admin.token, user_id))
        await page.get_by_role("button", name="Create a passkey and sign in").click()
        await expect(page).to_have_url(origin + "/settings/service-tokens")
        await page.get_by_role("button", name="Sign out", exact=True).click()
        await expect(page.get_by_role("heading", name=SIGNED_OUT)).to_be_visible()
        return page

    async def passkey_sign_in(page: Page) -> None:
        await page.goto(origin + "/sign-in")
        await page.get_by_role("button", name="Sign in with a passkey").click()

    dev, boss = await with_a_passkey(dev_id), await with_a_passkey(boss_id)
    await passkey_sign_in(dev)  # the precondition: single sign-on not enforced yet, the member's passkey works
    await expect(dev.locator("#session-who")).to_have_text("Signed in as dev@acme.example")
    await dev.get_by_role("button", name="Sign out", exact=True).click()
    await expect(dev.get_by_role("heading", name=SIGNED_OUT)).to_be_visible()

    assert (await configure(server.url, server.session, admin.token, sso_input(provider, enforced=True)))["enforced"]
    await passkey_sign_in(dev)
    await expect(dev.get_by_role("alert")).to_contain_text("single sign-on")
    await expect(dev.get_by_role("alert")).to_contain_text(f"/sign-in/sso?account={admin.account_id}")
    await expect(dev).to_have_url(origin + "/sign-in")
    await passkey_sign_in(boss)  # an account admin keeps the passkey
    await expect(boss.locator("#session-who")).to_have_text("Signed in as boss@acme.example")
    refused = await server.pool.fetch("SELECT details FROM audit_events WHERE action = 'sign_in.refused'")
    assert len(refused) == 1 and '"sso_enforced"' in refused[0]["details"], refused
    # The member made by createUser is not locked out: their first sign-in through the provider links them (an
    # account admin saved the configuration), as the same member with the grants they had.
    provider.set_account("dev", email="dev@acme.example", email_verified=True)
    await sso_sign_in(dev, origin, admin.account_id, provider, "dev")
    await expect(dev.locator("#session-who")).to_have_text("Signed in as dev@acme.example")
    await no_token_in_the_page(dev)
    linked = await server.pool.fetchrow("SELECT user_id, subject FROM single_sign_on_links")
    assert (linked["user_id"], linked["subject"]) == (dev_id, "dev")
    assert [g["permissionSet"] for g in (await members(server, admin.token))["dev@acme.example"]["grants"]] == [
        "DEVELOPER"
    ]
    for page in (dev, boss):
        await page.context.close()


async def test_the_session_ends_after_the_window_and_the_person_signs_in_again(single: Single, browser: Browser):
    server, provider, admin, origin = single.server, single.provider, single.admin, single.origin
    window = 3600  # shorter than the sessions' own absolute timeout (24 h): the window is what caps it
    await configure(server.url, server.session, admin.token, sso_input(provider, signInAgainAfterSeconds=window))
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    await sso_sign_in(page, origin, admin.account_id, provider, "dana")
    await expect(page.locator("#session-who")).to_have_text("Signed in as dana@acme.example")
    first = await server.pool.fetchrow("SELECT id, created_at, absolute_expires_at FROM sessions WHERE method = 'sso'")
    assert (first["absolute_expires_at"] - first["created_at"]).total_seconds() == window
    [cookie] = [c for c in await context.cookies() if c["name"] == COOKIE]
    assert 0 < cookie["expires"] - time.time() <= window  # the browser forgets it by then too

    # The window passes (time moved in the database, not waited for): the open page is signed out.
    await server.pool.execute(
        "UPDATE sessions SET absolute_expires_at = now() - interval '1 second' WHERE id = $1", first["id"]
    )
    assert await page.evaluate(VIEWER_STATUS) == 401
    await page.reload()
    await expect(page.get_by_role("heading", name=SIGNED_OUT)).to_be_visible()

    # Signing in again goes through the provider (which remembers this browser) and makes a new session.
    await sso_sign_in(page, origin, admin.account_id, provider, None)
    await expect(page.locator("#session-who")).to_have_text("Signed in as dana@acme.example")
    second = await server.pool.fetchrow(
        "SELECT id FROM sessions WHERE method = 'sso' AND ended_at IS NULL AND absolute_expires_at > now()"
    )
    assert second["id"] != first["id"]
    await no_token_in_the_page(page)
    await context.close()


# --- two instances: SCIM deactivation ends the session and the personal token on both ----------------------------

TOKENGATE = [sys.executable, "-m", "tokengate"]
CREATE_SCIM_TOKEN = 'mutation { createScimToken(name: "provider") { secret } }'
DEACTIVATE = {
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{"op": "replace", "path": "active", "value": False}],
}
ENDED_DEADLINE = 10.0  # seconds: generous; the measured time is printed and written to e2e-artifacts/


async def auth_check(http: aiohttp.ClientSession, url: str, token: str) -> int:
    async with http.get(url + "/auth/check", headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status


async def test_scim_deactivation_ends_the_open_session_and_the_personal_token_on_both_instances(
    database: str, tmp_path: Path, browser: Browser, artifacts: Path, node_packages
):
    env = {
        "TOKENGATE_DATABASE_URL": database,
        "TOKENGATE_SECRET_KEY": TEST_SECRET_KEY,
        "TOKENGATE_WEBHOOK_ALLOW_PRIVATE": "1",  # the loopback provider
    }
    bootstrap = ["bootstrap", "--account-name", "Acme", "--plan", "enterprise", "--admin-email", "admin@acme.example"]
    admin = tokengate_cli(TOKENGATE, *bootstrap, env=env)
    secrets_seen = [admin["token"]]
    outcome: dict[str, Any] = {}
    async with (
        tokengate_serve(TOKENGATE, tmp_path, env, name="a") as a,
        tokengate_serve(TOKENGATE, tmp_path, env, name="b") as b,
        openid_provider(tmp_path, [localhost(url) + CALLBACK_PATH for url in (a, b)], {"dana": DANA}) as provider,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http,
    ):
        secrets_seen.append(provider.client_secret)
        await configure(a, http, admin["token"], sso_input(provider))
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        on_a = await context.new_page()
        await sso_sign_in(on_a, localhost(a), admin["account_id"], provider, "dana")
        await expect(on_a.locator("#session-who")).to_have_text("Signed in as dana@acme.example")
        # The same browser on the other instance: the session cookie (host localhost) goes there too.
        on_b = await context.new_page()
        await on_b.goto(localhost(b) + "/settings/members")
        await expect(on_b.locator("#session-who")).to_have_text("Signed in as dana@acme.example")
        headers = {"Authorization": f"Bearer {admin['token']}"}
        async with http.post(a + "/graphql", json={"query": MEMBERS}, headers=headers) as response:
            listed = (await response.json())["data"]["account"]["memberConnection"]["edges"]
        (user_id,) = [edge["node"]["id"] for edge in listed if edge["node"]["email"] == "dana@acme.example"]
        personal = tokengate_cli(TOKENGATE, "issue-user-token", "--user-id", user_id, env=env)["token"]
        secrets_seen.append(personal)
        for _ in range(3):  # both instances have seen (and cached) the session and the token
            assert await on_a.evaluate(VIEWER_STATUS) == 200 and await on_b.evaluate(VIEWER_STATUS) == 200
            assert await auth_check(http, a, personal) == 200 and await auth_check(http, b, personal) == 200

        async with http.post(a + "/graphql", json={"query": CREATE_SCIM_TOKEN}, headers=headers) as response:
            scim_token = (await response.json())["data"]["createScimToken"]["secret"]
        secrets_seen.append(scim_token)
        scim = {"Authorization": f"Bearer {scim_token}", "Content-Type": "application/scim+json"}
        started = time.perf_counter()
        async with http.patch(f"{a}/scim/v2/Users/{user_id}", data=json.dumps(DEACTIVATE), headers=scim) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["active"] is False

        async def ended_after(check) -> float | None:
            while time.perf_counter() - started < ENDED_DEADLINE:
                if await check():
                    return round((time.perf_counter() - started) * 1000, 1)
            return None

        outcome["session_ended_on_b_ms"] = await ended_after(lambda: refused(on_b.evaluate(VIEWER_STATUS)))
        outcome["session_ended_on_a_ms"] = await ended_after(lambda: refused(on_a.evaluate(VIEWER_STATUS)))
        outcome["token_refused_on_b_ms"] = await ended_after(lambda: refused(auth_check(http, b, personal)))
        outcome["token_refused_on_a_ms"] = await ended_after(lambda: refused(auth_check(http, a, personal)))
        print(f"SCIM deactivation across two instances: {json.dumps(outcome)}")
        (artifacts / "sso-scim-deactivation.json").write_text(json.dumps(outcome, indent=2), encoding="utf-8")
        assert None not in outcome.values(), outcome
        for page in (on_a, on_b):  # the open pages, reloaded: signed out
            await page.reload()
            await expect(page.get_by_role("heading", name=SIGNED_OUT)).to_be_visible()
        assert await auth_check(http, a, admin["token"]) == 200  # everyone else keeps working
        await context.close()
    for name in ("a", "b"):
        assert_no_secret_in(tmp_path / f"{name}.log", secrets_seen)
        assert "Traceback" not in log_text(tmp_path / f"{name}.log"), name


async def refused(status) -> bool:
    return await status == 401
