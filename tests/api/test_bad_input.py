"""Bad input of every class answers with a 4xx or a typed GraphQL error, never a 5xx or a masked error.

Each table row is one class of bad input with the answer it must get; the report of issue 6 lists the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.api import webhook_calls as hooks
from tests.api.schema_inputs import arguments_of_scalar
from tests.api.scim_calls import CREATE_SCIM_TOKEN, REVOKE_SCIM_TOKEN
from tests.api.service_token_calls import CREATE, REPORT, created, grant
from tests.api.test_graphql import CREATE_PROJECT, CREATE_USER, create_project
from tests.conftest import Server

UPDATE_NAME = "mutation($id: ID!, $name: String) { updateServiceToken(id: $id, name: $name) { id } }"
UPDATE_GRANTS = "mutation($id: ID!, $grants: [GrantInput!]) { updateServiceToken(id: $id, grants: $grants) { id } }"
ROTATE = "mutation($id: ID!) { rotateServiceToken(id: $id) { secret } }"
DELETE = "mutation($id: ID!) { deleteServiceToken(id: $id) { id } }"
CHECK = "query($p: ID) { check(resource: JOBS, access: READ, projectId: $p) { allowed } }"
CHECKS = "query($r: [CheckInput!]!) { checks(requests: $r) { allowed } }"
AUDIT = "query($first: Int, $after: String) { account { auditLog(first: $first, after: $after) { edges { cursor } } } }"
AUDIT_FILTER = "query($f: AuditLogFilter) { account { auditLog(filter: $f) { edges { cursor } } } }"
USER_TOKEN = "mutation($name: String!) { createUserToken(name: $name) { id } }"
DELETE_USER_TOKEN = "mutation($id: ID!) { deleteUserToken(id: $id) { id } }"
UPDATE_USER = "mutation($id: ID!, $grants: [GrantInput!]) { updateUser(id: $id, grants: $grants) { id } }"
DEACTIVATE_USER = "mutation($id: ID!) { deactivateUser(id: $id) { id } }"
SET_IP = "mutation($rules: [IpRuleInput!]!) { setIpRestrictions(enabled: false, rules: $rules) { enabled } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
TOKEN_PAGE = "query($after: String) { account { serviceTokenConnection(after: $after) { totalCount } } }"
MEMBER_PAGE = "query($after: String) { account { memberConnection(after: $after) { totalCount } } }"
SET_GRANTS = "mutation($id: ID!, $grants: [GrantInput!]!) { setServiceTokenGrants(id: $id, grants: $grants) { id } }"
GIVABLE = "query($p: [ID!]) { givablePermissionSets(projectIds: $p) { key allowed reason } }"
INVITE = "mutation($id: ID!) { createInvitation(userId: $id) { secret } }"
END_SESSION = "mutation($id: ID!) { endSession(id: $id) { id } }"


def text_calls(token_id: str, project_id: str) -> dict[str, tuple[str, Any]]:
    """For each text argument of the schema: an otherwise valid call whose variables put ``bad`` there."""

    def grants(bad: str) -> list[dict[str, Any]]:
        return [grant("JOB_ADMIN", project_id, bad)]

    def rule(name: str = "office", cidr: str = "10.0.0.0/8") -> list[dict[str, Any]]:
        return [{"name": name, "type": "ALLOW", "cidrs": [cidr]}]

    return {
        "Account.auditLog.after": (AUDIT, lambda bad: {"after": bad}),
        "Account.serviceTokenConnection.after": (TOKEN_PAGE, lambda bad: {"after": bad}),
        "Account.memberConnection.after": (MEMBER_PAGE, lambda bad: {"after": bad}),
        "Query.node.id": (NODE, lambda bad: {"id": bad}),
        "Account.auditLog.filter.action": (AUDIT_FILTER, lambda bad: {"f": {"action": bad}}),
        "Account.auditLog.filter.actor": (AUDIT_FILTER, lambda bad: {"f": {"actor": bad}}),
        "Account.auditLog.filter.targetId": (AUDIT_FILTER, lambda bad: {"f": {"targetId": bad}}),
        "Mutation.createProject.name": (CREATE_PROJECT, lambda bad: {"name": bad}),
        "Mutation.createServiceToken.input.name": (CREATE, lambda bad: {"input": {"name": bad, "grants": []}}),
        "Mutation.createServiceToken.input.grants.projectIds": (
            CREATE,
            lambda bad: {"input": {"name": "n", "grants": grants(bad)}},
        ),
        "Mutation.createUser.email": (CREATE_USER, lambda bad: {"email": bad, "license": "IT", "grants": []}),
        "Mutation.createUser.grants.projectIds": (
            CREATE_USER,
            lambda bad: {"email": "a@b.io", "license": "DEVELOPER", "grants": grants(bad)},
        ),
        "Mutation.createUserToken.name": (USER_TOKEN, lambda bad: {"name": bad}),
        "Mutation.deleteUserToken.id": (DELETE_USER_TOKEN, lambda bad: {"id": bad}),
        "Mutation.updateUser.id": (UPDATE_USER, lambda bad: {"id": bad}),
        "Mutation.updateUser.grants.projectIds": (UPDATE_USER, lambda bad: {"id": "usr_x", "grants": grants(bad)}),
        "Mutation.deactivateUser.id": (DEACTIVATE_USER, lambda bad: {"id": bad}),
        "Mutation.createInvitation.userId": (INVITE, lambda bad: {"id": bad}),
        "Mutation.endSession.id": (END_SESSION, lambda bad: {"id": bad}),
        "Mutation.deleteServiceToken.id": (DELETE, lambda bad: {"id": bad}),
        "Mutation.reportLeakedToken.token": (REPORT, lambda bad: {"token": bad}),
        "Mutation.rotateServiceToken.id": (ROTATE, lambda bad: {"id": bad}),
        "Mutation.setIpRestrictions.rules.cidrs": (SET_IP, lambda bad: {"rules": rule(cidr=bad)}),
        "Mutation.setIpRestrictions.rules.name": (SET_IP, lambda bad: {"rules": rule(name=bad)}),
        "Mutation.updateServiceToken.grants.projectIds": (
            UPDATE_GRANTS,
            lambda bad: {"id": token_id, "grants": grants(bad)},
        ),
        "Mutation.updateServiceToken.id": (UPDATE_NAME, lambda bad: {"id": bad, "name": "n"}),
        "Mutation.updateServiceToken.name": (UPDATE_NAME, lambda bad: {"id": token_id, "name": bad}),
        "Query.check.projectId": (CHECK, lambda bad: {"p": bad}),
        "Query.checks.requests.projectId": (
            CHECKS,
            lambda bad: {"r": [{"resource": "JOBS", "access": "READ", "projectId": bad}]},
        ),
        "Query.givablePermissionSets.projectIds": (GIVABLE, lambda bad: {"p": [project_id, bad]}),
        "Mutation.createScimToken.name": (CREATE_SCIM_TOKEN, lambda bad: {"name": bad}),
        "Mutation.revokeScimToken.id": (REVOKE_SCIM_TOKEN, lambda bad: {"id": bad}),
        **webhook_text_calls(token_id, grants),
        **trust_policy_text_calls(),
        **single_sign_on_text_calls(),
    }


CONFIGURE_SSO = "mutation($input: SingleSignOnInput!) { configureSingleSignOn(input: $input) { issuer } }"


def single_sign_on_text_calls() -> dict[str, tuple[str, Any]]:
    """Every text argument of configureSingleSignOn, each put in an otherwise valid input."""
    grants = [{"permissionSet": "JOB_ADMIN", "allProjects": False, "projectIds": ["prj_x"]}]
    base: dict[str, Any] = {
        "issuer": "https://sso.example.com",
        "clientId": "tokengate",
        "clientSecret": "s3cret",
        "emailDomains": ["example.com"],
        "defaultGrants": grants,
        "groupMappings": [{"group": "analysts", "grants": grants}],
    }

    def placed(path: list[str], bad: str) -> dict[str, Any]:
        if path == ["defaultGrants", "projectIds"]:
            return {**base, "defaultGrants": [{**grants[0], "projectIds": [bad]}]}
        if path == ["groupMappings", "group"]:
            return {**base, "groupMappings": [{"group": bad, "grants": grants}]}
        if path == ["groupMappings", "grants", "projectIds"]:
            return {**base, "groupMappings": [{"group": "g", "grants": [{**grants[0], "projectIds": [bad]}]}]}
        (field_name,) = path
        return {**base, field_name: [bad] if field_name == "emailDomains" else bad}

    calls: dict[str, tuple[str, Any]] = {}
    for argument in arguments_of_scalar("String", "ID"):
        parts = argument.split(".")
        if parts[1] == "configureSingleSignOn":
            calls[argument] = (CONFIGURE_SSO, lambda bad, path=parts[3:]: {"input": placed(path, bad)})
    return calls


def trust_policy_text_calls() -> dict[str, tuple[str, Any]]:
    """Every text argument of the trust policies' mutations (keyless CI), each put in an otherwise valid input."""
    from tests.api.test_keyless_ci import CREATE_POLICY, DELETE_POLICY, UPDATE_POLICY

    whole = {
        "github": {"repository": "o/r", "repositoryOwnerId": "1", "ref": "refs/heads/main"},
        "gitlab": {"projectPath": "g/p", "namespaceId": "1", "projectId": "2", "ref": "main"},
        "conditions": [{"name": "n", "value": "v"}],
        "grants": [{"permissionSet": "JOB_ADMIN", "allProjects": False, "projectIds": ["prj_x"]}],
    }

    def placed(path: list[str], bad: str) -> dict[str, Any]:
        base: dict[str, Any] = {"name": "p", "audience": "a", "issuer": "https://ci.example", "subject": "s"}
        if len(path) == 1:
            return {**base, path[0]: bad}
        field, leaf = path
        if field in ("github", "gitlab"):
            return {"name": "p", "audience": "a", field: {**whole[field], leaf: bad}}
        if field == "conditions":
            return {**base, "conditions": [{**whole["conditions"][0], leaf: bad}]}
        return {**base, "grants": [{**whole["grants"][0], "projectIds": [bad]}]}

    calls: dict[str, tuple[str, Any]] = {
        "Mutation.updateTrustPolicy.id": (UPDATE_POLICY, lambda bad: {"id": bad, "input": {"name": "n"}}),
        "Mutation.deleteTrustPolicy.id": (DELETE_POLICY, lambda bad: {"id": bad}),
    }
    for argument in arguments_of_scalar("String", "ID"):
        parts = argument.split(".")
        if parts[1] not in ("createTrustPolicy", "updateTrustPolicy") or parts[2] != "input":
            continue
        path = parts[3:]
        if parts[1] == "createTrustPolicy":
            calls[argument] = (CREATE_POLICY, lambda bad, path=path: {"input": placed(path, bad)})
        else:
            calls[argument] = (UPDATE_POLICY, lambda bad, path=path: {"id": "tpl_x", "input": placed(path, bad)})
    return calls


