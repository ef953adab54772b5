"""Single sign-on with an OpenID provider of the test's own (tests/api/oidc_provider.py) over HTTP on loopback:
configureSingleSignOn, the browser's round trip (``/sign-in/sso`` → the provider → ``/sign-in/sso/callback``),
members made just in time and linked by (issuer, subject), enforced single sign-on, the session's cap, and the
attack table: each attack first shown reachable (the honest value signs in, or the forged token is well-formed
and would be taken), then refused with a page and ``sign_in.refused`` audited with its reason."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.api.oidc_issuer import ec_key, hs256_with_public_key, unsigned
from tests.api.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, running_provider
from tests.api.scim_calls import provisioned, scim_token
from tests.api.sign_in_calls import Authenticator, Browser, unb64
from tests.api.test_cli import external, tokengate
from tests.api.test_personal_tokens import DEACTIVATE, member
from tests.conftest import Server, free_port, make_config, start_server
from tokengate.core.browser_sessions import COOKIE
from tokengate.core.single_sign_on import FLOW_COOKIE
from tokengate.http.token_exchange import ISSUER_KEYS
from tokengate.services import OPERATOR, sign_in
from tokengate.store import grants as grant_store

SSO_FIELDS = (
    "issuer clientId emailDomains trustEmailsWithoutVerification defaultGrants { permissionSet allProjects } "
    "groupsClaim groupMappings { group grants { permissionSet allProjects } } enforced signInAgainAfterSeconds "
    "redirectUri signInPath linksExistingMembers updatedAt"
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
            flow = morsel[FLOW_COOKIE]
            assert flow["secure"] and flow["httponly"] and flow["path"] == "/" and flow["samesite"] == "Lax"
            assert not flow["domain"] and flow["max-age"] == "600"
            self.flow_cookie = flow.value
            self.server.issued.append(flow.value)
            return response.headers["Location"]

    async def at_provider(self, location: str) -> str:
        """The provider signs the person in and sends the browser back: the callback URL."""
        async with self.server.session.get(location, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            back = response.headers["Location"]
        query = parse_qs(urlsplit(back).query)
        self.server.issued.extend([*query.get("code", []), *query.get("state", [])])  # never in a log line
        return back

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
    assert sso["linksExistingMembers"] is True  # saved by the account admin
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
    updated = await setup.server.pool.fetchval("SELECT details::text FROM audit_events WHERE action = 'user.updated'")
    assert '"via": "sso"' in updated


async def test_rotated_provider_keys_es256_and_client_secret_post_sign_in(setup: Setup) -> None:
    assert (await SsoBrowser(setup.server).sign_in_through(setup.account_id)).status == 200
    fetched = setup.provider.requests
    # The provider rotates to an ES256 key: the unknown kid refetches the JWKS (once the refetch cooldown, 0.05 s
    # here, has passed since the last fetch), and the sign-in goes on.
    setup.provider.keys = [ec_key("k2")]
    await asyncio.sleep(0.1)
    assert (await SsoBrowser(setup.server).sign_in_through(setup.account_id)).status == 200
    assert setup.provider.requests > fetched
    assert json.loads(unb64(setup.provider.id_tokens[-1].split(".")[0]))["alg"] == "ES256"
    # A provider that takes the client's secret in the form only (its discovery document says so).
    setup.provider.auth_methods = ["client_secret_post"]
    setup.server.app[ISSUER_KEYS]._entries.clear()  # the cached discovery document is 5 minutes old in this test
    assert (await SsoBrowser(setup.server).sign_in_through(setup.account_id)).status == 200
    assert [request["method"] for request in setup.provider.token_requests] == [
        "client_secret_basic",
        "client_secret_basic",
        "client_secret_post",
    ]


async def test_the_groups_scope_is_asked_only_of_a_provider_that_lists_it(setup: Setup) -> None:
    """Okta sends the groups claim only for the ``groups`` scope; most providers refuse a scope they do not know."""
    provider = setup.provider
    provider.groups_need_scope = True
    provider.person = {**provider.person, "groups": ["analysts"]}
    provider.scopes_supported = ["openid", "email", "profile"]
    browser = SsoBrowser(setup.server)
    location = await browser.start(setup.account_id)
    assert parse_qs(urlsplit(location).query)["scope"] == ["openid email profile"]
    # Why it is not asked of every provider: this one refuses the request with it.
    with_groups = location.replace("scope=openid+email+profile", "scope=openid+email+profile+groups")
    assert with_groups != location
    assert parse_qs(urlsplit(await browser.at_provider(with_groups)).query)["error"] == ["invalid_scope"]
    assert (await browser.callback(await browser.at_provider(location))).status == 200
    user = await user_of(setup.server, setup.account_id, "ada@acme.example")
    assert user is not None
    assert await held(setup.server, user["id"]) == {("DEVELOPER", True)}  # no groups claim without the scope
    # The provider lists it (the cached discovery document forgotten): asked, the claim sent, the group mapped.
    provider.scopes_supported = ["openid", "email", "profile", "groups"]
    setup.server.app[ISSUER_KEYS]._entries.clear()
    again = SsoBrowser(setup.server)
    location = await again.start(setup.account_id)
    assert parse_qs(urlsplit(location).query)["scope"] == ["openid email profile groups"]
    assert (await again.callback(await again.at_provider(location))).status == 200
    assert await held(setup.server, user["id"]) == {("DEVELOPER", True), ("ANALYST", True)}


# The attack table: each attack first reachable, then refused with a page and audited with its reason.


async def refused(browser: SsoBrowser, url: str, status: int, words: str, **kwargs: Any) -> Page:
    page = await browser.callback(url, **kwargs)
    assert page.status == status, page.text
    assert words in page.text, page.text
    assert cookie_of(page.set_cookie, COOKIE) is None  # no session
    return page


async def test_a_state_mismatch_no_flow_cookie_or_another_flows_cookie_is_refused(setup: Setup) -> None:
    honest = SsoBrowser(setup.server)
    url = await honest.at_provider(await honest.start(setup.account_id))
    state = parse_qs(urlsplit(url).query)["state"][0]
    # The attacker's own flow, in the attacker's browser: a callback URL the victim could be lured to.
    attacker = SsoBrowser(setup.server)
    attacker_url = await attacker.at_provider(await attacker.start(setup.account_id))
    # The victim's browser holds its own flow's cookie; the attacker's callback carries the attacker's state.
    await refused(honest, attacker_url, 400, "Start again")
    # Without the flow cookie at all, the attacker's URL signs nobody in either.
    await refused(attacker, attacker_url, 400, "Start again", flow_cookie=None)
    # A state altered by one character in the right browser.
    third = SsoBrowser(setup.server)
    third_url = await third.at_provider(await third.start(setup.account_id))
    assert (await SsoBrowser(setup.server).sign_in_through(setup.account_id)).status == 200  # reachable: honest
    altered = third_url.replace("state=", "state=x", 1)
    await refused(third, altered, 400, "Start again")
    assert state  # the honest state was never used: its flow was taken by the refused callback
    assert await refusals(setup.server) == ["state_mismatch", "no_flow_cookie", "state_mismatch"]
    assert await user_of(setup.server, setup.account_id, "ada@acme.example") is not None  # only the honest one


async def test_a_replayed_code_is_refused(setup: Setup) -> None:
    browser = SsoBrowser(setup.server)
    url = await browser.at_provider(await browser.start(setup.account_id))
    assert (await browser.callback(url)).status == 200  # the callback works ...
    await refused(browser, url, 400, "already used")  # ... once: the flow was taken
    # In a new flow of the attacker's, the old code with the new state: the provider refuses the used code (and
    # the new flow's PKCE verifier, which is not the one the code was issued for).
    attacker = SsoBrowser(setup.server)
    fresh = await attacker.at_provider(await attacker.start(setup.account_id))
    old_code = parse_qs(urlsplit(url).query)["code"][0]
    fresh_state = parse_qs(urlsplit(fresh).query)["state"][0]
    replay = f"{attacker.origin}/sign-in/sso/callback?code={old_code}&state={fresh_state}"
    await refused(attacker, replay, 401, "could not be verified")
    # A provider that takes a code twice (and skips PKCE): the ID token then carries the old flow's nonce.
    setup.provider.strict = False
    again = SsoBrowser(setup.server)
    again_url = await again.at_provider(await again.start(setup.account_id))
    again_state = parse_qs(urlsplit(again_url).query)["state"][0]
    await refused(again, f"{again.origin}/sign-in/sso/callback?code={old_code}&state={again_state}", 401, "verified")
    assert await refusals(setup.server) == ["flow_already_used", "code_refused (invalid_grant)", "nonce_mismatch"]


async def test_a_replayed_nonce_an_id_token_of_an_earlier_flow_is_refused(setup: Setup) -> None:
    assert (await SsoBrowser(setup.server).sign_in_through(setup.account_id)).status == 200  # the token worked
    earlier = setup.provider.id_tokens[0]
    setup.provider.forge = lambda claims: earlier  # the provider (or a man in the middle) answers the old token
    browser = SsoBrowser(setup.server)
    await refused(browser, await browser.at_provider(await browser.start(setup.account_id)), 401, "verified")
    assert await refusals(setup.server) == ["nonce_mismatch"]


async def attack(setup: Setup, honest: Any, attacked: Any, reason: str, status: int = 401, words: str = "verified"):
    """The same flow signs in with ``honest`` (a provider setting applied before it) and is refused with
    ``attacked``; the refusal audited ``reason``."""
    honest(setup.provider)
    assert (await SsoBrowser(setup.server).sign_in_through(setup.account_id)).status == 200
    attacked(setup.provider)
    browser = SsoBrowser(setup.server)
    await refused(browser, await browser.at_provider(await browser.start(setup.account_id)), status, words)
    assert (await refusals(setup.server))[-1] == reason


def tampering(**changes: Any):
    def apply(provider: Provider) -> None:
        provider.tamper = lambda claims: {**claims, **changes}

    return apply


def honest_provider(provider: Provider) -> None:
    provider.tamper = None
    provider.forge = None


async def test_a_wrong_audience_is_refused(setup: Setup) -> None:
    await attack(setup, tampering(aud=[CLIENT_ID]), tampering(aud="another-client"), "wrong_audience")
    # Several audiences: the authorized party must be tokengate's client.
    await attack(
        setup,
        tampering(aud=[CLIENT_ID, "other"], azp=CLIENT_ID),
        tampering(aud=[CLIENT_ID, "other"], azp="other"),
        "wrong_authorized_party",
    )


async def test_alg_none_is_refused(setup: Setup) -> None:
    def forge_unsigned(provider: Provider) -> None:
        provider.forge = unsigned

    await attack(setup, honest_provider, forge_unsigned, "algorithm_not_allowed (none)")
    # Reachable: the forged token is well-formed and carries exactly the claims of an honest one.
    forged = setup.provider.id_tokens[-1]
    header, payload, signature = forged.split(".")
    assert json.loads(unb64(header)) == {"alg": "none", "typ": "JWT"} and signature == ""
    assert json.loads(unb64(payload))["iss"] == setup.provider.url


async def test_hs256_signed_with_the_providers_public_key_is_refused(setup: Setup) -> None:
    secrets_used: list[bytes] = []

    def forge_hs256(provider: Provider) -> None:
        def forged(claims: dict[str, Any]) -> str:
            token, secret = hs256_with_public_key(claims, provider.keys[0])
            secrets_used.append(secret)
            return token

        provider.forge = forged

    await attack(setup, honest_provider, forge_hs256, "algorithm_not_allowed (HS256)")
    # Reachable: the HMAC verifies under the public key anyone can fetch from the JWKS, as a verifier that took
    # the algorithm from the token's header would check it.
    forged = setup.provider.id_tokens[-1]
    body, signature = forged.rsplit(".", 1)
    assert hmac.compare_digest(hmac.new(secrets_used[0], body.encode(), hashlib.sha256).digest(), unb64(signature))


async def test_an_expired_id_token_is_refused(setup: Setup) -> None:
    now = int(time.time())
    await attack(
        setup,
        tampering(iat=now - 120, exp=now + 30),  # reachable: old but not expired
        tampering(iat=now - 7200, exp=now - 3600),
        "expired_id_token",
    )


async def test_a_wrong_issuer_is_refused(setup: Setup) -> None:
    # The token is signed by the configured provider's own key; only its iss names another issuer.
    await attack(setup, honest_provider, tampering(iss="https://evil.example"), "wrong_issuer")


async def test_an_unverified_email_is_refused_unless_the_provider_is_trusted_for_it(setup: Setup) -> None:
    def person(email: str, verified: Any):
        def apply(provider: Provider) -> None:
            provider.person = {"sub": f"entra|{uuid.uuid4().hex}", "email": email}
            if verified is not None:
                provider.person["email_verified"] = verified

        return apply

    # email_verified true makes a member; false, or absent (Entra ID sends none), does not: the nOAuth takeover.
    await attack(setup, person("ada@acme.example", True), person("bob@acme.example", False), "email_not_verified", 403)
    await attack(setup, person("cy@acme.example", True), person("dee@acme.example", None), "email_not_verified", 403)
    assert await user_of(setup.server, setup.account_id, "bob@acme.example") is None
    assert await user_of(setup.server, setup.account_id, "dee@acme.example") is None
    # The admin marks the provider authoritative for its domains: an e-mail without email_verified makes a member,
    # and one the provider says is not verified still does not.
    assert (await configure(setup, clientSecret=None, trustEmailsWithoutVerification=True)).errors == []
    await attack(setup, person("dee@acme.example", None), person("eve@acme.example", False), "email_not_verified", 403)
    assert await user_of(setup.server, setup.account_id, "dee@acme.example") is not None


async def test_an_email_of_another_domain_is_refused(setup: Setup) -> None:
    def person(email: str, sub: str):
        def apply(provider: Provider) -> None:
            provider.person = {"sub": sub, "email": email, "email_verified": True}

        return apply

    await attack(
        setup,
        person("ada@acme.example", "okta|1"),
        person("mallory@evil.example", "okta|2"),
        "email_domain_not_allowed",
        403,
        "not of a domain",
    )
    # Nor a domain that merely ends like one of the account's.
    await attack(
        setup,
        person("bob@acme.example", "okta|3"),
        person("eve@notacme.example", "okta|4"),
        "email_domain_not_allowed",
        403,
        "not of a domain",
    )
    assert await user_of(setup.server, setup.account_id, "mallory@evil.example") is None


async def test_a_deactivated_member_is_refused(setup: Setup) -> None:
    browser = SsoBrowser(setup.server)
    assert (await browser.sign_in_through(setup.account_id)).status == 200  # reachable: the member signs in
    user = await user_of(setup.server, setup.account_id, "ada@acme.example")
    assert user is not None
    reply = await setup.server.gql(DEACTIVATE, {"id": user["id"]}, setup.admin)
    assert reply.errors == [], reply.body
    assert (await browser.gql(VIEWER)).status == 401  # the open session ended at once
    again = SsoBrowser(setup.server)
    await refused(again, await again.at_provider(await again.start(setup.account_id)), 403, "deactivated")
    assert await refusals(setup.server) == ["user_deactivated"]


async def test_another_subject_claiming_an_already_linked_members_email_is_not_linked(setup: Setup) -> None:
    assert (await SsoBrowser(setup.server).sign_in_through(setup.account_id)).status == 200  # okta|1001 is ada
    user = await user_of(setup.server, setup.account_id, "ada@acme.example")
    assert user is not None
    # Reachable: the configuration links existing members (an account admin saved it), and an unlinked member's
    # e-mail claimed by a new subject links (below, the account admin made by bootstrap).
    setup.provider.person = {"sub": "okta|7777", "email": "admin@acme.example", "email_verified": True}
    assert (await SsoBrowser(setup.server).sign_in_through(setup.account_id)).status == 200
    # A second subject of the same issuer claiming ada's e-mail: ada is connected to okta|1001 already.
    setup.provider.person = {"sub": "okta|6666", "email": "ada@acme.example", "email_verified": True}
    browser = SsoBrowser(setup.server)
    page = await refused(browser, await browser.at_provider(await browser.start(setup.account_id)), 403, "another")
    assert "already connected to another identity" in page.text
    assert await refusals(setup.server) == ["email_taken"]
    links = await setup.server.pool.fetch("SELECT subject, user_id FROM single_sign_on_links ORDER BY created_at")
    assert [(row["subject"], row["user_id"]) for row in links] == [
        ("okta|1001", user["id"]),
        ("okta|7777", setup.admin_user_id),
    ]


# Members who exist before their first sign-in through the provider


async def sso_viewer(browser: SsoBrowser) -> str:
    reply = await browser.gql(VIEWER)
    assert reply.status == 200, reply.body
    return str(reply.data["viewer"]["user"]["id"])


async def links_of(server: Server) -> list[tuple[str, str]]:
    rows = await server.pool.fetch("SELECT subject, user_id FROM single_sign_on_links ORDER BY created_at")
    return [(row["subject"], row["user_id"]) for row in rows]


async def linked_details(server: Server) -> list[dict[str, Any]]:
    rows = await server.pool.fetch("SELECT details FROM audit_events WHERE action = 'sso.linked' ORDER BY id")
    return [json.loads(row["details"]) for row in rows]


def an_analyst(sub: str, email: str) -> dict[str, Any]:
    """The claims of a person whose e-mail the provider verified, in the mapped group ``analysts``."""
    return {"sub": sub, "email": email, "email_verified": True, "groups": ["analysts"]}


async def test_a_member_made_by_create_user_is_linked_at_their_first_sign_in_and_keeps_their_grants(
    setup: Setup,
) -> None:
    job_admin = [{"permissionSet": "JOB_ADMIN", "allProjects": True}]
    grace_id, grace_token = await member(setup.server, setup.admin, "Grace@Acme.example", job_admin)
    setup.provider.person = an_analyst("okta|2002", "grace@acme.example")
    browser = SsoBrowser(setup.server)
    page = await browser.sign_in_through(setup.account_id)
    assert page.status == 200, page.text
    # The same member (no new one), their own grants kept, the mapped group's added; not the default grants,
    # which are for members made just in time.
    assert await sso_viewer(browser) == grace_id
    assert await held(setup.server, grace_id) == {("JOB_ADMIN", True), ("ANALYST", True)}
    assert await setup.server.pool.fetchval("SELECT count(*) FROM users") == 2
    assert await links_of(setup.server) == [("okta|2002", grace_id)]
    actions = [
        (row["action"], row["actor"])
        for row in await setup.server.pool.fetch(
            "SELECT action, actor FROM audit_events WHERE source = 'sign_in' ORDER BY id"
        )
    ]
    assert actions == [(action, f"user:{grace_id}") for action in ("sso.linked", "user.updated", "session.started")]
    assert await linked_details(setup.server) == [
        {"user_id": grace_id, "issuer": setup.provider.url, "existing_member": True}
    ]
    assert (await setup.server.gql(VIEWER, token=grace_token)).data["viewer"]["user"]["id"] == grace_id
    # Later sign-ins go by the link.
    again = SsoBrowser(setup.server)
    assert (await again.sign_in_through(setup.account_id)).status == 200
    assert await sso_viewer(again) == grace_id


async def test_a_member_provisioned_by_scim_is_linked_at_their_first_sign_in(setup: Setup) -> None:
    _, scim_secret = await scim_token(setup.server, setup.admin)
    record = await provisioned(
        setup.server,
        scim_secret,
        "hopper@acme.example",
        emails=[{"value": "hopper@acme.example", "primary": True}],
    )
    hopper_id = record["id"]
    before = await held(setup.server, hopper_id)
    setup.provider.person = an_analyst("00u-hopper", "hopper@acme.example")
    browser = SsoBrowser(setup.server)
    assert (await browser.sign_in_through(setup.account_id)).status == 200
    assert await sso_viewer(browser) == hopper_id
    assert await held(setup.server, hopper_id) == before | {("ANALYST", True)}
    assert await links_of(setup.server) == [("00u-hopper", hopper_id)]
    assert (await linked_details(setup.server))[-1]["existing_member"] is True


async def test_a_security_admins_configuration_does_not_link_existing_members(setup: Setup) -> None:
    """The attack: a SECURITY_ADMIN (AUTH_PROVIDER:WRITE) points the account at a provider they control and claims
    the account admin's e-mail there."""
    async with running_provider() as evil:
        evil.person = {"sub": "mallory|1", "email": "admin@acme.example", "email_verified": True}
        _, security_token = await member(
            setup.server, setup.admin, "sec@acme.example", [{"permissionSet": "SECURITY_ADMIN", "allProjects": True}]
        )
        # Reachable: saved by an account admin, the same claim at that provider signs in as the account admin.
        saved = await configure(setup, issuer=evil.url, defaultGrants=[], groupMappings=[])
        assert saved.errors == [] and saved.data["configureSingleSignOn"]["linksExistingMembers"] is True
        browser = SsoBrowser(setup.server)
        assert (await browser.sign_in_through(setup.account_id)).status == 200
        assert await sso_viewer(browser) == setup.admin_user_id
        assert await links_of(setup.server) == [("mallory|1", setup.admin_user_id)]
        # The account as it was before that sign-in: no link.
        await setup.server.pool.execute("DELETE FROM single_sign_on_links")
        # The security admin saves the same configuration: it links nobody who exists.
        saved = await configure(setup, security_token, issuer=evil.url, defaultGrants=[], groupMappings=[])
        assert saved.errors == [], saved.body
        assert saved.data["configureSingleSignOn"]["linksExistingMembers"] is False
        audit = await setup.server.pool.fetchval(
            "SELECT details FROM audit_events WHERE action = 'sso.configured' ORDER BY id DESC LIMIT 1"
        )
        assert json.loads(audit)["links_existing_members"] is False
        attacker = SsoBrowser(setup.server)
        await refused(attacker, await attacker.at_provider(await attacker.start(setup.account_id)), 403, "e-mail alone")
        assert (await refusals(setup.server))[-1] == "email_taken"
        assert await links_of(setup.server) == []
        # People who are not members yet are still made just in time under it.
        evil.person = {"sub": "mallory|2", "email": "newcomer@acme.example", "email_verified": True}
        assert (await SsoBrowser(setup.server).sign_in_through(setup.account_id)).status == 200
        newcomer = await user_of(setup.server, setup.account_id, "newcomer@acme.example")
        assert newcomer is not None and await links_of(setup.server) == [("mallory|2", newcomer["id"])]


