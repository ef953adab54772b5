"""The audit log through GraphQL: every audited action, newest first, with actor, source and address;
cursor pages; page size limits.

To cover a new audited action, add a step to ``perform_every_audited_action``:
``test_every_contract_action_found_in_the_code_is_covered`` fails until you do.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.api import service_token_calls as calls
from tests.api.conftest import from_address
from tests.conftest import Seeded, Server, store_service_token
from tokengate.core.policy import Grant
from tokengate.services import OPERATOR

SOURCE = Path(__file__).resolve().parents[2] / "src" / "tokengate"
CONTRACT_ACTIONS = [
    "service_token.created",
    "service_token.rotated",
    "service_token.updated",
    "service_token.deleted",
    "service_token.expired_on_use",
    "service_token.leak_reported",
    "user.created",
    "user_token.created",
    "project.created",
    "ip_restrictions.updated",
    "legacy_token.imported",
]
AUDIT_LOG = """
query($first: Int, $after: String) {
  account { auditLog(first: $first, after: $after) {
    edges { cursor node { id action actor source clientAddress targetId occurredAt details } }
    pageInfo { hasNextPage endCursor }
  } }
}
"""


@dataclass(frozen=True)
class Expected:
    action: str
    actor: str
    source: str
    client_address: str | None


async def perform_every_audited_action(server: Server) -> tuple[Seeded, str, list[Expected]]:
    """Each audited action once, through the door users use; what the log must say, oldest first."""
    admin = await server.bootstrap()  # the CLI's `bootstrap`
    cli = OPERATOR.name
    expected = [Expected("user.created", cli, "cli", None), Expected("user_token.created", cli, "cli", None)]

    await server.issue_user_token(admin.user_id, "laptop")  # the CLI's `issue-user-token`
    expected.append(Expected("user_token.created", cli, "cli", None))

    as_admin = f"user:{admin.user_id}"
    reply = await server.gql(
        'mutation { createProject(name: "Analytics") { id } }', token=admin.token, headers=from_address("198.51.100.1")
    )
    assert reply.errors == [], reply.body
    expected.append(Expected("project.created", as_admin, "graphql", "198.51.100.1"))

    reply = await server.gql(
        'mutation { createUser(email: "ana@example.com", license: DEVELOPER, grants: [{permissionSet: JOB_VIEWER}]) { id } }',
        token=admin.token,
        headers=from_address("2001:db8::7"),
    )
    assert reply.errors == [], reply.body
    expected.append(Expected("user.created", as_admin, "graphql", "2001:db8::7"))

    from_admin = from_address("198.51.100.2")
    reply = await server.gql(
        calls.CREATE,
        {"input": {"name": "ci", "grants": [calls.grant("JOB_ADMIN")]}},
        token=admin.token,
        headers=from_admin,
    )
    assert reply.errors == [], reply.body
    calls.remember(server, reply, "createServiceToken")
    ci = reply.data["createServiceToken"]["serviceToken"]["id"]
    expected.append(Expected("service_token.created", as_admin, "graphql", "198.51.100.2"))

    reply = await server.gql(calls.UPDATE, {"id": ci, "name": "ci-renamed"}, token=admin.token, headers=from_admin)
    assert reply.errors == [], reply.body
    expected.append(Expected("service_token.updated", as_admin, "graphql", "198.51.100.2"))

    reply = await server.gql(calls.ROTATE, {"id": ci}, token=admin.token, headers=from_admin)
    assert reply.errors == [], reply.body
    calls.remember(server, reply, "rotateServiceToken")
    rotated_secret = reply.data["rotateServiceToken"]["secret"]
    expected.append(Expected("service_token.rotated", as_admin, "graphql", "198.51.100.2"))

    reply = await server.gql(calls.DELETE, {"id": ci}, token=admin.token, headers=from_admin)
    assert reply.errors == [], reply.body
    expected.append(Expected("service_token.deleted", as_admin, "graphql", "198.51.100.2"))

    reply = await server.gql(calls.REPORT, {"token": rotated_secret}, headers=from_address("192.0.2.77"))
    assert reply.data == {"reportLeakedToken": True}, reply.body
    expected.append(Expected("service_token.leak_reported", "anonymous", "graphql", "192.0.2.77"))

    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = await store_service_token(server, admin.account_id, [Grant("JOB_ADMIN")], expires_at=past)
    reply = await server.gql(calls.VIEWER, token=expired, headers=from_address("192.0.2.78"))
    assert reply.status == 401
    expected.append(
        Expected(
            "service_token.expired_on_use",
            f"service_token:stk_{expired[4:20]} ({expired[:8]}…)",
            "graphql",
            "192.0.2.78",
        )
    )

    await server.import_legacy_token(  # the CLI's `import-legacy-token`
        admin.account_id, "old", datetime(2022, 1, 1, tzinfo=UTC), [Grant("JOB_VIEWER")]
    )
    expected.append(Expected("legacy_token.imported", cli, "cli", None))

    service = await store_service_token(server, admin.account_id, [Grant("SECURITY_ADMIN")])
    as_service = f"service_token:stk_{service[4:20]} ({service[:8]}…)"  # its id as GraphQL prints it
    reply = await server.gql(
        'mutation { setIpRestrictions(enabled: true, rules: [{name: "office", type: ALLOW, cidrs: ["203.0.113.0/24"]}]) { enabled } }',
        token=service,
        headers=from_address("203.0.113.5"),
    )
    assert reply.errors == [], reply.body
    expected.append(Expected("ip_restrictions.updated", as_service, "graphql", "203.0.113.5"))
    return admin, service, expected


async def read_all(server: Server, token: str, first: int) -> list[dict]:
    """Every event through pages of ``first``, following endCursor."""
    nodes, after = [], None
    for _ in range(100):
        reply = await server.gql(
            AUDIT_LOG, {"first": first, "after": after}, token=token, headers=from_address("203.0.113.5")
        )
        assert reply.errors == [], reply.body
        page = reply.data["account"]["auditLog"]
        assert len(page["edges"]) <= first
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    raise AssertionError("paging did not end")


async def test_every_audited_action_reads_back_newest_first_with_actor_source_and_address(proxied):
    admin, _, expected = await perform_every_audited_action(proxied)
    reply = await proxied.gql(AUDIT_LOG, token=admin.token, headers=from_address("203.0.113.5"))
    assert reply.errors == [], reply.body
    page = reply.data["account"]["auditLog"]
    nodes = [edge["node"] for edge in page["edges"]]
    assert [Expected(n["action"], n["actor"], n["source"], n["clientAddress"]) for n in nodes] == expected[::-1]
    assert page["pageInfo"] == {"hasNextPage": False, "endCursor": page["edges"][-1]["cursor"]}
    assert [n["occurredAt"] for n in nodes] == sorted((n["occurredAt"] for n in nodes), reverse=True)
    by_action = {n["action"]: n for n in nodes}
    assert by_action["ip_restrictions.updated"]["details"] == {
        "enabled": True,
        "rules": [{"name": "office", "type": "ALLOW", "cidrs": ["203.0.113.0/24"]}],
    }
    assert by_action["ip_restrictions.updated"]["targetId"] == admin.account_id
    assert by_action["project.created"]["details"] == {"name": "Analytics"}
    for secret in proxied.issued:  # no token text anywhere in the log
        assert secret not in str(reply.body) and secret[20:52] not in str(reply.body)


def test_every_contract_action_found_in_the_code_is_covered():
    code = "\n".join(path.read_text(encoding="utf-8") for path in SOURCE.rglob("*.py"))
    present = {action for action in CONTRACT_ACTIONS if f'"{action}"' in code}
    covered = set(CONTRACT_ACTIONS)  # keep equal to the steps of perform_every_audited_action
    assert present <= covered, f"audited but not covered by this test: {sorted(present - covered)}"
    assert covered <= present


@pytest.mark.parametrize("first", [1, 2, 3, 100])
async def test_pages_through_with_after(proxied, first):
    admin, _, expected = await perform_every_audited_action(proxied)
    nodes = await read_all(proxied, admin.token, first)
    assert [n["action"] for n in nodes] == [e.action for e in expected[::-1]]
    assert len({n["id"] for n in nodes}) == len(expected)


@pytest.mark.parametrize("first", [1000, 101, 0, -1])
async def test_page_size_outside_1_to_100_is_refused(server, first):
    admin = await server.bootstrap()
    reply = await server.gql(AUDIT_LOG, {"first": first}, token=admin.token)
    assert reply.status == 200
    assert reply.codes == ["BAD_USER_INPUT"] and "between 1 and 100" in reply.errors[0]["message"]
    assert reply.data["account"]["auditLog"] is None


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage",
        "!!!!",
        "é",
        base64.urlsafe_b64encode(b"audit:abc").decode(),
        base64.urlsafe_b64encode(b"audit:-1").decode(),
        base64.urlsafe_b64encode(b"audit:99999999999999999999999").decode(),
        base64.urlsafe_b64encode(b"other:5").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_garbage_cursor_is_bad_user_input_not_a_500(server, cursor):
    admin = await server.bootstrap()
    reply = await server.gql(AUDIT_LOG, {"after": cursor}, token=admin.token)
    assert reply.status == 200
    assert reply.codes == ["BAD_USER_INPUT"], reply.body


async def test_default_page_and_null_first(server):
    admin = await server.bootstrap()
    for _ in range(30):
        await server.gql('mutation { createProject(name: "p") { id } }', token=admin.token)
    reply = await server.gql(AUDIT_LOG, {"first": None}, token=admin.token)  # null means the default, 50
    assert len(reply.data["account"]["auditLog"]["edges"]) == 32
    reply = await server.gql(
        "{ account { auditLog { edges { cursor } pageInfo { hasNextPage } } } }", token=admin.token
    )
    assert len(reply.data["account"]["auditLog"]["edges"]) == 32


async def test_an_account_sees_only_its_own_events_and_needs_audit_log_read(server):
    admin = await server.bootstrap()
    other = await server.bootstrap("Other")
    reply = await server.gql(AUDIT_LOG, token=other.token)
    ids = {e["node"]["targetId"] for e in reply.data["account"]["auditLog"]["edges"]}
    assert admin.user_id not in ids and other.user_id in ids
    # A cursor from another account's log is refused like one never handed out (tests/api/test_tenant_isolation.py).
    mine = await server.gql(AUDIT_LOG, {"first": 1}, token=admin.token)
    cursor = mine.data["account"]["auditLog"]["pageInfo"]["endCursor"]
    reply = await server.gql(AUDIT_LOG, {"after": cursor}, token=other.token)
    assert reply.codes == ["BAD_USER_INPUT"] and reply.data["account"]["auditLog"] is None
    viewer = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    reply = await server.gql(AUDIT_LOG, token=viewer)
    assert reply.data["account"]["auditLog"] is None
    assert reply.codes == ["FORBIDDEN"] and "requires AUDIT_LOG:READ" in reply.errors[0]["message"]
