"""Every argument that names something by id, tried with an id of another account and with an id that does not
exist: the two answers are identical (and the other account is untouched).

The table is checked against the schema, so a new id-taking argument fails here until it is added.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tests.api import webhook_calls as hooks
from tests.api.schema_inputs import arguments_of_scalar
from tests.api.scim_calls import REVOKE_SCIM_TOKEN, scim_token
from tests.api.service_token_calls import CREATE, created, grant, works
from tests.api.sign_in_calls import stored_session
from tests.api.test_bad_input import (
    AUDIT,
    CHECK,
    CHECKS,
    CONFIGURE_SSO,
    DEACTIVATE_USER,
    DELETE,
    DELETE_USER_TOKEN,
    GIVABLE,
    MEMBER_PAGE,
    NODE,
    ROTATE,
    SET_GRANTS,
    TOKEN_PAGE,
    UPDATE_GRANTS,
    UPDATE_NAME,
    snapshot,
)
from tests.api.test_graphql import CREATE_USER, create_project
from tests.api.test_keyless_ci import CREATE_POLICY, DELETE_POLICY, UPDATE_POLICY
from tests.conftest import Server
from tokengate.core import tokens
from tokengate.graphql.schema import connections
from tokengate.graphql.schema.audit_log import encode_cursor

UPDATE_USER = "mutation($id: ID!, $license: License, $grants: [GrantInput!]) { updateUser(id: $id, license: $license, grants: $grants) { id } }"


@dataclass(frozen=True)
class IdCall:
    """A call that puts ``the_id`` in one argument; ``kind`` says which of the other account's ids to use."""

    query: str
    variables: Callable[[str, Mine], dict[str, Any]]
    kind: str  # project | service_token | user | user_token | webhook | delivery | audit_cursor | token_cursor | member_cursor
    code: str | None  # the one answer for a foreign and an unknown id (None: no error, the same answer)


@dataclass(frozen=True)
class Mine:
    """The caller's own things, so that only the argument under test is foreign."""

    project: str
    token: str
    member: str = ""  # a user of the caller's account other than the caller (no one changes themselves)
    policy: str = ""  # a trust policy of the caller's account