async def test_an_existing_member_with_an_unverified_email_another_domain_or_deactivated_is_not_linked(
    setup: Setup,
) -> None:
    una_id, _ = await member(setup.server, setup.admin, "una@acme.example", ANALYST)
    vic_id, _ = await member(setup.server, setup.admin, "vic@acme.example", ANALYST)
    zed_id, _ = await member(setup.server, setup.admin, "zed@elsewhere.example", ANALYST)
    dan_id, _ = await member(setup.server, setup.admin, "dan@acme.example", ANALYST)

    def person(sub: str, email: str, verified: Any):
        def apply(provider: Provider) -> None:
            provider.person = {"sub": sub, "email": email}
            if verified is not None:
                provider.person["email_verified"] = verified

        return apply

    una = person("okta|una", "una@acme.example", True)
    # Reachable: una's verified e-mail links una (then signs in by the link); vic's unverified e-mail (false, or
    # absent) does not link vic.
    await attack(setup, una, person("okta|vic", "vic@acme.example", False), "email_not_verified", 403)
    await attack(setup, una, person("okta|vic", "vic@acme.example", None), "email_not_verified", 403)
    # A member of another domain: the e-mail rule refuses it before any member is looked for.
    await attack(
        setup,
        una,
        person("okta|zed", "zed@elsewhere.example", True),
        "email_domain_not_allowed",
        403,
        "not of a domain",
    )
    # A deactivated member.
    assert (await setup.server.gql(DEACTIVATE, {"id": dan_id}, setup.admin)).errors == []
    await attack(setup, una, person("okta|dan", "dan@acme.example", True), "user_deactivated", 403, "deactivated")
    assert await links_of(setup.server) == [("okta|una", una_id)]
    for user_id in (vic_id, zed_id, dan_id):
        assert await held(setup.server, user_id) == {("ANALYST", True)}


