"""Sensitive changes ask a browser session for a recent sign-in (docs/sign-in.md "Recent sign-in"), over HTTP on
loopback with a passkey in software: SCIM tokens, and every change that gives a member or a token ACCOUNT_ADMIN
(or mints a credential that holds it). Each is first made by a fresh session (the path works), then refused with
RECENT_SIGN_IN_REQUIRED once the same session is older than TOKENGATE_RECENT_SIGN_IN_SECONDS, with nothing
written (the audit log unchanged); a new sign-in makes it again, and a bearer token is never asked. Time is moved
in the database (the session's start), never waited for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.api import service_token_calls as calls
from tests.api.scim_calls import CREATE_SCIM_TOKEN, REVOKE_SCIM_TOKEN, SCIM_TOKENS
from tests.api.service_token_calls import grant
from tests.api.sign_in_calls import CREATE_INVITATION, Authenticator, Browser, invite
from tests.api.test_graphql import CREATE_USER
from tests.api.test_members import UPDATE_USER
from tests.api.test_personal_tokens import CREATE_USER_TOKEN, member
from tests.conftest import Reply, Seeded, Server, make_config, start_server
from tokengate.config import ConfigError, SignInSettings, load_config
from tokengate.core.errors import RecentSignInRequired

ADMIN = [{"permissionSet": "ACCOUNT_ADMIN"}]
DEVELOPER = [{"permissionSet": "DEVELOPER", "allProjects": True}]
VIEWER = "{ viewer { kind user { email } } }"
SET_GRANTS = "mutation($id: ID!, $grants: [GrantInput!]!) { setServiceTokenGrants(id: $id, grants: $grants) { id } }"
CREATE_POLICY = "mutation($input: TrustPolicyInput!) { createTrustPolicy(input: $input) { id } }"
CODE = RecentSignInRequired.code
WINDOW = 600.0  # the default


@dataclass
class Admin:
    """An account admin signed in with a passkey (a browser session), beside the bootstrap admin's token."""

    server: Server
    first: Seeded  # the bootstrap admin: its bearer token prepares what the cases change
    user_id: str
    token: str  # the signed-in admin's own personal token (a bearer token)
    browser: Browser
    passkey: Authenticator
    made: dict[str, Any] = field(default_factory=dict)  # what a case prepared

    async def by_session(self, query: str, variables: dict[str, Any] | None = None) -> Reply:
        return await self.browser.gql(query, variables)

    async def by_token(self, query: str, variables: dict[str, Any] | None = None) -> Reply:
        return await self.server.gql(query, variables, token=self.token)

    async def age(self, seconds: float = WINDOW + 60) -> None:
        """The session signed in ``seconds`` ago (its idle and absolute expiries untouched: it is still live)."""
        await self.server.pool.execute(
            "UPDATE sessions SET created_at = created_at - make_interval(secs => $2) WHERE user_id = $1",
            self.user_id,
            seconds,
        )

    async def audit_events(self) -> int:
        return await self.server.pool.fetchval("SELECT count(*) FROM audit_events")


async def signed_in_admin(server: Server) -> Admin:
    first = await server.bootstrap()
    user_id, token = await member(server, first.token, "second-admin@example.com", ADMIN)
    browser, passkey = Browser(server), Authenticator()
    registered = await browser.register(await invite(server, first.token, user_id), passkey)
    assert registered.status == 200, registered.body
    return Admin(server, first, user_id, token, browser, passkey)


Call = Callable[[str, dict[str, Any] | None], Awaitable[Reply]]


@dataclass(frozen=True)
class Case:
    """A sensitive change: ``prepare`` makes what it needs with the bootstrap admin's token; ``make(admin, call,
    n)`` makes it for the ``n``-th time (each time on something new) through ``call``."""

    name: str
    make: Callable[[Admin, Call, int], Awaitable[Reply]]
    prepare: Callable[[Admin], Awaitable[None]] | None = None


async def create_scim_token(admin: Admin, call: Call, n: int) -> Reply:
    reply = await call(CREATE_SCIM_TOKEN, {"name": f"okta {n}"})
    if reply.data and reply.data.get("createScimToken"):
        admin.server.issued.append(reply.data["createScimToken"]["secret"])
    return reply