ID_CALLS: dict[str, IdCall] = {
    # The contract: an unknown or foreign project is `allowed: false, reason: "project not found"`, no error.
    "Query.check.projectId": IdCall(CHECK, lambda the_id, mine: {"p": the_id}, "project", None),
    "Query.checks.requests.projectId": IdCall(
        CHECKS,
        lambda the_id, mine: {
            "r": [{"resource": "JOBS", "access": "READ", "projectId": p} for p in (mine.project, the_id)]
        },
        "project",
        None,
    ),
    # What the caller may give on a scope: a foreign project is as unknown as one that does not exist.
    "Query.givablePermissionSets.projectIds": IdCall(
        GIVABLE, lambda the_id, mine: {"p": [mine.project, the_id]}, "project", "BAD_USER_INPUT"
    ),
    "Account.auditLog.after": IdCall(AUDIT, lambda the_id, mine: {"after": the_id}, "audit_cursor", "BAD_USER_INPUT"),
    "Account.serviceTokenConnection.after": IdCall(
        TOKEN_PAGE, lambda the_id, mine: {"after": the_id}, "token_cursor", "BAD_USER_INPUT"
    ),
    "Account.memberConnection.after": IdCall(
        MEMBER_PAGE, lambda the_id, mine: {"after": the_id}, "member_cursor", "BAD_USER_INPUT"
    ),
    # node(id): null, never an error, for every kind of id of another account and an unknown one.
    "Query.node.id": IdCall(NODE, lambda the_id, mine: {"id": the_id}, "service_token", None),
    "Query.node.id (project)": IdCall(NODE, lambda the_id, mine: {"id": the_id}, "project", None),
    "Query.node.id (user)": IdCall(NODE, lambda the_id, mine: {"id": the_id}, "user", None),
    # A filter by another account's id finds nothing, exactly as an id that does not exist.
    "Account.auditLog.filter.targetId": IdCall(
        "query($t: ID) { account { auditLog(filter: {targetId: $t}) { edges { node { id } } } } }",
        lambda the_id, mine: {"t": the_id},
        "project",
        None,
    ),
    "Mutation.rotateServiceToken.id": IdCall(ROTATE, lambda the_id, mine: {"id": the_id}, "service_token", "NOT_FOUND"),
    "Mutation.updateServiceToken.id": IdCall(
        UPDATE_NAME, lambda the_id, mine: {"id": the_id, "name": "mine now"}, "service_token", "NOT_FOUND"
    ),
    "Mutation.deleteServiceToken.id": IdCall(DELETE, lambda the_id, mine: {"id": the_id}, "service_token", "NOT_FOUND"),
    # A project list in grants is checked against the account's projects: BAD_USER_INPUT, as documented.
    "Mutation.createServiceToken.input.grants.projectIds": IdCall(
        CREATE,
        lambda the_id, mine: {"input": {"name": "n", "grants": [grant("JOB_ADMIN", mine.project, the_id)]}},
        "project",
        "BAD_USER_INPUT",
    ),
    "Mutation.updateServiceToken.grants.projectIds": IdCall(
        UPDATE_GRANTS,
        lambda the_id, mine: {"id": mine.token, "grants": [grant("JOB_ADMIN", the_id)]},
        "project",
        "BAD_USER_INPUT",
    ),
    "Mutation.createUser.grants.projectIds": IdCall(
        CREATE_USER,
        lambda the_id, mine: {"email": "x@acme.io", "license": "DEVELOPER", "grants": [grant("JOB_ADMIN", the_id)]},
        "project",
        "BAD_USER_INPUT",
    ),
    "Mutation.updateUser.id": IdCall(
        UPDATE_USER, lambda the_id, mine: {"id": the_id, "license": "IT"}, "user", "NOT_FOUND"
    ),
    "Mutation.updateUser.grants.projectIds": IdCall(
        UPDATE_USER,
        lambda the_id, mine: {"id": mine.member, "grants": [grant("JOB_ADMIN", the_id)]},
        "project",
        "BAD_USER_INPUT",
    ),
    # Before deactivateUser: a deactivated member cannot be invited.
    "Mutation.createInvitation.userId": IdCall(
        "mutation($id: ID!) { createInvitation(userId: $id) { invitation { id } } }",
        lambda the_id, mine: {"id": the_id},
        "user",
        "NOT_FOUND",
    ),
    "Mutation.deactivateUser.id": IdCall(DEACTIVATE_USER, lambda the_id, mine: {"id": the_id}, "user", "NOT_FOUND"),
    # Only the caller's own sessions: another person's, of any account, is not found.
    "Mutation.endSession.id": IdCall(
        "mutation($id: ID!) { endSession(id: $id) { id } }", lambda the_id, mine: {"id": the_id}, "session", "NOT_FOUND"
    ),
    "Mutation.deleteUserToken.id": IdCall(
        DELETE_USER_TOKEN, lambda the_id, mine: {"id": the_id}, "user_token", "NOT_FOUND"
    ),
    "Mutation.setServiceTokenGrants.id": IdCall(
        SET_GRANTS, lambda the_id, mine: {"id": the_id, "grants": [grant("JOB_ADMIN")]}, "service_token", "NOT_FOUND"
    ),
    "Mutation.setServiceTokenGrants.grants.projectIds": IdCall(
        SET_GRANTS,
        lambda the_id, mine: {"id": mine.token, "grants": [grant("JOB_ADMIN", the_id)]},
        "project",
        "BAD_USER_INPUT",
    ),
    # In this order: the delivery is redelivered before its webhook is deleted (with its log).
    "Mutation.updateWebhook.id": IdCall(
        hooks.UPDATE, lambda the_id, mine: {"id": the_id, "description": "mine now"}, "webhook", "NOT_FOUND"
    ),
    "Mutation.redeliverWebhookEvent.id": IdCall(
        hooks.REDELIVER, lambda the_id, mine: {"id": the_id}, "delivery", "NOT_FOUND"
    ),
    "Mutation.sendTestWebhookEvent.id": IdCall(
        hooks.SEND_TEST, lambda the_id, mine: {"id": the_id}, "webhook", "NOT_FOUND"
    ),
    "Mutation.rotateWebhookSecret.id": IdCall(
        hooks.ROTATE_SECRET, lambda the_id, mine: {"id": the_id}, "webhook", "NOT_FOUND"
    ),
    "Mutation.deleteWebhook.id": IdCall(hooks.DELETE, lambda the_id, mine: {"id": the_id}, "webhook", "NOT_FOUND"),
    # Trust policies (keyless CI): the update before the deletion.
    "Mutation.createTrustPolicy.input.grants.projectIds": IdCall(
        CREATE_POLICY,
        lambda the_id, mine: {"input": {**POLICY_INPUT, "grants": [grant("JOB_ADMIN", the_id)]}},
        "project",
        "BAD_USER_INPUT",
    ),
    "Mutation.updateTrustPolicy.id": IdCall(
        UPDATE_POLICY, lambda the_id, mine: {"id": the_id, "input": {"name": "mine now"}}, "trust_policy", "NOT_FOUND"
    ),
    "Mutation.updateTrustPolicy.input.grants.projectIds": IdCall(
        UPDATE_POLICY,
        lambda the_id, mine: {"id": mine.policy, "input": {"grants": [grant("JOB_ADMIN", the_id)]}},
        "project",
        "BAD_USER_INPUT",
    ),
    "Mutation.deleteTrustPolicy.id": IdCall(
        DELETE_POLICY, lambda the_id, mine: {"id": the_id}, "trust_policy", "NOT_FOUND"
    ),
    "Mutation.revokeScimToken.id": IdCall(
        REVOKE_SCIM_TOKEN, lambda the_id, mine: {"id": the_id}, "scim_token", "NOT_FOUND"
    ),
    # Single sign-on: the grants a provider's members get name projects of the account only.
    "Mutation.configureSingleSignOn.input.defaultGrants.projectIds": IdCall(
        CONFIGURE_SSO,
        lambda the_id, mine: {"input": {**SSO_INPUT, "defaultGrants": [grant("JOB_ADMIN", the_id)]}},
        "project",
        "BAD_USER_INPUT",
    ),
    "Mutation.configureSingleSignOn.input.groupMappings.grants.projectIds": IdCall(
        CONFIGURE_SSO,
        lambda the_id, mine: {
            "input": {**SSO_INPUT, "groupMappings": [{"group": "g", "grants": [grant("JOB_ADMIN", the_id)]}]}
        },
        "project",
        "BAD_USER_INPUT",
    ),
}