# Who may configure it, and what it enforces


async def test_a_mapping_to_account_admin_is_refused_at_save_unless_an_account_admin_saves_it(setup: Setup) -> None:
    security = [{"permissionSet": "SECURITY_ADMIN", "allProjects": True}]
    _, token = await member(setup.server, setup.admin, "sec@acme.example", security)
    # Reachable: the security admin (AUTH_PROVIDER:WRITE) configures a mapping to a set it holds itself.
    mapped = [{"group": "security", "grants": security}]
    saved = await configure(setup, token, defaultGrants=[], groupMappings=mapped)
    assert saved.errors == [], saved.body
    admin_mapping = [{"group": "admins", "grants": [{"permissionSet": "ACCOUNT_ADMIN", "allProjects": True}]}]
    refused_save = await configure(setup, token, defaultGrants=[], groupMappings=admin_mapping)
    assert refused_save.codes == ["FORBIDDEN"] and "ACCOUNT_ADMIN" in refused_save.errors[0]["message"]
    as_default = await configure(setup, token, defaultGrants=admin_mapping[0]["grants"], groupMappings=[])
    assert as_default.codes == ["FORBIDDEN"], as_default.body
    # A set it could not give a member (DEVELOPER's project access) is refused as createUser refuses it.
    developer = await configure(setup, token, defaultGrants=DEVELOPER, groupMappings=[])
    assert developer.codes == ["FORBIDDEN"], developer.body
    read = await setup.server.gql(READ, token=setup.admin)
    assert read.data["account"]["singleSignOn"]["groupMappings"][0]["group"] == "security"  # unchanged
    # The account admin may map ACCOUNT_ADMIN; a member of that group is made one just in time.
    assert (await configure(setup, groupMappings=admin_mapping)).errors == []
    setup.provider.person = {**setup.provider.person, "groups": ["admins"]}
    assert (await SsoBrowser(setup.server).sign_in_through(setup.account_id)).status == 200
    user = await user_of(setup.server, setup.account_id, "ada@acme.example")
    assert user is not None and ("ACCOUNT_ADMIN", True) in await held(setup.server, user["id"])


