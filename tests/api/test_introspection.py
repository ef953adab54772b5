"""POST /oauth/introspect (RFC 7662) through HTTP with real tokens: the calling resource server's own credential,
exactly ``{"active": false}`` for anything not usable now, an active token's fields, and the failure budget of
the caller (not of its address). Also driven by Authlib's RFC 7662 resource-server validator."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749 import ResourceProtector
from authlib.oauth2.rfc6749.requests import JsonRequest
from authlib.oauth2.rfc6750 import InsufficientScopeError, InvalidTokenError
from authlib.oauth2.rfc7662 import IntrospectTokenValidator

from tests.api import service_token_calls as calls
from tests.api.conftest import from_address
from tests.api.service_token_calls import grant
from tests.api.test_auth_check import check, project
from tests.api.test_personal_tokens import DEACTIVATE, member
from tests.conftest import Server, last_character_changed, make_config, start_server, store_service_token
from tokengate.core import tokens
from tokengate.core.limits import Limits, Rate
from tokengate.core.policy import Grant

INACTIVE = {"active": False}


async def introspect(
    server: Server, token: str | None, caller: str | None, headers: dict[str, str] | None = None, **form: str
) -> tuple[int, Any, Any]:
    """What a gateway sends: the token asked about in a form, its own token in Authorization."""
    sent = dict(headers or {})
    if caller is not None:
        sent["Authorization"] = f"Bearer {caller}"
    data = dict(form)
    if token is not None:
        data["token"] = token
    async with server.session.post(server.url + "/oauth/introspect", data=data, headers=sent) as response:
        return response.status, await response.json(content_type=None), response.headers


async def answer(server: Server, token: str, caller: str) -> dict[str, Any]:
    status, body, headers = await introspect(server, token, caller)
    assert status == 200, body
    assert headers["Cache-Control"] == "no-store" and headers["Content-Type"].startswith("application/json")
    return body


async def gateway(server: Server, admin_token: str, name: str = "gateway") -> str:
    """The resource server's own credential: a service token with a grant unrelated to tokens."""
    return (await calls.created(server, admin_token, name, [grant("JOB_VIEWER")])).secret


async def delete(server: Server, admin_token: str, printed_id: str) -> None:
    reply = await server.gql(
        "mutation($id: ID!) { deleteServiceToken(id: $id) { state } }", {"id": printed_id}, admin_token
    )
    assert reply.data == {"deleteServiceToken": {"state": "DELETED"}}, reply.body


async def test_every_token_not_usable_now_answers_exactly_active_false(server):
    admin = await server.bootstrap()
    rs = await gateway(server, admin.token)
    other = await server.bootstrap("Other")
    known = await calls.created(server, admin.token, "known")
    wrong_secret = "tgs_" + known.secret[4:20] + tokens.random_base62(32)
    wrong_secret += tokens.checksum(wrong_secret)
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")], expires_at=past)
    # Precondition: each of these was active when asked about first, then stopped being usable.
    deleted = await calls.created(server, admin.token, "to delete")
    rotated_out = await calls.created(server, admin.token, "to rotate")
    member_id, personal = await member(server, admin.token, "leaver@acme.test", [grant("JOB_VIEWER")])
    legacy = await server.import_legacy_token(
        admin.account_id, "old airflow", datetime(2022, 3, 1, tzinfo=UTC), [Grant("JOB_VIEWER")]
    )
    for secret in (deleted.secret, rotated_out.secret, personal, legacy, known.secret):
        assert (await answer(server, secret, rs))["active"] is True
    await delete(server, admin.token, deleted.id)
    await calls.rotated(server, admin.token, rotated_out.id, revoke=0)  # its window of 0 s is over at once
    assert (await server.gql(DEACTIVATE, {"id": member_id}, admin.token)).errors == []
    legacy_id = next(t["id"] for t in (await calls.listed(server, admin.token)).values() if t["format"] == "LEGACY")
    await delete(server, admin.token, legacy_id)
    inactive = {
        "unknown id, valid checksum": tokens.issue_token("service").text,
        "unknown personal token": tokens.issue_token("user").text,
        "known id, wrong secret": wrong_secret,
        "bad checksum": last_character_changed(known.secret),
        "malformed": "not-a-token",
        "oversized": "tgs_" + "a" * 4000,
        "non-ascii": "é" * 58,
        "expired": expired,
        "deleted": deleted.secret,
        "rotated out after its window": rotated_out.secret,
        "a deactivated user's personal token": personal,
        "a deleted legacy token": legacy,
        "another account's personal token": other.token,
        "another account's service token": await gateway(server, other.token, "theirs"),
    }
    for kind, secret in inactive.items():
        for _ in range(2):  # the second answer comes from what the first taught the cache: the same
            assert await answer(server, secret, rs) == INACTIVE, kind


