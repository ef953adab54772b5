"""Single sign-on with an OpenID provider of the test's own (tests/api/oidc_provider.py) over HTTP on loopback:
configureSingleSignOn, the browser's round trip (``/sign-in/sso`` → the provider → ``/sign-in/sso/callback``),
members made just in time and linked by (issuer, subject), enforced single sign-on, the session's cap, and the
attack table: each attack first shown reachable (the honest value signs in, or the forged token is well-formed
and would be taken), then refused with a page and ``sign_in.refused`` audited with its reason."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.api.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, running_provider
from tests.api.sign_in_calls import Browser
from tests.conftest import Server, make_config, start_server
from tokengate.core.browser_sessions import COOKIE
from tokengate.core.single_sign_on import FLOW_COOKIE
from tokengate.store import grants as grant_store

SSO_FIELDS = (
    "issuer clientId emailDomains trustEmailsWithoutVerification defaultGrants { permissionSet allProjects } "
    "groupsClaim groupMappings { group grants { permissionSet allProjects } } enforced signInAgainAfterSeconds "
    "redirectUri signInPath updatedAt"
)
CONFIGURE = "mutation($input: SingleSignOnInput!) { configureSingleSignOn(input: $input) { " + SSO_FIELDS + " } }"
REMOVE = "mutation { removeSingleSignOn { issuer } }"
READ = "{ account { singleSignOn { " + SSO_FIELDS + " } } }"
VIEWER = "{ viewer { kind user { id email } } }"
DEVELOPER = [{"permissionSet": "DEVELOPER", "allProjects": True}]
ANALYST = [{"permissionSet": "ANALYST", "allProjects": True}]


def config(tmp_path: Path, **overrides: Any):
    values: dict[str, Any] = {
        "webhook_allow_private": True,  # the loopback provider
        "federation_fetch_timeout_seconds": 5.0,
        "federation_refetch_cooldown_seconds": 0.05,
    }
    values.update(overrides)
    return make_config(tmp_path, **values)


def sso_input(provider: Provider, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "issuer": provider.url,
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "emailDomains": ["Acme.example"],
        "defaultGrants": DEVELOPER,
        "groupMappings": [{"group": "analysts", "grants": ANALYST}],
    }
    values.update(overrides)
    return values


@dataclass
class Setup:
    server: Server
    provider: Provider
    account_id: str
    admin: str  # the account admin's personal token
    admin_user_id: str


async def configure(setup: Setup, token: str | None = None, **overrides: Any):
    return await setup.server.gql(CONFIGURE, {"input": sso_input(setup.provider, **overrides)}, token or setup.admin)


@pytest.fixture
async def setup(database: str, tmp_path: Path) -> AsyncIterator[Setup]:
    async with running_provider() as provider:
        async for server in start_server(database, config(tmp_path)):
            server.issued.append(CLIENT_SECRET)  # never in a log line
            seeded = await server.bootstrap(email="admin@acme.example")
            ready = Setup(server, provider, seeded.account_id, seeded.token, seeded.user_id)
            reply = await configure(ready)
            assert reply.errors == [], reply.body
            yield ready


@dataclass
class Page:
    status: int
    text: str
    set_cookie: list[str]


def cookie_of(lines: list[str], name: str) -> SimpleCookie | None:
    for line in lines:
        if line.startswith(name + "="):
            return SimpleCookie(line)
    return None


@dataclass
class SsoBrowser(Browser):
    """A browser at ``http://localhost:PORT`` that signs in through the provider, one redirect at a time."""

    flow_cookie: str | None = None

    async def start(self, account_id: str) -> str:
        """Open ``/sign-in/sso``: the provider's authorization URL (the flow cookie kept)."""
        async with self.server.session.get(
            self.server.url + "/sign-in/sso",
            params={"account": account_id},
            headers={"Host": self.host},
            allow_redirects=False,
        ) as response:
            assert response.status == 302, await response.text()
            morsel = cookie_of(response.headers.getall("Set-Cookie", []), FLOW_COOKIE)
            assert morsel is not None
            self.flow_cookie = morsel[FLOW_COOKIE].value
            return response.headers["Location"]

    async def at_provider(self, location: str) -> str:
        """The provider signs the person in and sends the browser back: the callback URL."""
        async with self.server.session.get(location, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            return response.headers["Location"]

    async def callback(self, url: str, flow_cookie: str | None = ..., **headers: str) -> Page:  # type: ignore[assignment]
        parts = urlsplit(url)
        assert parts.netloc == self.host and parts.path == "/sign-in/sso/callback", url
        cookie = self.flow_cookie if flow_cookie is ... else flow_cookie
        sent = {"Host": self.host, "Sec-Fetch-Site": "cross-site", **headers}
        if cookie is not None:
            sent["Cookie"] = f"{FLOW_COOKIE}={cookie}"
        async with self.server.session.get(
            f"{self.server.url}{parts.path}?{parts.query}", headers=sent, allow_redirects=False
        ) as response:
            page = Page(response.status, await response.text(), response.headers.getall("Set-Cookie", []))
        morsel = cookie_of(page.set_cookie, COOKIE)
        if morsel is not None and morsel[COOKIE].value:
            self.cookie = morsel[COOKIE].value
            self.server.issued.append(self.cookie)
        return page

    async def sign_in_through(self, account_id: str) -> Page:
        return await self.callback(await self.at_provider(await self.start(account_id)))


async def refusals(server: Server) -> list[str]:
    rows = await server.pool.fetch(
        "SELECT details FROM audit_events WHERE action = 'sign_in.refused' AND source = 'sign_in' ORDER BY id"
    )
    return [json.loads(row["details"])["reason"] for row in rows if json.loads(row["details"])["method"] == "sso"]


async def user_of(server: Server, account_id: str, email: str) -> dict[str, Any] | None:
    row = await server.pool.fetchrow(
        "SELECT id, state, license FROM users WHERE account_id = $1 AND lower(email) = $2", account_id, email
    )
    return dict(row) if row else None


async def held(server: Server, user_id: str) -> set[tuple[str, bool]]:
    grants = (await grant_store.grants_for_users(server.pool, [user_id])).get(user_id, [])
    return {(g.permission_set, g.all_projects) for g in grants}


# Configuration


async def test_configure_answers_the_settings_and_never_the_secret(setup: Setup) -> None:
    reply = await setup.server.gql(READ, token=setup.admin)
    sso = reply.data["account"]["singleSignOn"]
    assert sso["issuer"] == setup.provider.url and sso["clientId"] == CLIENT_ID
    assert sso["emailDomains"] == ["acme.example"]  # lower-case
    assert sso["trustEmailsWithoutVerification"] is False and sso["enforced"] is False
    assert sso["groupsClaim"] == "groups" and sso["signInAgainAfterSeconds"] == 86400
    assert sso["defaultGrants"] == [{"permissionSet": "DEVELOPER", "allProjects": True}]
    assert sso["groupMappings"] == [
        {"group": "analysts", "grants": [{"permissionSet": "ANALYST", "allProjects": True}]}
    ]
    host = urlsplit(setup.server.url).netloc
    assert sso["redirectUri"] == f"http://{host}/sign-in/sso/callback"
    assert sso["signInPath"] == f"/sign-in/sso?account={setup.account_id}"
    assert CLIENT_SECRET not in json.dumps(reply.body)
    stored = await setup.server.pool.fetchval("SELECT sealed_secret FROM single_sign_on")
    assert CLIENT_SECRET.encode() not in bytes(stored)  # sealed, not stored as it is
    audit = await setup.server.pool.fetchval("SELECT details::text FROM audit_events WHERE action = 'sso.configured'")
    assert CLIENT_SECRET not in audit and '"client_secret_changed": true' in audit
    # Saved again without a secret: the stored one is kept (and the sign-in below still works with it).
    again = await configure(setup, clientSecret=None, enforced=True)
    assert again.errors == [] and again.data["configureSingleSignOn"]["enforced"] is True, again.body
    assert (await SsoBrowser(setup.server).sign_in_through(setup.account_id)).status == 200


# The round trip


async def test_a_first_sign_in_makes_a_member_just_in_time_with_default_and_mapped_grants(setup: Setup) -> None:
    setup.provider.person = {
        "sub": "okta|1001",
        "email": "Ada@Acme.example",
        "email_verified": True,
        "groups": ["analysts", "unmapped"],
    }
    browser = SsoBrowser(setup.server)
    location = await browser.start(setup.account_id)
    authorize = parse_qs(urlsplit(location).query)
    assert location.startswith(setup.provider.url + "/authorize?")
    assert authorize["response_type"] == ["code"] and authorize["client_id"] == [CLIENT_ID]
    assert authorize["code_challenge_method"] == ["S256"] and authorize["scope"] == ["openid email profile"]
    assert authorize["state"][0] and authorize["nonce"][0] and authorize["state"] != authorize["nonce"]
    assert authorize["redirect_uri"] == [f"{browser.origin}/sign-in/sso/callback"]
    page = await browser.callback(await browser.at_provider(location))
    assert page.status == 200, page.text
    assert 'http-equiv="refresh" content="0;url=/settings"' in page.text
    session = cookie_of(page.set_cookie, COOKIE)
    assert session is not None
    morsel = session[COOKIE]
    assert morsel["secure"] and morsel["httponly"] and morsel["path"] == "/" and morsel["samesite"] == "Strict"
    # The client authenticated with HTTP Basic and proved the PKCE verifier.
    [exchange] = setup.provider.token_requests
    assert exchange["method"] == "client_secret_basic" and exchange["form"]["code_verifier"]
    # The member: made just in time, DEVELOPER (default) and ANALYST (the analysts group) and nothing else.
    user = await user_of(setup.server, setup.account_id, "ada@acme.example")
    assert user is not None and user["state"] == "active"
    assert await held(setup.server, user["id"]) == {("DEVELOPER", True), ("ANALYST", True)}
    # The session works for GraphQL from the pages (the CSRF header), as that member.
    viewer = await browser.gql(VIEWER)
    assert viewer.status == 200 and viewer.data["viewer"]["user"] == {"id": user["id"], "email": "ada@acme.example"}
    without_header = await setup.server.gql(
        VIEWER, headers={"Cookie": f"{COOKIE}={browser.cookie}", "Host": browser.host}
    )
    assert without_header.status == 403, without_header.body
    actions = [
        row["action"]
        for row in await setup.server.pool.fetch("SELECT action FROM audit_events WHERE source = 'sign_in' ORDER BY id")
    ]
    assert actions == ["user.created", "sso.linked", "session.started"]
    method = await setup.server.pool.fetchval("SELECT method FROM sessions WHERE user_id = $1", user["id"])
    assert method == "sso"


async def test_a_linked_member_signs_in_again_as_the_same_member(setup: Setup) -> None:
    first = SsoBrowser(setup.server)
    assert (await first.sign_in_through(setup.account_id)).status == 200
    user = await user_of(setup.server, setup.account_id, "ada@acme.example")
    assert user is not None
    # The provider now says the person changed e-mail: the link is by (issuer, subject), so the same member.
    setup.provider.person = {**setup.provider.person, "email": "ada.lovelace@acme.example", "groups": ["analysts"]}
    second = SsoBrowser(setup.server)
    assert (await second.sign_in_through(setup.account_id)).status == 200
    assert (await second.gql(VIEWER)).data["viewer"]["user"]["id"] == user["id"]
    assert await user_of(setup.server, setup.account_id, "ada.lovelace@acme.example") is None
    # A later sign-in adds the grants of the groups the member is in now.
    assert await held(setup.server, user["id"]) == {("DEVELOPER", True), ("ANALYST", True)}