def webhook_text_calls(token_id: str, grants: Any) -> dict[str, tuple[str, Any]]:
    """The text arguments of webhooks and of setServiceTokenGrants (issue 16)."""
    url, events = "https://hooks.example.com/x", ["service_token.expiring"]
    return {
        "Mutation.createWebhook.url": (hooks.CREATE, lambda bad: {"url": bad, "events": events}),
        "Mutation.createWebhook.events": (hooks.CREATE, lambda bad: {"url": url, "events": [bad]}),
        "Mutation.createWebhook.description": (
            hooks.CREATE,
            lambda bad: {"url": url, "events": events, "description": bad},
        ),
        "Mutation.updateWebhook.id": (hooks.UPDATE, lambda bad: {"id": bad, "url": url}),
        "Mutation.updateWebhook.url": (hooks.UPDATE, lambda bad: {"id": "whk_x", "url": bad}),
        "Mutation.updateWebhook.events": (hooks.UPDATE, lambda bad: {"id": "whk_x", "events": [bad]}),
        "Mutation.updateWebhook.description": (hooks.UPDATE, lambda bad: {"id": "whk_x", "description": bad}),
        "Mutation.deleteWebhook.id": (hooks.DELETE, lambda bad: {"id": bad}),
        "Mutation.redeliverWebhookEvent.id": (hooks.REDELIVER, lambda bad: {"id": bad}),
        "Mutation.sendTestWebhookEvent.id": (hooks.SEND_TEST, lambda bad: {"id": bad}),
        "Mutation.rotateWebhookSecret.id": (hooks.ROTATE_SECRET, lambda bad: {"id": bad}),
        "Mutation.setServiceTokenGrants.id": (SET_GRANTS, lambda bad: {"id": bad, "grants": []}),
        "Mutation.setServiceTokenGrants.grants.projectIds": (
            SET_GRANTS,
            lambda bad: {"id": token_id, "grants": grants(bad)},
        ),
        "Webhook.deliveries.after": (hooks.DELIVERIES, lambda bad: {"first": 1, "after": bad}),
    }


