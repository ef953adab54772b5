"""Single sign-on through a real OpenID provider (panva's oidc-provider, tests/e2e/oidc_provider.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import aiohttp

from tests.e2e.oidc_provider import CALLBACK_PATH, openid_provider

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