async def passkey_of(server: Server, account_id: str, user_id: str) -> tuple[Browser, Authenticator]:
    """A passkey registered from an invitation the operator made (``tokengate invite-user``)."""
    _, secret = await sign_in.create_invitation(
        server.runtime.backend, OPERATOR, account_id, user_id, sign_in.sign_in_timeouts(server.config)
    )
    server.issued.append(secret)
    browser, authenticator = Browser(server), Authenticator()
    registered = await browser.register(secret, authenticator)
    assert registered.status == 200, registered.body
    return browser, authenticator


async def test_enforced_sso_refuses_a_members_passkey_but_not_an_admins_and_remove_sso_lifts_it(
    setup: Setup, database: str
) -> None:
    dev_id, _ = await member(setup.server, setup.admin, "dev@acme.example", DEVELOPER)
    dev, dev_key = await passkey_of(setup.server, setup.account_id, dev_id)
    admin, admin_key = await passkey_of(setup.server, setup.account_id, setup.admin_user_id)
    assert (await dev.sign_in(dev_key)).status == 200  # reachable: both sign in with their passkeys
    assert (await admin.sign_in(admin_key)).status == 200
    assert (await configure(setup, clientSecret=None, enforced=True)).errors == []
    refused_passkey = await Browser(setup.server).sign_in(dev_key)
    assert refused_passkey.status == 403, refused_passkey.body
    message = refused_passkey.body["errors"][0]["message"]
    assert "single sign-on" in message and f"/sign-in/sso?account={setup.account_id}" in message
    # An invitation does not get round it either (a new invitation also revokes the member's passkey).
    _, secret = await sign_in.create_invitation(
        setup.server.runtime.backend, OPERATOR, setup.account_id, dev_id, sign_in.sign_in_timeouts(setup.server.config)
    )
    setup.server.issued.append(secret)
    invited = await Browser(setup.server).post("/sign-in/invitation/options", {"invitation": secret})
    assert invited.status == 403, invited.body
    assert (await Browser(setup.server).sign_in(admin_key)).status == 200  # the admin's passkey still works
    reasons = await setup.server.pool.fetch(
        "SELECT details FROM audit_events WHERE action = 'sign_in.refused' ORDER BY id"
    )
    assert [json.loads(row["details"])["reason"] for row in reasons] == ["sso_enforced", "sso_enforced"]
    # The operator's way back in: `tokengate remove-sso` removes the provider, and enforcement with it.
    result = tokengate("remove-sso", "--account-id", setup.account_id, env=external(database))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"account_id": setup.account_id, "issuer": setup.provider.url, "removed": True}
    assert (await Browser(setup.server).register(secret, Authenticator())).status == 200
    removed = await setup.server.pool.fetchrow("SELECT actor, source FROM audit_events WHERE action = 'sso.removed'")
    assert (removed["actor"], removed["source"]) == ("cli", "cli")
    assert (await setup.server.gql(READ, token=setup.admin)).data["account"]["singleSignOn"] is None
    status, text, _ = await setup.server.get("/sign-in/sso?account=" + setup.account_id, allow_redirects=False)
    assert status == 404 and "not configured" in text
    again = tokengate("remove-sso", "--account-id", setup.account_id, env=external(database))
    assert again.returncode == 1 and "has no single sign-on" in again.stderr