async def test_an_active_service_tokens_fields(server):
    admin = await server.bootstrap()
    rs = await gateway(server, admin.token)
    first, second = await project(server, admin.token, "one"), await project(server, admin.token, "two")
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    made = await calls.created(
        server,
        admin.token,
        "deployer",
        [grant("JOB_ADMIN", first, second), grant("ACCOUNT_VIEWER")],
        expiresAt=until.isoformat(),
    )
    created_at = datetime.fromisoformat(made.token["createdAt"])
    body = await answer(server, made.secret, rs)
    _, _, headers = await check(server, "", made.secret)
    assert body == {
        "active": True,
        "token_type": "service_token",
        "sub": headers["X-Tokengate-Principal"],  # spelled as forward auth spells it
        "account": admin.account_id,
        "iat": int(created_at.timestamp()),
        "exp": int(until.timestamp()),
        "scope": "JOB_ADMIN ACCOUNT_VIEWER",
        "permission_sets": [
            {"permission_set": "JOB_ADMIN", "all_projects": False, "project_ids": [first, second]},
            {"permission_set": "ACCOUNT_VIEWER", "all_projects": True, "project_ids": []},
        ],
    }
    assert body["sub"] == "service_token:" + made.key and made.secret not in str(body)
    # A token that never expires has no exp.
    forever = await calls.created(server, admin.token, "forever")
    body = await answer(server, forever.secret, rs)
    assert body["active"] is True and "exp" not in body and body["iat"] > 0


async def test_an_active_personal_token_and_the_callers_own(server):
    admin = await server.bootstrap()
    rs = await gateway(server, admin.token)
    body = await answer(server, admin.token, rs)
    assert body["active"] is True and body["token_type"] == "user_token"
    assert body["sub"] == f"user:{admin.user_id}" and body["account"] == admin.account_id
    assert body["exp"] > body["iat"]  # personal tokens always expire
    assert body["permission_sets"] == [{"permission_set": "ACCOUNT_ADMIN", "all_projects": True, "project_ids": []}]
    # A personal token may be the caller too, and any caller may ask about itself.
    assert (await answer(server, rs, admin.token))["token_type"] == "service_token"
    assert (await answer(server, rs, rs))["active"] is True


async def test_a_caller_of_another_account_learns_nothing(server):
    admin = await server.bootstrap()
    ours, theirs = await gateway(server, admin.token), await gateway(server, (await server.bootstrap("Other")).token)
    assert (await answer(server, admin.token, ours))["active"] is True  # the token is active...
    assert await answer(server, admin.token, theirs) == INACTIVE  # ...but not for another account's caller


async def test_the_caller_may_send_its_token_as_an_oauth_client_secret(server):
    """What APISIX (lua-resty-openidc) and Tyk send: client_secret_basic or client_secret_post."""
    admin = await server.bootstrap()
    rs = await gateway(server, admin.token)
    basic = "Basic " + base64.b64encode(f"any-client-id:{rs}".encode()).decode()
    status, body, _ = await introspect(server, admin.token, None, {"Authorization": basic})
    assert status == 200 and body["active"] is True
    status, body, _ = await introspect(server, admin.token, None, client_id="gw", client_secret=rs)
    assert status == 200 and body["active"] is True
    unknown = tokens.issue_token("service").text
    for headers, form in [
        ({"Authorization": "Basic " + base64.b64encode(f"gw:{unknown}".encode()).decode()}, {}),
        ({"Authorization": "Basic not base64!"}, {}),
        ({}, {"client_secret": unknown}),
    ]:
        status, body, response_headers = await introspect(server, admin.token, None, headers, **form)
        assert status == 401 and response_headers["WWW-Authenticate"] == "Bearer", (headers, form)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer " + tokens.issue_token("service").text],
    ids=["none", "malformed", "basic", "unknown"],
)
async def test_a_caller_without_a_valid_credential_gets_401(server, authorization):
    admin = await server.bootstrap()
    headers = {"Authorization": authorization} if authorization is not None else {}
    status, body, response_headers = await introspect(server, admin.token, None, headers)
    assert status == 401 and response_headers["WWW-Authenticate"] == "Bearer"
    assert body["error"] == "invalid_token" and admin.token not in str(body)