UNSTORABLE = {"NUL": "a\x00b", "NUL alone": "\x00", "unpaired surrogate": "a\ud800b"}


async def snapshot(server: Server) -> dict[str, int]:
    tables = ["projects", "users", "tokens", "grants", "ip_rules", "audit_events"]
    return {table: await server.pool.fetchval(f"SELECT count(*) FROM {table}") for table in tables}


async def test_every_text_input_refuses_nul_and_unpaired_surrogates(server):
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    token = await created(server, admin.token)
    calls = text_calls(token.id, project)
    assert set(calls) == arguments_of_scalar("String", "ID"), "a text argument is missing from this table"
    before = await snapshot(server)
    for argument, (query, variables) in calls.items():
        for label, bad in UNSTORABLE.items():
            reply = await server.gql(query, variables(bad), token=admin.token)
            assert reply.status == 200 and reply.codes == ["BAD_USER_INPUT"], (argument, label, reply.body)
            assert "must not contain NUL" in reply.errors[0]["message"]
    assert await snapshot(server) == before  # refused before any resolver ran: nothing written


async def test_nul_in_a_query_literal_is_refused_too(server):
    admin = await server.bootstrap()
    for literal in ["a\\u0000b", "\\u{0}"]:
        reply = await server.gql('mutation { createProject(name: "' + literal + '") { id } }', token=admin.token)
        assert reply.codes == ["BAD_USER_INPUT"] and "must not contain NUL" in reply.errors[0]["message"]
        # and in a variable's default value
        reply = await server.gql(
            'mutation($n: String! = "' + literal + '") { createProject(name: $n) { id } }', token=admin.token
        )
        assert reply.codes == ["BAD_USER_INPUT"]
    assert await server.pool.fetchval("SELECT count(*) FROM projects") == 0
    # Other escapes still work.
    reply = await server.gql(
        'mutation { createProject(name: "caf\\u00e9 \\ud83d\\ude00") { name } }', token=admin.token
    )
    assert reply.data == {"createProject": {"name": "café 😀"}}