async def scim_tokens_to_revoke(admin: Admin) -> None:
    ids = []
    for n in range(4):
        reply = await admin.server.gql(CREATE_SCIM_TOKEN, {"name": f"old {n}"}, token=admin.token)
        assert reply.errors == [], reply.body
        admin.server.issued.append(reply.data["createScimToken"]["secret"])
        ids.append(reply.data["createScimToken"]["scimToken"]["id"])
    admin.made["scim"] = ids


async def revoke_scim_token(admin: Admin, call: Call, n: int) -> Reply:
    return await call(REVOKE_SCIM_TOKEN, {"id": admin.made["scim"][n]})


async def create_admin_member(admin: Admin, call: Call, n: int) -> Reply:
    return await call(CREATE_USER, {"email": f"boss{n}@example.com", "license": "DEVELOPER", "grants": ADMIN})


async def members(admin: Admin, license_: str = "DEVELOPER", grants: list | None = None) -> None:
    admin.made["members"] = [
        (await member(admin.server, admin.first.token, f"m{n}@example.com", grants or DEVELOPER, license_))[0]
        for n in range(4)
    ]


async def make_member_admin(admin: Admin, call: Call, n: int) -> Reply:
    return await call(UPDATE_USER, {"id": admin.made["members"][n], "grants": ADMIN})


async def read_only_admin_members(admin: Admin) -> None:
    await members(admin, "READ_ONLY", ADMIN)


async def license_an_admin_grant(admin: Admin, call: Call, n: int) -> Reply:
    """An ACCOUNT_ADMIN grant under a READ_ONLY license acts on nothing; another license makes it act."""
    return await call(UPDATE_USER, {"id": admin.made["members"][n], "license": "DEVELOPER"})


async def create_admin_service_token(admin: Admin, call: Call, n: int) -> Reply:
    reply = await call(calls.CREATE, {"input": {"name": f"admin {n}", "grants": [grant("ACCOUNT_ADMIN")]}})
    calls.remember(admin.server, reply, "createServiceToken")
    return reply


async def service_tokens(admin: Admin, grants: list | None = None) -> None:
    admin.made["tokens"] = [
        (await calls.created(admin.server, admin.first.token, f"ci {n}", grants or [grant("JOB_ADMIN")])).id
        for n in range(4)
    ]


async def admin_service_tokens(admin: Admin) -> None:
    await service_tokens(admin, [grant("ACCOUNT_ADMIN")])


async def update_token_to_admin(admin: Admin, call: Call, n: int) -> Reply:
    return await call(calls.UPDATE, {"id": admin.made["tokens"][n], "grants": [grant("ACCOUNT_ADMIN")]})


async def set_token_grants_to_admin(admin: Admin, call: Call, n: int) -> Reply:
    return await call(SET_GRANTS, {"id": admin.made["tokens"][n], "grants": [grant("ACCOUNT_ADMIN")]})


async def rotate_admin_token(admin: Admin, call: Call, n: int) -> Reply:
    reply = await call(calls.ROTATE, {"id": admin.made["tokens"][n], "revoke": None})
    calls.remember(admin.server, reply, "rotateServiceToken")
    return reply


async def admin_members(admin: Admin) -> None:
    await members(admin, "DEVELOPER", ADMIN)


async def invite_an_admin(admin: Admin, call: Call, n: int) -> Reply:
    reply = await call(CREATE_INVITATION, {"userId": admin.made["members"][n]})
    if reply.data and reply.data.get("createInvitation"):
        admin.server.issued.append(reply.data["createInvitation"]["secret"])
    return reply


async def create_own_personal_token(admin: Admin, call: Call, n: int) -> Reply:
    reply = await call(CREATE_USER_TOKEN, {"name": f"laptop {n}", "expiresAt": None})
    if reply.data and reply.data.get("createUserToken"):
        admin.server.issued.append(reply.data["createUserToken"]["secret"])
    return reply