SSO_INPUT = {
    "issuer": "https://sso.example.com",
    "clientId": "tokengate",
    "clientSecret": "s3cret",
    "emailDomains": ["example.com"],
}

POLICY_INPUT = {"name": "ci", "audience": "https://tokengate.example", "issuer": "https://ci.example", "subject": "s"}


async def a_policy(server: Server, token: str) -> str:
    reply = await server.gql(CREATE_POLICY, {"input": POLICY_INPUT}, token=token)
    return reply.data["createTrustPolicy"]["id"]


async def a_member(server, admin_token: str) -> tuple[str, str]:
    """A member of the caller's account and the id of its personal token."""
    reply = await server.gql(
        CREATE_USER, {"email": "member@acme.io", "license": "DEVELOPER", "grants": []}, token=admin_token
    )
    member = reply.data["createUser"]["id"]
    return member, (await server.issue_user_token(member))[4:20]


def unknown_id(kind: str) -> str:
    """An id of the same shape that no account has."""
    if kind == "project":
        return tokens.new_id("prj")
    if kind == "service_token":
        return "stk_" + tokens.random_base62(tokens.ID_LENGTH)
    if kind == "user_token":
        return "utk_" + tokens.random_base62(tokens.ID_LENGTH)
    if kind == "user":
        return tokens.new_id("usr")
    if kind == "session":
        return tokens.new_id("ses")
    if kind == "token_cursor":
        return connections.encode_cursor(connections.SERVICE_TOKENS, tokens.random_base62(tokens.ID_LENGTH))
    if kind == "member_cursor":
        return connections.encode_cursor(connections.MEMBERS, tokens.new_id("usr"))
    if kind == "webhook":
        return tokens.new_id("whk")
    if kind == "trust_policy":
        return tokens.new_id("tpl")
    if kind == "scim_token":
        return "scm_" + tokens.random_base62(tokens.ID_LENGTH)
    if kind == "delivery":
        return f"whd_{10**15}"
    return encode_cursor(10**15)


async def webhook_with_a_delivery(server: Server, caller: str) -> dict[str, str]:
    """A webhook of the caller's account and a delivery in its log. The delivery worker is stopped first: the
    example host is never contacted."""
    await server.runtime.deliveries.stop()
    made = await hooks.created(server, caller, "https://hooks.example.com/x", ["project.created"])
    await create_project(server, caller, "queued to the webhook")
    (delivery,) = await hooks.deliveries(server, caller, made.id)
    return {"webhook": made.id, "delivery": delivery["id"]}


def anonymised(body: Any, the_id: str) -> str:
    """The answer with the id itself replaced (a grant error names the refused project id)."""
    return json.dumps(body, sort_keys=True).replace(the_id, "<id>")


def test_every_id_argument_of_the_schema_is_in_the_table():
    cursors = {"Account.auditLog.after", "Account.serviceTokenConnection.after", "Account.memberConnection.after"}
    assert {argument.split(" ")[0] for argument in ID_CALLS} == arguments_of_scalar("ID") | cursors