async def test_sign_in_again_after_seconds_caps_the_session(setup: Setup) -> None:
    assert (await configure(setup, clientSecret=None, signInAgainAfterSeconds=120)).errors == []
    browser = SsoBrowser(setup.server)
    page = await browser.sign_in_through(setup.account_id)
    assert page.status == 200
    session = cookie_of(page.set_cookie, COOKIE)
    assert session is not None and session[COOKIE]["max-age"] == "120"
    lifetime = "SELECT extract(epoch FROM absolute_expires_at - created_at) FROM sessions WHERE method = 'sso'"
    assert await setup.server.pool.fetchval(lifetime) == 120
    # Lowered, the setting holds for the sessions already open.
    assert (await configure(setup, clientSecret=None, signInAgainAfterSeconds=60)).errors == []
    assert await setup.server.pool.fetchval(lifetime) == 60
    assert (await browser.gql(VIEWER)).status == 200
    # Time is moved in the database rather than waited for: the session was signed in 61 s ago.
    await setup.server.pool.execute(
        "UPDATE sessions SET created_at = created_at - interval '61 seconds',"
        " absolute_expires_at = absolute_expires_at - interval '61 seconds' WHERE method = 'sso'"
    )
    assert (await browser.gql(VIEWER)).status == 401
    # Signing in again through the provider gives a new session.
    assert (await browser.sign_in_through(setup.account_id)).status == 200
    assert (await browser.gql(VIEWER)).status == 200