async def create_admin_trust_policy(admin: Admin, call: Call, n: int) -> Reply:
    github = {"repository": f"octo-org/site{n}", "repositoryOwnerId": "4242", "environment": "prod"}
    policy = {"name": f"site {n}", "audience": "tokengate", "github": github, "grants": ADMIN}
    return await call(CREATE_POLICY, {"input": policy})


UPDATE_POLICY = "mutation($id: ID!, $input: TrustPolicyInput!) { updateTrustPolicy(id: $id, input: $input) { id } }"


async def admin_trust_policies(admin: Admin) -> None:
    ids = []
    for n in range(4):
        reply = await create_admin_trust_policy(admin, admin.by_token, 100 + n)
        assert reply.errors == [], reply.body
        ids.append(reply.data["createTrustPolicy"]["id"])
    admin.made["policies"] = ids


async def retarget_admin_trust_policy(admin: Admin, call: Call, n: int) -> Reply:
    """Whom an ACCOUNT_ADMIN policy trusts, changed without naming its grants: another CI gets ACCOUNT_ADMIN."""
    github = {"repository": f"octo-org/other{n}", "repositoryOwnerId": "4242", "environment": "prod"}
    return await call(UPDATE_POLICY, {"id": admin.made["policies"][n], "input": {"github": github}})


CONFIGURE_SSO = "mutation($input: SingleSignOnInput!) { configureSingleSignOn(input: $input) { issuer } }"
REMOVE_SSO = "mutation { removeSingleSignOn { issuer } }"


def sso_settings(n: int) -> dict[str, Any]:
    """A provider's settings (not fetched when saved: only at a sign-in)."""
    return {
        "issuer": f"https://sso{n}.example.com",
        "clientId": "tokengate",
        "clientSecret": "s3cret",
        "emailDomains": ["example.com"],
    }


async def configure_sso(admin: Admin, call: Call, n: int) -> Reply:
    return await call(CONFIGURE_SSO, {"input": sso_settings(n)})


async def provider(admin: Admin) -> None:
    configured = await admin.server.gql(CONFIGURE_SSO, {"input": sso_settings(0)}, token=admin.first.token)
    assert configured.errors == [], configured.body


async def remove_sso(admin: Admin, call: Call, n: int) -> Reply:
    """Remove the provider; once removed, it is configured again (by the bootstrap admin) for the next time."""
    reply = await call(REMOVE_SSO, None)
    if reply.errors == []:
        await provider(admin)
    return reply