async def test_a_caller_refused_by_its_accounts_ip_rules_gets_403(proxied):
    admin = await proxied.bootstrap()
    rs = await gateway(proxied, admin.token)
    reply = await proxied.gql(
        'mutation { setIpRestrictions(enabled: true, rules: [{name: "p", type: DENY, cidrs: ["198.51.100.0/24"]}])'
        " { enabled } }",
        token=admin.token,
    )
    assert reply.errors == [], reply.body
    status, body, _ = await introspect(proxied, admin.token, rs, from_address("198.51.101.9"))
    assert status == 200 and body["active"] is True
    status, body, _ = await introspect(proxied, admin.token, rs, from_address("198.51.100.9"))
    assert status == 403 and body["error"] == "access_denied" and "active" not in body


@pytest.mark.parametrize(
    ("send", "message"),
    [
        ({"json": {"token": "x"}}, "application/x-www-form-urlencoded"),
        ({"data": {"token_type_hint": "access_token"}}, "one token parameter"),
        ({"data": [("token", "a"), ("token", "b")]}, "one token parameter"),
        ({"data": {"token": ""}}, "one token parameter"),
        ({"data": b"token=%ff", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, "not a valid form"),
        ({"data": {"token": "a" * 5000}}, "larger than"),
    ],
    ids=["json", "no token", "two tokens", "empty token", "not utf-8", "too large"],
)
async def test_a_bad_request_gets_400_invalid_request(server, send, message):
    admin = await server.bootstrap()
    headers = {"Authorization": f"Bearer {admin.token}", **send.pop("headers", {})}
    async with server.session.post(server.url + "/oauth/introspect", headers=headers, **send) as response:
        body = await response.json()
        assert response.status == 400 and response.headers["Cache-Control"] == "no-store"
    assert body["error"] == "invalid_request" and message in body["error_description"]


async def test_only_post_answers(server):
    admin = await server.bootstrap()
    status, _, _ = await server.get("/oauth/introspect?token=" + admin.token, headers={"Authorization": "Bearer x"})
    assert status == 405


@pytest.fixture
async def small_budget(database, tmp_path):
    """A server whose failure budget is 5 and refills in hours, not seconds."""
    limits = Limits(cost=Rate(0, 1), failures=Rate(0.001, 5))
    async for running in start_server(database, make_config(tmp_path, limits=limits)):
        yield running


async def test_failures_spend_the_callers_budget_not_its_addresss(small_budget):
    server = small_budget
    admin = await server.bootstrap()
    attacker, neighbour = await gateway(server, admin.token, "compromised"), await gateway(server, admin.token, "rs")
    for _ in range(5):
        assert await answer(server, tokens.issue_token("service").text, attacker) == INACTIVE
    # Past the budget: 429 before any lookup, even for an active token.
    status, body, headers = await introspect(server, admin.token, attacker)
    assert status == 429 and int(headers["Retry-After"]) >= 1 and body["error"] == "slow_down"
    # Another caller from the same address still gets its answers; the address's failure budget is untouched
    # (a wrong token there is still a 401, not a 429), and the attacker itself may still use forward auth.
    assert (await answer(server, admin.token, neighbour))["active"] is True
    assert await answer(server, tokens.issue_token("service").text, neighbour) == INACTIVE
    status, _, _ = await introspect(server, admin.token, tokens.issue_token("service").text)
    assert status == 401
    assert (await check(server, "", attacker))[0] == 200


async def test_authlibs_rfc7662_resource_protector_accepts_and_refuses(server):
    """Authlib's resource-server side of RFC 7662: its ``IntrospectTokenValidator`` asks the endpoint through
    Authlib's own OAuth 2 client (``introspect_token``), the caller's token as the request's auth."""
    admin = await server.bootstrap()
    rs = await gateway(server, admin.token)
    job_admin = await calls.created(server, admin.token, "jobs", [grant("JOB_ADMIN")])
    url = server.url + "/oauth/introspect"

    def bearer(request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {rs}"
        return request

    class TokengateValidator(IntrospectTokenValidator):
        def introspect_token(self, token_string: str) -> dict[str, Any]:
            with OAuth2Session() as client:
                response = client.introspect_token(url, token=token_string, auth=bearer)
            response.raise_for_status()
            return response.json()

    protector = ResourceProtector()
    protector.register_token_validator(TokengateValidator())

    def protected(token: str, scope: str) -> dict[str, Any]:
        return protector.validate_request([scope], JsonRequest("GET", "/jobs", {"Authorization": f"Bearer {token}"}))

    allowed = await asyncio.to_thread(protected, job_admin.secret, "JOB_ADMIN")
    assert allowed["active"] is True and allowed["sub"] == "service_token:" + job_admin.key
    with pytest.raises(InsufficientScopeError):
        await asyncio.to_thread(protected, job_admin.secret, "ACCOUNT_ADMIN")
    await delete(server, admin.token, job_admin.id)
    with pytest.raises(InvalidTokenError):
        await asyncio.to_thread(protected, job_admin.secret, "JOB_ADMIN")