async def test_ids_of_another_account_answer_exactly_as_ids_that_do_not_exist(server):
    one = await server.bootstrap("One")
    two = await server.bootstrap("Two")
    theirs = {
        "project": await create_project(server, one.token, "theirs"),
        "service_token": (await created(server, one.token, "theirs")).id,
        "user": one.user_id,
        "user_token": "utk_" + one.token[4:20],
        "session": await stored_session(server, one.account_id, one.user_id),
        "scim_token": (await scim_token(server, one.token))[0],
    }
    pages = await server.gql(
        "{ account { serviceTokenConnection { edges { cursor } } memberConnection { edges { cursor } } } }",
        token=one.token,
    )
    theirs["token_cursor"] = pages.data["account"]["serviceTokenConnection"]["edges"][0]["cursor"]
    theirs["member_cursor"] = pages.data["account"]["memberConnection"]["edges"][0]["cursor"]
    theirs.update(await webhook_with_a_delivery(server, one.token))
    theirs["trust_policy"] = await a_policy(server, one.token)
    their_secret_token = (await created(server, one.token, "second")).secret
    events = await server.gql(AUDIT, {"first": 1}, token=one.token)
    theirs["audit_cursor"] = events.data["account"]["auditLog"]["edges"][0]["cursor"]
    member, _ = await a_member(server, two.token)
    mine = Mine(await create_project(server, two.token, "mine"), (await created(server, two.token)).id, member)
    mine = replace(mine, policy=await a_policy(server, two.token))
    await create_project(server, two.token, "more history")  # so a cursor of Two's own has older events

    before = await snapshot(server)
    for argument, call in ID_CALLS.items():
        foreign, unknown = theirs[call.kind], unknown_id(call.kind)
        answers = []
        for the_id in (foreign, unknown):
            reply = await server.gql(call.query, call.variables(the_id, mine), token=two.token)
            expected = [call.code] if call.code is not None else []
            assert reply.status == 200 and reply.codes == expected, (argument, reply.body)
            answers.append(anonymised(reply.body, the_id))
        assert answers[0] == answers[1], (argument, answers)
    assert await snapshot(server) == before, "a refused call changed something"
    assert await works(server, their_secret_token)


async def test_own_ids_in_the_same_calls_are_accepted(server):
    """The table's calls are valid apart from the id: with the caller's own ids they succeed."""
    admin = await server.bootstrap()
    member, member_token = await a_member(server, admin.token)
    mine = Mine(await create_project(server, admin.token), (await created(server, admin.token)).id, member)
    mine = replace(mine, policy=await a_policy(server, admin.token))
    cursor = (await server.gql(AUDIT, {"first": 1}, token=admin.token)).data["account"]["auditLog"]["edges"][0]
    pages = await server.gql(
        "{ account { serviceTokenConnection { edges { cursor } } memberConnection { edges { cursor } } } }",
        token=admin.token,
    )
    own = {
        "project": mine.project,
        "service_token": mine.token,
        "user": member,
        "user_token": "utk_" + member_token,
        "audit_cursor": cursor["cursor"],
        "session": await stored_session(server, admin.account_id, admin.user_id),
        "scim_token": (await scim_token(server, admin.token))[0],
        "token_cursor": pages.data["account"]["serviceTokenConnection"]["edges"][0]["cursor"],
        "member_cursor": pages.data["account"]["memberConnection"]["edges"][0]["cursor"],
    }
    own.update(await webhook_with_a_delivery(server, admin.token))
    own["trust_policy"] = await a_policy(server, admin.token)
    for argument, call in ID_CALLS.items():
        if call.kind == "service_token" and "delete" not in argument.lower():
            reply = await server.gql(call.query, call.variables(own[call.kind], mine), token=admin.token)
            assert reply.errors == [], (argument, reply.body)
    for argument, call in ID_CALLS.items():
        if call.kind != "service_token":
            reply = await server.gql(call.query, call.variables(own[call.kind], mine), token=admin.token)
            assert reply.errors == [], (argument, reply.body)
        if argument.startswith("Query.node.id"):  # the positive twin of "null for another account's id"
            reply = await server.gql(call.query, call.variables(own[call.kind], mine), token=admin.token)
            assert reply.data["node"] == {"id": own[call.kind]}, (argument, reply.body)
    reply = await server.gql(DELETE, {"id": mine.token}, token=admin.token)
    assert reply.errors == []


async def test_auth_check_project_of_another_account_answers_as_an_unknown_project(server):
    one = await server.bootstrap("One")
    two = await server.bootstrap("Two")
    foreign = await create_project(server, one.token)
    auth = {"Authorization": f"Bearer {two.token}"}
    answers = []
    for project in (foreign, unknown_id("project")):
        by_query = await server.get("/auth/check", params={"resource": "JOBS", "projectId": project}, headers=auth)
        by_headers = await server.get(
            "/auth/check/some/path",
            headers={**auth, "X-Tokengate-Resource": "JOBS", "X-Tokengate-Project-Id": project},
        )
        for status, body, _ in (by_query, by_headers):
            assert status == 403
            answers.append(body)
    assert len(set(answers)) == 1, answers
    assert "project not found" in answers[0]