@dataclass
class Case:
    """One class of bad input: the raw body (or a GraphQL operation) and the answer it must get."""

    label: str
    body: bytes
    status: int
    code: str
    headers: dict[str, str] = field(default_factory=dict)


def operation(query: str, variables: dict[str, Any] | None = None, **extra: Any) -> bytes:
    return json.dumps({"query": query, "variables": variables, **extra}).encode()


def json_with_variable(query: str, raw_value: str) -> bytes:
    """A body whose variable ``v`` is ``raw_value`` as written (for JSON json.dumps would not write)."""
    return ('{"query": ' + json.dumps(query) + ', "variables": {"v": ' + raw_value + "}}").encode()


FIRST = "query($v: Int) { account { auditLog(first: $v) { edges { cursor } } } }"
NAME = "mutation($v: String!) { createProject(name: $v) { id } }"
EXPIRES = 'mutation($v: DateTime) { createServiceToken(input: {name: "n", grants: [], expiresAt: $v}) { secret } }'

CASES = [
    # the body itself
    Case("body not JSON", b"not json", 400, "BAD_REQUEST"),
    Case("body invalid UTF-8", b'{"query": "{ viewer { kind } }", "x": "\xff\xfe"}', 400, "BAD_REQUEST"),
    Case("body a JSON array (batch)", b'[{"query": "{ viewer { kind } }"}]', 400, "BAD_REQUEST"),
    Case("body a JSON number", b"5", 400, "BAD_REQUEST"),
    Case("body empty", b"", 400, "BAD_REQUEST"),
    Case("body JSON nested 200000 deep", b"[" * 200_000 + b"]" * 200_000, 400, "BAD_REQUEST"),
    Case(
        "variables JSON nested 100000 deep",
        json_with_variable(FIRST, "[" * 100_000 + "]" * 100_000),
        400,
        "BAD_REQUEST",
    ),
    Case("variables not an object", b'{"query": "{ viewer { kind } }", "variables": [1]}', 400, "BAD_REQUEST"),
    Case("query missing", b'{"variables": {}}', 400, "BAD_REQUEST"),
    Case("query not a string", b'{"query": 5}', 400, "BAD_REQUEST"),
    Case("operationName not a string", operation("{ viewer { kind } }", operationName=5), 400, "BAD_REQUEST"),
    # A request error (GraphQL's GetOperation fails): 200 for application/json, as the contract has it.
    Case("operationName not in the document", operation("{ viewer { kind } }", operationName="X"), 200, "BAD_REQUEST"),
    Case("subscription", operation("subscription { viewer { kind } }"), 400, "BAD_REQUEST"),
    Case("integer of 5000 digits in JSON", json_with_variable(FIRST, "1" * 5000), 400, "BAD_REQUEST"),
    Case(
        "Content-Type text/plain", operation("{ viewer { kind } }"), 415, "BAD_REQUEST", {"Content-Type": "text/plain"}
    ),
    Case(
        "Content-Type multipart/form-data",
        operation("{ viewer { kind } }"),
        415,
        "BAD_REQUEST",
        {"Content-Type": "multipart/form-data; boundary=x"},
    ),
    Case(
        "Content-Type application/graphql",
        b"{ viewer { kind } }",
        415,
        "BAD_REQUEST",
        {"Content-Type": "application/graphql"},
    ),
    # the document
    Case("syntax error", operation("{ viewer { kind "), 200, "BAD_USER_INPUT"),
    Case("unknown field", operation("{ nope }"), 200, "BAD_USER_INPUT"),
    Case(
        "selection nested 2000 deep",
        operation("{ viewer " + "{ account " * 2000 + "{ id }" + " }" * 2000 + " }"),
        200,
        "BAD_USER_INPUT",
    ),
    Case(
        "list literal nested 2400 deep",
        operation("{ check(resource: JOBS, access: READ, projectId: " + "[" * 2400 + "]" * 2400 + ") { allowed } }"),
        200,
        "BAD_USER_INPUT",
    ),
    Case(
        "Int literal of 5000 digits",
        operation("{ account { auditLog(first: " + "1" * 5000 + ") { edges { cursor } } } }"),
        200,
        "BAD_USER_INPUT",
    ),
    Case(
        "Int literal 2^31 (overflow)",
        operation("{ account { auditLog(first: 2147483648) { edges { cursor } } } }"),
        200,
        "BAD_USER_INPUT",
    ),
    Case(
        "unknown enum value literal",
        operation("{ check(resource: NOPE, access: READ) { allowed } }"),
        200,
        "BAD_USER_INPUT",
    ),
    # variables of the wrong type or shape
    Case("String variable given a number", operation(NAME, {"v": 5}), 200, "BAD_USER_INPUT"),
    Case("String variable given an object", operation(NAME, {"v": {"a": 1}}), 200, "BAD_USER_INPUT"),
    Case("String variable given a list", operation(NAME, {"v": ["a"]}), 200, "BAD_USER_INPUT"),
    Case("required variable missing", operation(NAME, {}), 200, "BAD_USER_INPUT"),
    Case("required variable null", operation(NAME, {"v": None}), 200, "BAD_USER_INPUT"),
    Case("Int variable 2^40 (overflow)", operation(FIRST, {"v": 2**40}), 200, "BAD_USER_INPUT"),
    Case("Int variable a string", operation(FIRST, {"v": "ten"}), 200, "BAD_USER_INPUT"),
    Case("Int variable a float", operation(FIRST, {"v": 1.5}), 200, "BAD_USER_INPUT"),
    Case("Int variable NaN", json_with_variable(FIRST, "NaN"), 200, "BAD_USER_INPUT"),
    Case("Int variable 1e400 (infinity)", json_with_variable(FIRST, "1e400"), 200, "BAD_USER_INPUT"),
    Case(
        "enum variable unknown",
        operation("query($v: Resource!) { check(resource: $v, access: READ) { allowed } }", {"v": "NOPE"}),
        200,
        "BAD_USER_INPUT",
    ),
    Case(
        "input object with an unknown field",
        operation(CREATE, {"input": {"name": "n", "grants": [], "nope": 1}}),
        200,
        "BAD_USER_INPUT",
    ),
    Case(
        "input list nested 900 deep", operation(CHECKS, {"r": json.loads("[" * 900 + "]" * 900)}), 200, "BAD_USER_INPUT"
    ),
    Case("DateTime variable garbage", operation(EXPIRES, {"v": "garbage"}), 200, "BAD_USER_INPUT"),
    Case("DateTime variable year 99999", operation(EXPIRES, {"v": "99999-01-01T00:00:00Z"}), 200, "BAD_USER_INPUT"),
    Case("DateTime in the past", operation(EXPIRES, {"v": "2000-01-01T00:00:00Z"}), 200, "BAD_USER_INPUT"),
    # values out of range
    Case("100 kB name", operation(NAME, {"v": "x" * 100_000}), 200, "BAD_USER_INPUT"),
    Case("empty name", operation(NAME, {"v": "   "}), 200, "BAD_USER_INPUT"),
    Case(
        "100 kB email",
        operation(CREATE_USER, {"email": "a@b.io" + "x" * 100_000, "license": "IT", "grants": []}),
        200,
        "BAD_USER_INPUT",
    ),
    Case(
        "100 kB CIDR",
        operation(SET_IP, {"rules": [{"name": "r", "type": "ALLOW", "cidrs": ["1" * 100_000]}]}),
        200,
        "BAD_USER_INPUT",
    ),
    Case("100 kB cursor", operation(AUDIT, {"after": "x" * 100_000}), 200, "BAD_USER_INPUT"),
    Case("100 kB id", operation(DELETE, {"id": "x" * 100_000}), 200, "NOT_FOUND"),
    Case("first 0", operation(FIRST, {"v": 0}), 200, "BAD_USER_INPUT"),
    Case("first -1", operation(FIRST, {"v": -1}), 200, "BAD_USER_INPUT"),
    Case("first 101", operation(FIRST, {"v": 101}), 200, "BAD_USER_INPUT"),
    Case("first 2^31-1", operation(FIRST, {"v": 2**31 - 1}), 200, "BAD_USER_INPUT"),
    Case(
        "revokeOldInSeconds -1",
        operation('mutation { rotateServiceToken(id: "x", revokeOldInSeconds: -1) { secret } }'),
        200,
        "BAD_USER_INPUT",
    ),
    Case(
        "revokeOldInSeconds 2^31-1",
        operation('mutation { rotateServiceToken(id: "x", revokeOldInSeconds: 2147483647) { secret } }'),
        200,
        "BAD_USER_INPUT",
    ),
    Case(
        "1001 checks in one call",
        operation(CHECKS, {"r": [{"resource": "JOBS", "access": "READ"}] * 1001}),
        200,
        "BAD_USER_INPUT",
    ),
    Case(
        "101 grants on a token",
        operation(CREATE, {"input": {"name": "n", "grants": [grant("JOB_ADMIN")] * 101}}),
        200,
        "BAD_USER_INPUT",
    ),
    Case(
        "101 IP rules",
        operation(
            SET_IP, {"rules": [{"name": f"r{i}", "type": "ALLOW", "cidrs": [f"10.0.{i}.0/24"]} for i in range(101)]}
        ),
        200,
        "BAD_USER_INPUT",
    ),
]