CASES = [
    Case("configureSingleSignOn", configure_sso),
    Case("removeSingleSignOn", remove_sso, provider),
    Case("createScimToken", create_scim_token),
    Case("revokeScimToken", revoke_scim_token, scim_tokens_to_revoke),
    Case("createUser with ACCOUNT_ADMIN", create_admin_member),
    Case("updateUser adding ACCOUNT_ADMIN", make_member_admin, members),
    Case("updateUser licensing an ACCOUNT_ADMIN grant", license_an_admin_grant, read_only_admin_members),
    Case("createServiceToken with ACCOUNT_ADMIN", create_admin_service_token),
    Case("updateServiceToken adding ACCOUNT_ADMIN", update_token_to_admin, service_tokens),
    Case("setServiceTokenGrants adding ACCOUNT_ADMIN", set_token_grants_to_admin, service_tokens),
    Case("rotateServiceToken of an ACCOUNT_ADMIN token", rotate_admin_token, admin_service_tokens),
    Case("createTrustPolicy with ACCOUNT_ADMIN", create_admin_trust_policy),
    Case("updateTrustPolicy of an ACCOUNT_ADMIN policy", retarget_admin_trust_policy, admin_trust_policies),
    Case("createInvitation for an ACCOUNT_ADMIN", invite_an_admin, admin_members),
    Case("createUserToken of an ACCOUNT_ADMIN", create_own_personal_token),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_an_aged_session_must_sign_in_again_for_a_sensitive_change(server, case):
    admin = await signed_in_admin(server)
    if case.prepare is not None:
        await case.prepare(admin)
    fresh = await case.make(admin, admin.by_session, 0)
    assert fresh.errors == [], fresh.body  # a session that just signed in makes the change
    await admin.age()
    assert (await admin.by_session(VIEWER)).status == 200  # the aged session is live and still reads
    before = await admin.audit_events()
    refused = await case.make(admin, admin.by_session, 1)
    assert refused.codes == [CODE], refused.body
    assert "sign in again" in refused.errors[0]["message"]
    assert await admin.audit_events() == before  # nothing written: every one of these changes is audited
    assert (await admin.browser.sign_in(admin.passkey)).status == 200  # a new sign-in, a new session ...
    again = await case.make(admin, admin.by_session, 1)
    assert again.errors == [], again.body  # ... makes it
    assert await admin.audit_events() > before


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_a_bearer_token_is_never_asked(server, case):
    admin = await signed_in_admin(server)
    if case.prepare is not None:
        await case.prepare(admin)
    await admin.age()
    refused = await case.make(admin, admin.by_session, 0)
    assert refused.codes == [CODE], refused.body  # the person's session would be asked ...
    made = await case.make(admin, admin.by_token, 0)
    assert made.errors == [], made.body  # ... their personal token, whenever issued, is not


async def test_nothing_changes_when_a_scim_token_is_refused(server):
    admin = await signed_in_admin(server)
    await scim_tokens_to_revoke(admin)
    listed = (await admin.by_token(SCIM_TOKENS, {"all": True})).data
    await admin.age()
    assert (await create_scim_token(admin, admin.by_session, 9)).codes == [CODE]
    assert (await revoke_scim_token(admin, admin.by_session, 0)).codes == [CODE]
    assert (await admin.by_token(SCIM_TOKENS, {"all": True})).data == listed  # none made, none revoked


async def test_an_aged_session_still_makes_changes_that_give_no_account_admin(server):
    admin = await signed_in_admin(server)
    await admin_members(admin)
    await admin.age()
    made = await admin.by_session(
        CREATE_USER, {"email": "dev@example.com", "license": "DEVELOPER", "grants": DEVELOPER}
    )
    assert made.errors == [], made.body
    token = await calls.create(server, admin.token, "ci", [grant("JOB_ADMIN")])
    assert token.errors == [], token.body
    updated = await admin.by_session(calls.UPDATE, {"id": token.data["createServiceToken"]["serviceToken"]["id"],
                                                    "grants": [grant("JOB_VIEWER")]})  # fmt: skip
    assert updated.errors == [], updated.body
    # An admin keeps ACCOUNT_ADMIN while its other grants change: nothing is given.
    kept = await admin.by_session(UPDATE_USER, {"id": admin.made["members"][0], "grants": [*ADMIN, *DEVELOPER]})
    assert kept.errors == [], kept.body
    # A refusal the caller's permissions decide is still that refusal, not a request to sign in again.
    _, developer_token = await member(server, admin.first.token, "plain@example.com", DEVELOPER)
    forbidden = await server.gql(CREATE_SCIM_TOKEN, {"name": "x"}, token=developer_token)
    assert forbidden.codes == ["FORBIDDEN"], forbidden.body


async def test_the_window_is_a_setting(database, tmp_path):
    config = make_config(tmp_path, sign_in=SignInSettings(recent_sign_in_seconds=3600.0))
    async for server in start_server(database, config):
        admin = await signed_in_admin(server)
        await admin.age(600 + 60)  # past the default window, within this one
        assert (await create_scim_token(admin, admin.by_session, 0)).errors == []
        await admin.age(3600)
        assert (await create_scim_token(admin, admin.by_session, 1)).codes == [CODE]


def test_the_window_is_read_from_the_environment(tmp_path):
    def window(**env: str) -> float:
        base = {"TOKENGATE_SECRET_KEY": "k" * 40, "TOKENGATE_DATABASE_URL": "postgresql://unused"}
        return load_config(tmp_path, {**base, **env}).sign_in.recent_sign_in_seconds

    assert window() == 600
    assert window(TOKENGATE_RECENT_SIGN_IN_SECONDS="30") == 30
    for wrong in ("0", "-1", "nan", "soon"):
        with pytest.raises(ConfigError, match="TOKENGATE_RECENT_SIGN_IN_SECONDS"):
            window(TOKENGATE_RECENT_SIGN_IN_SECONDS=wrong)
