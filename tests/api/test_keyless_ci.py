"""Keyless CI (issue 25) over HTTP: a loopback OIDC issuer of the test's own signs GitHub- and GitLab-shaped tokens,
``POST /oauth/token`` (RFC 8693) exchanges them under trust policies, and the attack table: each attack first
shown reachable (the same token with the right claim, key or time is accepted), then refused with exactly
``{"error": "invalid_grant"}`` and the reason in the audit log only."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api import service_token_calls as calls
from tests.api.oidc_issuer import Issuer, ec_key, hs256_with_public_key, rsa_key, running_issuer, unsigned
from tests.api.test_auth_check import check
from tests.api.test_cli import external, tokengate
from tests.conftest import Server, make_config, start_server
from tokengate.core import tokens
from tokengate.core import trust_policies as rules
from tokengate.core.errors import Forbidden, InvalidInput, PlanRestricted
from tokengate.core.policy import Grant
from tokengate.http.token_exchange import ISSUER_KEYS
from tokengate.services import OPERATOR, Actor
from tokengate.services import trust_policies as service

AUDIENCE = "https://tokengate.example/acc"
EXCHANGE = {
    "grant_type": rules.GRANT_TYPE,
    "subject_token_type": rules.JWT_TOKEN_TYPE,
}


def config(tmp_path: Path, **overrides: Any):
    values: dict[str, Any] = {
        "webhook_allow_private": True,  # the loopback issuer
        "federation_fetch_timeout_seconds": 5.0,  # room for a busy machine; the slow issuer waits 30 s
        "federation_refetch_cooldown_seconds": 0.05,
    }
    values.update(overrides)
    return make_config(tmp_path, **values)


@dataclass
class Setup:
    server: Server
    issuer: Issuer
    account_id: str
    admin: str
    policy: Any


async def exchange(server: Server, subject_token: str, **form: str) -> tuple[int, Any]:
    data = {**EXCHANGE, "subject_token": subject_token, **form}
    async with server.session.post(server.url + "/oauth/token", data=data) as response:
        body = await response.json(content_type=None)
        if response.status == 200:
            server.issued.append(body["access_token"])
        return response.status, body


async def accepted(setup: Setup, claims: dict[str, Any], **sign: Any) -> str:
    status, body = await exchange(setup.server, setup.issuer.sign(claims, **sign))
    assert status == 200, body
    return body["access_token"]


async def refused(server: Server, token: str) -> None:
    status, body = await exchange(server, token)
    assert (status, body) == (400, {"error": "invalid_grant"})


async def github_policy(setup_server: Server, account_id: str, issuer: Issuer, **preset: Any):
    binding = rules.github_actions(
        audience=AUDIENCE,
        repository="octo-org/app",
        repository_owner_id="4242",
        ref="refs/heads/main",
        issuer=issuer.url,
        **preset,
    )
    return await service.create(
        setup_server.runtime.backend,
        OPERATOR,
        account_id,
        "deploy",
        binding,
        [Grant("JOB_RUNNER")],
        allow_private=True,
    )


@pytest.fixture
async def setup(database: str, tmp_path: Path) -> AsyncIterator[Setup]:
    async with running_issuer() as issuer:
        async for server in start_server(database, config(tmp_path)):
            seeded = await server.bootstrap()
            policy = await github_policy(server, seeded.account_id, issuer)
            yield Setup(server, issuer, seeded.account_id, seeded.token, policy)


async def audit_reasons(setup: Setup) -> list[str]:
    rows = await setup.server.pool.fetch(
        "SELECT details FROM audit_events WHERE action = 'trust_policy.exchange_refused' ORDER BY id"
    )
    return [json.loads(row["details"])["reason"] for row in rows]


# The exchange and what the token does


async def test_github_token_is_exchanged_and_works_on_every_door(setup: Setup) -> None:
    status, body = await exchange(setup.server, setup.issuer.sign(setup.issuer.github(AUDIENCE)))
    assert status == 200, body
    assert body["issued_token_type"] == rules.ACCESS_TOKEN_TYPE
    assert body["token_type"] == "Bearer"
    assert 890 <= body["expires_in"] <= 900  # the default lifetime, 15 minutes
    token = body["access_token"]
    assert token.startswith("tgx_")
    parsed = tokens.parse_token(token)  # the same checksum: offline refusal and secret scanning work
    assert parsed.kind == "exchanged"
    assert (await check(setup.server, token=token))[0] == 200
    reply = await setup.server.gql("{ account { id } }", token=token)
    assert reply.data == {"account": {"id": setup.account_id}}, reply.body
    async with setup.server.session.post(
        setup.server.url + "/oauth/introspect",
        data={"token": token},
        headers={"Authorization": f"Bearer {setup.admin}"},
    ) as response:
        answer = await response.json()
    assert answer["active"] is True and answer["scope"] == "JOB_RUNNER"
    assert answer["exp"] - answer["iat"] == 900
    # Listed under its policy; audited without the presented token or the new one.
    listed = await service.store.active_tokens(setup.server.pool, setup.policy.id)
    assert [row.id for row in listed] == [parsed.lookup]
    details = await setup.server.pool.fetchval(
        "SELECT details::text FROM audit_events WHERE action = 'trust_policy.token_exchanged'"
    )
    assert "jti" in details and token not in details and parsed.lookup in details


async def test_exchanged_token_cannot_mint_tokens(setup: Setup) -> None:
    policy = await service.update(
        setup.server.runtime.backend, OPERATOR, setup.account_id, setup.policy.id, grants=[Grant("ACCOUNT_ADMIN")]
    )
    token = await accepted(setup, setup.issuer.github(AUDIENCE))
    reply = await setup.server.gql(
        calls.CREATE,
        {"input": {"name": "x", "grants": [{"permissionSet": "JOB_RUNNER", "allProjects": True}]}},
        token=token,
    )
    assert reply.codes == ["FORBIDDEN"], reply.body
    assert "trust policy" in reply.errors[0]["message"]
    assert policy.grants == (Grant("ACCOUNT_ADMIN"),)


async def test_gitlab_token_is_exchanged_under_the_gitlab_preset(setup: Setup) -> None:
    binding = rules.gitlab_ci(
        audience=AUDIENCE,
        project_path="group/app",
        namespace_id="77",
        project_id="88",
        ref="main",
        issuer=setup.issuer.url,
    )
    await service.create(
        setup.server.runtime.backend,
        OPERATOR,
        setup.account_id,
        "gl",
        binding,
        [Grant("JOB_VIEWER")],
        max_lifetime_seconds=300,
        allow_private=True,
    )
    status, body = await exchange(setup.server, setup.issuer.sign(setup.issuer.gitlab(AUDIENCE)))
    assert status == 200 and body["expires_in"] <= 300
    # A project of the same path in another namespace (its name re-registered) is refused.
    await refused(setup.server, setup.issuer.sign(setup.issuer.gitlab(AUDIENCE, namespace_id="78")))


async def test_es256_keys_are_accepted(setup: Setup) -> None:
    setup.issuer.keys.insert(0, ec_key("ec1"))
    await accepted(setup, setup.issuer.github(AUDIENCE))


# The attack table


async def test_wrong_audience_issuer_or_subject_is_refused(setup: Setup) -> None:
    issuer = setup.issuer
    await accepted(setup, issuer.github(AUDIENCE))
    await refused(setup.server, issuer.sign(issuer.github("https://other.example")))
    claims = issuer.github(AUDIENCE)
    claims["iss"] = issuer.url + "/other"
    await refused(setup.server, issuer.sign(claims))
    claims = issuer.github(AUDIENCE)
    claims["sub"] = "repo:octo-org/app:ref:refs/heads/feature"
    await refused(setup.server, issuer.sign(claims))
    # A policy that does not check the subject would have let it in: shown with a permissive variant.
    assert rules.mismatch(rules.Binding(issuer.url, AUDIENCE, claims["sub"], {}), claims) is None
    assert "sub" in (await audit_reasons(setup))[-1]


async def test_another_issuer_with_its_own_keys_is_refused(setup: Setup) -> None:
    async with running_issuer() as stranger:
        claims = setup.issuer.github(AUDIENCE)
        await accepted(setup, dict(claims, jti="a"))
        # The stranger signs the same claims with its keys: it is not the issuer the policy trusts.
        await refused(setup.server, stranger.sign(dict(claims, jti="b")))
        assert stranger.requests == 0  # never fetched: only the issuers of stored policies are


async def test_alg_none_is_refused(setup: Setup) -> None:
    claims = setup.issuer.github(AUDIENCE)
    await accepted(setup, dict(claims, jti="signed"))
    await refused(setup.server, unsigned(dict(claims, jti="unsigned")))


async def test_hs256_signed_with_the_public_key_is_refused(setup: Setup) -> None:
    claims = setup.issuer.github(AUDIENCE)
    await accepted(setup, dict(claims, jti="signed"))
    forged, secret = hs256_with_public_key(dict(claims, jti="forged"), setup.issuer.keys[0])
    # Reachable: the public key is public (the JWKS), and the forgery verifies as HS256 under it, as a verifier
    # taking the algorithm from the header would check it.
    body, _, signature = forged.rpartition(".")
    assert hmac.compare_digest(
        hmac.new(secret, body.encode(), hashlib.sha256).digest(),
        base64.urlsafe_b64decode(signature + "=="),
    )
    await refused(setup.server, forged)
    assert "algorithm not allowed" in (await audit_reasons(setup))[-1]


async def test_expired_and_not_yet_valid_tokens_are_refused(setup: Setup) -> None:
    now = int(time.time())
    await accepted(setup, setup.issuer.github(AUDIENCE, exp=now + 30))
    await refused(setup.server, setup.issuer.sign(setup.issuer.github(AUDIENCE, exp=now - 120, iat=now - 400)))
    await accepted(setup, setup.issuer.github(AUDIENCE, nbf=now + 30))  # within the skew
    await refused(setup.server, setup.issuer.sign(setup.issuer.github(AUDIENCE, nbf=now + 600)))
    # A long-lived token is not a CI token.
    await refused(setup.server, setup.issuer.sign(setup.issuer.github(AUDIENCE, exp=now + 7200)))
    reasons = await audit_reasons(setup)
    assert reasons == ["expired", "not yet valid (nbf)", "lives too long"]


async def test_unknown_kid_is_refused(setup: Setup) -> None:
    await accepted(setup, setup.issuer.github(AUDIENCE))
    rogue = rsa_key("rogue")
    await refused(setup.server, setup.issuer.sign(setup.issuer.github(AUDIENCE), key=rogue))
    # A known kid with another key's signature is refused too.
    impostor = rsa_key("k1")
    await refused(setup.server, setup.issuer.sign(setup.issuer.github(AUDIENCE), key=impostor))


async def test_a_jti_is_exchanged_once(setup: Setup) -> None:
    token = setup.issuer.sign(setup.issuer.github(AUDIENCE))
    status, _ = await exchange(setup.server, token)
    assert status == 200
    await refused(setup.server, token)
    assert (await audit_reasons(setup))[-1] == "jti replayed"


async def test_same_repository_under_another_owner_id_is_refused(setup: Setup) -> None:
    await accepted(setup, setup.issuer.github(AUDIENCE, owner_id="4242"))
    await refused(setup.server, setup.issuer.sign(setup.issuer.github(AUDIENCE, owner_id="5151")))
    assert (await audit_reasons(setup))[-1] == "no policy matches (claim repository_owner_id)"


async def test_keys_rotated_at_the_issuer(setup: Setup) -> None:
    issuer = setup.issuer
    old = issuer.keys[0]
    await accepted(setup, issuer.github(AUDIENCE))  # the old key, fetched and cached
    new = rsa_key("k2")
    issuer.keys = [new]  # rotated: the old key is removed
    await asyncio.sleep(0.1)  # past the refetch cooldown
    await accepted(setup, issuer.github(AUDIENCE), key=new)  # unknown kid: refetched, accepted
    await refused(setup.server, issuer.sign(issuer.github(AUDIENCE), key=old))


async def test_slow_or_huge_issuer_fails_in_bounded_time_and_others_are_served(setup: Setup) -> None:
    server, issuer = setup.server, setup.issuer
    service_token = await accepted(setup, issuer.github(AUDIENCE))
    keys = server.app[ISSUER_KEYS]
    keys._entries.clear()  # forget the cached keys: the next exchange fetches
    issuer.delay = 30.0
    pending = asyncio.ensure_future(exchange(server, issuer.sign(issuer.github(AUDIENCE))))
    await asyncio.sleep(0.2)
    assert not pending.done()
    assert (await check(server, token=service_token))[0] == 200  # others are served meanwhile
    assert await asyncio.wait_for(pending, 20) == (400, {"error": "invalid_grant"})
    issuer.delay = 0.0
    issuer.huge = True
    await asyncio.sleep(0.1)  # past the cooldown
    status, body = await asyncio.wait_for(exchange(server, issuer.sign(issuer.github(AUDIENCE))), 20)
    assert (status, body) == (400, {"error": "invalid_grant"})
    reasons = await audit_reasons(setup)
    assert "no answer within 5 s" in reasons[0] and "larger than" in reasons[1], reasons


async def test_one_fetch_at_a_time_per_issuer(setup: Setup) -> None:
    issuer = setup.issuer
    issuer.delay = 0.3
    before = issuer.requests
    answers = await asyncio.gather(*(exchange(setup.server, issuer.sign(issuer.github(AUDIENCE))) for _ in range(5)))
    assert [status for status, _ in answers] == [200] * 5
    assert issuer.requests - before == 1


async def test_policy_deleted_while_its_token_is_in_use_on_two_instances(
    setup: Setup, database: str, tmp_path: Path
) -> None:
    token = await accepted(setup, setup.issuer.github(AUDIENCE))
    async for other in start_server(database, config(tmp_path / "b")):
        assert (await check(setup.server, token=token))[0] == 200
        assert (await check(other, token=token))[0] == 200  # cached on both
        await service.delete(other.runtime.backend, OPERATOR, setup.account_id, setup.policy.id)
        deadline = time.monotonic() + 10
        while (await check(setup.server, token=token))[0] != 401:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert (await check(other, token=token))[0] == 401
        await refused(other, setup.issuer.sign(setup.issuer.github(AUDIENCE)))


async def test_policy_changed_revokes_its_tokens(setup: Setup) -> None:
    token = await accepted(setup, setup.issuer.github(AUDIENCE))
    assert (await check(setup.server, token=token))[0] == 200
    await service.update(setup.server.runtime.backend, OPERATOR, setup.account_id, setup.policy.id, name="renamed")
    assert (await check(setup.server, token=token))[0] == 401


async def test_bad_requests_are_named_and_refusals_spend_the_failure_budget(setup: Setup) -> None:
    async with setup.server.session.post(setup.server.url + "/oauth/token", data={"grant_type": "password"}) as r:
        assert r.status == 400 and (await r.json())["error"] == "unsupported_grant_type"
    status, body = await exchange(setup.server, "x", subject_token_type="urn:ietf:params:oauth:token-type:id_token")
    assert status == 400 and body["error"] == "invalid_request"
    for _ in range(60):
        status, body = await exchange(setup.server, "not.a.jwt")
        if status == 429:
            break
        assert body == {"error": "invalid_grant"}
    assert status == 429


# Managing policies


async def test_policies_are_validated_plan_gated_and_audited(setup: Setup) -> None:
    backend = setup.server.runtime.backend
    with pytest.raises(InvalidInput, match="numeric id"):
        rules.github_actions(audience=AUDIENCE, repository="o/r", repository_owner_id="octo-org", ref="refs/heads/main")
    with pytest.raises(InvalidInput, match="https"):
        await service.create(
            backend, OPERATOR, setup.account_id, "p", rules.Binding("http://127.0.0.1:1", "a", "s", {}), []
        )
    with pytest.raises(InvalidInput, match="public address"):
        await service.create(
            backend, OPERATOR, setup.account_id, "p", rules.Binding("https://169.254.169.254", "a", "s", {}), []
        )
    with pytest.raises(InvalidInput, match="maxLifetimeSeconds"):
        binding = rules.Binding("https://ci.example", "a", "s", {})
        await service.create(backend, OPERATOR, setup.account_id, "p", binding, [], max_lifetime_seconds=7200)
    small = await setup.server.bootstrap("Small", "DEVELOPER")
    with pytest.raises(PlanRestricted):
        await service.create(
            backend,
            OPERATOR,
            small.account_id,
            "p",
            rules.Binding("https://ci.example", "a", "s", {}),
            [Grant("ACCOUNT_ADMIN")],
        )
    actions = [r["action"] for r in await setup.server.pool.fetch("SELECT action FROM audit_events ORDER BY id")]
    assert "trust_policy.created" in actions


async def test_an_expiring_token_may_not_create_a_policy_that_gives_power(setup: Setup) -> None:
    exchanged = await accepted(setup, setup.issuer.github(AUDIENCE))
    principal = await setup.server.runtime.authenticator.authenticate(exchanged)
    with pytest.raises(Forbidden):
        await service.create(
            setup.server.runtime.backend,
            Actor.of(principal, None),
            setup.account_id,
            "p",
            rules.Binding("https://ci.example", "a", "s", {}),
            [Grant("JOB_RUNNER")],
        )


async def test_cli_creates_lists_and_deletes_a_github_policy(database: str, server: Server) -> None:
    seeded = await server.bootstrap()
    env = external(database)
    common = ["--account-id", seeded.account_id]
    created = await asyncio.to_thread(
        tokengate,
        "create-trust-policy", *common, "--name", "deploy", "--preset", "github", "--audience", AUDIENCE,
        "--repository", "octo-org/app", "--repository-owner-id", "4242", "--ref", "refs/heads/main",
        "--workflow", "deploy.yml", "--grant", "job_runner", env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    policy = json.loads(created.stdout)
    assert policy["issuer"] == rules.GITHUB_ISSUER and policy["subject"] == "repo:octo-org/app:ref:refs/heads/main"
    assert policy["conditions"] == {
        "job_workflow_ref": "octo-org/app/.github/workflows/deploy.yml@refs/heads/main",
        "repository": "octo-org/app",
        "repository_owner_id": "4242",
    }
    listed = await asyncio.to_thread(tokengate, "list-trust-policies", *common, env=env)
    assert [p["id"] for p in json.loads(listed.stdout)["trust_policies"]] == [policy["id"]]
    refused_name = await asyncio.to_thread(
        tokengate,
        "create-trust-policy", *common, "--name", "x", "--preset", "github", "--audience", AUDIENCE,
        "--repository", "octo-org/app", "--repository-owner-id", "octo-org", "--ref", "refs/heads/main", env=env,
    )  # fmt: skip
    assert refused_name.returncode == 1 and "numeric id" in refused_name.stderr
    deleted = await asyncio.to_thread(tokengate, "delete-trust-policy", *common, "--id", policy["id"], env=env)
    assert json.loads(deleted.stdout) == {"id": policy["id"], "deleted": True}


CREATE_POLICY = """mutation($input: TrustPolicyInput!) { createTrustPolicy(input: $input) {
  id issuer audience subject conditions { name value } grants { permissionSet allProjects } maxLifetimeSeconds } }"""
LIST_POLICIES = "{ account { trustPolicies { id name activeTokens { id expiresAt } } } }"
UPDATE_POLICY = """mutation($id: ID!, $input: TrustPolicyInput!) { updateTrustPolicy(id: $id, input: $input) {
  id name subject maxLifetimeSeconds conditions { name value } } }"""
DELETE_POLICY = "mutation($id: ID!) { deleteTrustPolicy(id: $id) { id } }"


async def test_graphql_manages_policies_and_lists_their_active_tokens(setup: Setup) -> None:
    server, issuer = setup.server, setup.issuer
    github = {"repository": "octo-org/site", "repositoryOwnerId": "4242", "environment": "prod", "issuer": issuer.url}
    reply = await server.gql(
        CREATE_POLICY,
        {"input": {"name": "site", "audience": AUDIENCE, "github": github, "maxLifetimeSeconds": 120,
                   "grants": [{"permissionSet": "JOB_VIEWER", "allProjects": True}]}},
        token=setup.admin,
    )  # fmt: skip
    created = reply.data["createTrustPolicy"]
    assert created["subject"] == "repo:octo-org/site:environment:prod"
    assert {"name": "repository_owner_id", "value": "4242"} in created["conditions"]
    assert created["grants"] == [{"permissionSet": "JOB_VIEWER", "allProjects": True}]
    status, body = await exchange(
        server,
        issuer.sign(
            issuer.github(AUDIENCE, repository="octo-org/site", environment="prod")
            | {"sub": "repo:octo-org/site:environment:prod"}
        ),
    )
    assert status == 200 and body["expires_in"] <= 120
    token = body["access_token"]
    listed = (await server.gql(LIST_POLICIES, token=setup.admin)).data["account"]["trustPolicies"]
    by_id = {policy["id"]: policy for policy in listed}
    assert [t["id"] for t in by_id[created["id"]]["activeTokens"]] == ["stk_" + tokens.parse_token(token).lookup]
    # The exchanged token itself cannot manage policies.
    refused_reply = await server.gql(DELETE_POLICY, {"id": created["id"]}, token=token)
    assert refused_reply.codes == ["FORBIDDEN"], refused_reply.body
    # A change of the audience keeps the binding, and revokes the token at once.
    updated = await server.gql(UPDATE_POLICY, {"id": created["id"], "input": {"audience": "https://x.example"}},
                               token=setup.admin)  # fmt: skip
    assert updated.data["updateTrustPolicy"]["subject"] == "repo:octo-org/site:environment:prod", updated.body
    assert (await check(server, token=token))[0] == 401
    bad = await server.gql(
        UPDATE_POLICY, {"id": created["id"], "input": {"github": github, "issuer": issuer.url}}, token=setup.admin
    )
    assert bad.codes == ["BAD_USER_INPUT"]
    deleted = await server.gql(DELETE_POLICY, {"id": created["id"]}, token=setup.admin)
    assert deleted.data == {"deleteTrustPolicy": {"id": created["id"]}}
    listed = (await server.gql(LIST_POLICIES, token=setup.admin)).data["account"]["trustPolicies"]
    assert [policy["id"] for policy in listed] == [setup.policy.id]


async def test_exchanged_token_as_viewer_and_reported_leaked(setup: Setup) -> None:
    token = await accepted(setup, setup.issuer.github(AUDIENCE))
    reply = await setup.server.gql("{ viewer { kind id account { id } } }", token=token)
    assert reply.errors == [] and reply.data["viewer"]["kind"] == "SERVICE_TOKEN", reply.body
    # A leak report revokes it like any token (its prefix and checksum are what scanners match).
    reported = await setup.server.gql(
        "mutation($t: String!) { reportLeakedToken(token: $t) }", {"t": token}, token=setup.admin
    )
    assert reported.data == {"reportLeakedToken": True}, reported.body
    assert (await check(setup.server, token=token))[0] == 401
    action = await setup.server.pool.fetchval(
        "SELECT action FROM audit_events WHERE action LIKE '%leak_reported' ORDER BY id DESC LIMIT 1"
    )
    assert action == "service_token.leak_reported"


async def test_two_matching_policies_refuse_rather_than_choose(setup: Setup) -> None:
    await accepted(setup, setup.issuer.github(AUDIENCE))
    await github_policy(setup.server, setup.account_id, setup.issuer)  # the same binding again
    await refused(setup.server, setup.issuer.sign(setup.issuer.github(AUDIENCE)))
    assert (await audit_reasons(setup))[-1].startswith("several policies match")