async def send(server: Server, token: str, case: Case) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **case.headers}
    async with server.session.post(server.url + "/graphql", data=case.body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_each_class_of_bad_input_gets_its_answer(server):
    admin = await server.bootstrap()
    before = await snapshot(server)
    wrong = []
    for case in CASES:
        status, body = await send(server, admin.token, case)
        codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
        if status != case.status or not codes or set(codes) != {case.code}:
            wrong.append((case.label, status, body))
    assert not wrong, "\n".join(f"{label}: {status} {json.dumps(body)[:300]}" for label, status, body in wrong)
    assert await snapshot(server) == before


async def test_first_null_means_the_default_page(server):
    admin = await server.bootstrap()
    for name in ["a", "b"]:
        await create_project(server, admin.token, name)
    reply = await server.gql(FIRST, {"v": None}, token=admin.token)
    events = await server.pool.fetchval("SELECT count(*) FROM audit_events")
    assert reply.errors == [] and len(reply.data["account"]["auditLog"]["edges"]) == events >= 2


async def test_missing_content_type_and_curl_form_type_are_read_as_json(server):
    admin = await server.bootstrap()
    body = operation("{ viewer { kind } }")
    for content_type in [None, "application/x-www-form-urlencoded", "application/json; charset=utf-8"]:
        headers = {"Authorization": f"Bearer {admin.token}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        async with server.session.post(server.url + "/graphql", data=body, headers=headers) as response:
            assert response.status == 200 and (await response.json())["data"] == {"viewer": {"kind": "USER"}}