async def test_configure_input_errors_are_bad_user_input(setup: Setup, database: str, tmp_path: Path) -> None:
    async def problem(server: Server, token: str, **overrides: Any) -> str:
        reply = await server.gql(CONFIGURE, {"input": sso_input(setup.provider, **overrides)}, token)
        assert reply.status == 200 and reply.codes == ["BAD_USER_INPUT"], reply.body
        assert CLIENT_SECRET not in json.dumps(reply.body)
        return reply.errors[0]["message"]

    assert "issuer" in await problem(setup.server, setup.admin, issuer="not a url")
    assert "issuer" in await problem(setup.server, setup.admin, issuer="ftp://sso.acme.example")
    assert "issuer" in await problem(setup.server, setup.admin, issuer="https://sso.acme.example/?tenant=1")
    assert "emailDomains" in await problem(setup.server, setup.admin, emailDomains=[])
    assert "emailDomains" in await problem(setup.server, setup.admin, emailDomains=["not a domain"])
    assert "signInAgainAfterSeconds" in await problem(setup.server, setup.admin, signInAgainAfterSeconds=0)
    assert "groupMappings" in await problem(
        setup.server, setup.admin, groupMappings=[{"group": "a", "grants": []}, {"group": "a", "grants": []}]
    )
    # The first time, the client secret is required.
    other = await setup.server.bootstrap(name="Beta", email="admin@beta.example")
    assert "clientSecret is required" in await problem(setup.server, other.token, clientSecret=None)
    # Without the operator's allow-private setting: https only, and no private address.
    async for strict in start_server(database, config(tmp_path / "strict", webhook_allow_private=False)):
        admin = await strict.bootstrap(name="Gamma", email="admin@gamma.example")
        assert "private" in await problem(strict, admin.token, issuer="https://10.1.2.3")
        assert "private" in await problem(strict, admin.token, issuer="https://127.0.0.1:8443")
        assert "https" in await problem(strict, admin.token, issuer="http://sso.gamma.example")
        accepted = await strict.gql(
            CONFIGURE, {"input": sso_input(setup.provider, issuer="https://sso.gamma.example")}, admin.token
        )
        assert accepted.errors == [], accepted.body  # reachable: a public https issuer is taken


async def test_sign_in_pages_for_an_unknown_account_or_an_unreachable_provider(setup: Setup) -> None:
    status, text, _ = await setup.server.get("/sign-in/sso?account=acc_unknown", allow_redirects=False)
    assert status == 404 and "not configured" in text
    other = await setup.server.bootstrap(name="Beta", email="admin@beta.example")
    dead = f"http://127.0.0.1:{free_port()}"
    reply = await setup.server.gql(CONFIGURE, {"input": sso_input(setup.provider, issuer=dead)}, other.token)
    assert reply.errors == [], reply.body
    status, text, _ = await setup.server.get("/sign-in/sso?account=" + other.account_id, allow_redirects=False)
    assert status == 502 and "could not be reached" in text
    # A callback without any flow is refused with a page, never a 500.
    status, text, _ = await setup.server.get("/sign-in/sso/callback?code=x&state=y", allow_redirects=False)
    assert status == 400 and "Start again" in text
